"""Tiny, randomly initialised Wan 2.2 and LTX-Video pipelines, saved in the diffusers layout.

Nothing comes from a model hub: every component, the tokenizer included, is built here from a
small configuration and saved with ``save_pretrained``, so the engine loads it through the very
code path it uses for real weights. The folders mirror the published ones: Wan 2.2 TI2V-5B is
saved as a ``WanPipeline`` with ``expand_timesteps`` (as ``Wan-AI/Wan2.2-TI2V-5B-Diffusers``
is), LTX-Video as an ``LTXPipeline``; the engine opens both as their image-to-video pipelines.

The two tokenizers cover both ways a T5 tokenizer folder comes: Wan's as ``tokenizer.json`` (a
Unigram model made from a word list), LTX's as a bare ``spiece.model`` that SentencePiece trains
here on a few sentences, which transformers converts on loading (sentencepiece and protobuf).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import sentencepiece
import torch
from diffusers import (
    AutoencoderKLLTXVideo,
    AutoencoderKLWan,
    FlowMatchEulerDiscreteScheduler,
    LTXPipeline,
    LTXVideoTransformer3DModel,
    UniPCMultistepScheduler,
    WanPipeline,
    WanTransformer3DModel,
)
from transformers import T5Config, T5EncoderModel, T5TokenizerFast, UMT5Config, UMT5EncoderModel

from kinema.engines.diffusers.config import DiffusersConfig
from kinema.engines.diffusers.engine import DiffusersEngine
from kinema.media.encode import EncoderSettings

_CORPUS = """
a the of and in on with at to from camera slowly moves pan tilt zoom push pull shot cat dog bird
field lake mountain sunset city street car sea wave tree sky cloud light red green blue white black
small big walking running flying water fire snow rain
"""
#: Words the tiny tokenizer knows; anything else becomes <unk>, which is fine for random weights.
WORDS = _CORPUS.split()

TEXT_DIM = 16  #: Hidden size of the tiny text encoders, and so the transformers' caption width.


def tiny_tokenizer(max_length: int = 32) -> T5TokenizerFast:
    """A T5 (Unigram) tokenizer over `WORDS`, made in code: no sentencepiece model, no hub."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{word}", -3.0 - index / 100) for index, word in enumerate(WORDS)]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)


def train_spiece_model(path: Path, vocab_size: int = 48) -> Path:
    """A T5-style SentencePiece model (pad 0, eos 1, unk 2) trained on sentences of `WORDS`."""
    lines = [" ".join(WORDS[start : start + 7]) for start in range(len(WORDS) - 6)]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines * 4),
        model_prefix=str(path.with_suffix("")),
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        minloglevel=2,
    )
    return path


def _save_spiece_tokenizer(folder: Path) -> T5TokenizerFast:
    """Replace `folder`'s tokenizer files by a trained ``spiece.model`` alone; return its tokenizer."""
    with tempfile.TemporaryDirectory() as scratch:
        model = train_spiece_model(Path(scratch) / "spiece.model")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(model, folder / "spiece.model")
    (folder / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 32}', encoding="utf-8"
    )
    tokenizer: T5TokenizerFast = T5TokenizerFast.from_pretrained(folder)
    return tokenizer


def _umt5(vocab_size: int) -> UMT5EncoderModel:
    config = UMT5Config(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=16,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
    )
    return UMT5EncoderModel(config).eval()


def _t5(vocab_size: int) -> T5EncoderModel:
    config = T5Config(
        vocab_size=vocab_size,
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=16,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
    )
    return T5EncoderModel(config).eval()


def save_tiny_wan(folder: Path) -> Path:
    """Wan 2.2 TI2V-5B's shape in miniature: a 48-channel residual VAE (16x spatial, 4x temporal),
    one transformer with ``expand_timesteps``, UniPC with flow sigmas, a UMT5 text encoder."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=48,
        in_channels=12,
        out_channels=12,
        is_residual=True,
        patch_size=2,
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        scale_factor_spatial=16,
        scale_factor_temporal=4,
        temperal_downsample=[False, True, True],
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=48,
        out_channels=48,
        text_dim=TEXT_DIM,
        freq_dim=256,
        ffn_dim=16,
        num_layers=1,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=64,
    )
    scheduler = UniPCMultistepScheduler(
        prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=5.0
    )
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=_umt5(len(tokenizer)),
        vae=vae,
        scheduler=scheduler,
        transformer=transformer,
        transformer_2=None,
        boundary_ratio=None,
        expand_timesteps=True,
    )
    pipe.save_pretrained(folder)
    return folder


def save_tiny_ltx(folder: Path) -> Path:
    """LTX-Video's shape in miniature: a causal video VAE (4x spatial and temporal here, 32x and 8x
    in the real one), a one-layer transformer, flow-matching Euler, a T5 text encoder."""
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = _save_spiece_tokenizer(Path(scratch))
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=8,
        cross_attention_dim=16,
        num_layers=1,
        caption_channels=TEXT_DIM,
    )
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, False, False),
        decoder_spatio_temporal_scaling=(True, True, False, False),
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    pipe = LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=_t5(len(tokenizer)),
        tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    # As some published folders have it: the SentencePiece model only, converted when loaded.
    for saved in (folder / "tokenizer").iterdir():
        saved.unlink()
    _save_spiece_tokenizer(folder / "tokenizer")
    return folder


def single_threaded_engine(
    config: DiffusersConfig, encoder: EncoderSettings | None = None
) -> DiffusersEngine:
    """The diffusers engine on one thread (tiny models gain nothing from more), to build in a
    child process: where it is built is where the thread count is set."""
    torch.set_num_threads(1)
    return DiffusersEngine(config, encoder=encoder)
