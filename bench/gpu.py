"""GPU benchmark of the diffusers engine: seconds per denoising step, peak GPU memory, and what
the engine costs on top of the model.

Run on a machine with a CUDA GPU and the extra installed (``pip install -e '.[diffusers]'``):
``python -m bench.gpu [--steps 4] [--duration 6] [--resolution 768P]``. It reads the engine's own
settings (``KINEMA_DIFFUSERS_MODEL``, ``_OFFLOAD``, ``_VAE_TILING``, ``_WEIGHTS_DIR``):

- with ``KINEMA_DIFFUSERS_WEIGHTS_DIR`` set, the real model is loaded from that folder, as the
  engine loads it;
- without it, the full-size architecture is built with random weights from the published
  configuration values written below (nothing is downloaded): the same speed and memory, a
  meaningless picture.

- seconds per step: the time between consecutive denoising steps of the engine's run (the GPU
  synchronised at each), median over every clip.
- peak GPU memory: ``torch.cuda.max_memory_allocated`` over the engine's run and the direct one.
- overhead: the whole engine (planning, scaling, continuation, encoding, stills) against calling
  the pipeline directly with the very same arguments, clip after clip. Target: at most 1.10.

``--smoke`` builds a tiny architecture instead, on whatever device there is, to check that this
script runs; its numbers mean nothing. Without ``--smoke`` and without a CUDA device it stops
with a message: CPU timings of these models say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.diffusers.config import DiffusersConfig
from kinema.media.intake import decode_image
from kinema.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "kinema" / "assets" / "sample.jpg"
PROMPT = "[Push in] waves roll onto the shore of a mountain lake at sunset, a bird flies past"
TARGET_OVERHEAD = 1.10

# Published configurations (the diffusers folders' config.json values).

#: Wan-AI/Wan2.2-TI2V-5B-Diffusers: transformer/config.json.
WAN_TRANSFORMER = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 24,
    "attention_head_dim": 128,
    "in_channels": 48,
    "out_channels": 48,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 14336,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "image_dim": None,
    "added_kv_proj_dim": None,
    "rope_max_seq_len": 1024,
}
#: Its vae/config.json (the latent statistics, which only shift and scale, left at 0 and 1).
WAN_VAE = {
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "latents_mean": [0.0] * 48,
    "latents_std": [1.0] * 48,
}
#: Its text_encoder/config.json: UMT5-XXL's encoder.
WAN_TEXT_ENCODER = {
    "vocab_size": 256384,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
}
WAN_SCHEDULER = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "flow_shift": 5.0}

#: Lightricks/LTX-Video (0.9.x, 2B): transformer/config.json (diffusers' defaults are these).
LTX_TRANSFORMER = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "attention_head_dim": 64,
    "cross_attention_dim": 2048,
    "num_layers": 28,
    "caption_channels": 4096,
}
#: Its vae/config.json (0.9.0; diffusers' defaults): 32x spatial and 8x temporal compression.
LTX_VAE = {
    "latent_channels": 128,
    "block_out_channels": (128, 256, 512, 512),
    "decoder_block_out_channels": (128, 256, 512, 512),
    "layers_per_block": (4, 3, 3, 3, 4),
    "decoder_layers_per_block": (4, 3, 3, 3, 4),
    "spatio_temporal_scaling": (True, True, True, False),
    "decoder_spatio_temporal_scaling": (True, True, True, False),
    "patch_size": 4,
    "patch_size_t": 1,
}
#: Its text_encoder/config.json: T5 v1.1 XXL's encoder.
LTX_TEXT_ENCODER = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "feed_forward_proj": "gated-gelu",
}
LTX_SCHEDULER = {
    "use_dynamic_shifting": True,
    "base_shift": 0.95,
    "max_shift": 2.05,
    "base_image_seq_len": 1024,
    "max_image_seq_len": 4096,
    "shift_terminal": 0.1,
}

#: --smoke: the same families, small enough for a CPU.
SMOKE = {
    "wan": {
        "transformer": {**WAN_TRANSFORMER, "num_attention_heads": 2, "attention_head_dim": 12, "text_dim": 16,
                        "ffn_dim": 16, "num_layers": 1, "rope_max_seq_len": 64},
        "vae": {**WAN_VAE, "base_dim": 3, "decoder_base_dim": None, "dim_mult": [1, 1, 1, 1],
                "num_res_blocks": 1},
        "text_encoder": {**WAN_TEXT_ENCODER, "vocab_size": 64, "d_model": 16, "d_kv": 8, "d_ff": 16,
                         "num_layers": 1, "num_heads": 2, "relative_attention_num_buckets": 8},
    },
    "ltx": {
        "transformer": {**LTX_TRANSFORMER, "in_channels": 8, "out_channels": 8, "num_attention_heads": 2,
                        "attention_head_dim": 8, "cross_attention_dim": 16, "num_layers": 1,
                        "caption_channels": 16},
        "vae": {**LTX_VAE, "latent_channels": 8, "block_out_channels": (8, 8, 8, 8),
                "decoder_block_out_channels": (8, 8, 8, 8), "layers_per_block": (1, 1, 1, 1, 1),
                "decoder_layers_per_block": (1, 1, 1, 1, 1)},
        "text_encoder": {**LTX_TEXT_ENCODER, "vocab_size": 64, "d_model": 16, "d_kv": 8, "d_ff": 16,
                         "num_layers": 1, "num_heads": 2, "relative_attention_num_buckets": 8},
    },
}  # fmt: skip


def tokenizer(max_length: int) -> Any:
    """A T5 (Unigram) tokenizer made in code. Its ids stay small, which random weights do not mind;
    what costs time is the padded length (512 tokens for Wan, 128 for LTX), as with the real one."""
    from transformers import T5TokenizerFast

    words = PROMPT.replace("[", " ").replace("]", " ").lower().split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(f"▁{word}", -3.0) for word in dict.fromkeys(words)]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=max_length)


def random_pipeline(family: str, device: str, smoke: bool) -> Any:
    """The family's image-to-video pipeline with random weights, built on `device`."""
    import diffusers
    import torch
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    cuda = device == "cuda"
    weights_dtype = torch.bfloat16 if cuda else torch.float32

    def build(factory: Any, dtype: Any = weights_dtype) -> Any:
        """Made directly on the device in `dtype` (no float32 copy of 5 billion weights first),
        with the modules the model keeps in float32 put back, as ``from_pretrained`` does."""
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(device):
                model = factory()
        finally:
            torch.set_default_dtype(default)
        keep = set(getattr(model, "_keep_in_fp32_modules", None) or ())
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if keep.intersection(name.split(".")) and tensor.is_floating_point():
                tensor.data = tensor.data.float()
        return model.eval()

    if family == "wan":
        shapes: dict[str, dict[str, Any]] = (
            SMOKE["wan"]
            if smoke
            else {"transformer": WAN_TRANSFORMER, "vae": WAN_VAE, "text_encoder": WAN_TEXT_ENCODER}
        )
        return diffusers.WanImageToVideoPipeline(
            tokenizer=tokenizer(512),
            text_encoder=build(lambda: UMT5EncoderModel(UMT5Config(**shapes["text_encoder"]))),
            # Wan's VAE runs in float32, as the engine loads it.
            vae=build(lambda: diffusers.AutoencoderKLWan(**shapes["vae"]), torch.float32),
            scheduler=diffusers.UniPCMultistepScheduler(**WAN_SCHEDULER),
            transformer=build(lambda: diffusers.WanTransformer3DModel(**shapes["transformer"])),
            transformer_2=None,
            image_encoder=None,
            image_processor=None,
            boundary_ratio=None,
            expand_timesteps=True,
        )
    shapes = (
        SMOKE["ltx"]
        if smoke
        else {"transformer": LTX_TRANSFORMER, "vae": LTX_VAE, "text_encoder": LTX_TEXT_ENCODER}
    )
    return diffusers.LTXImageToVideoPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(**LTX_SCHEDULER),
        vae=build(lambda: diffusers.AutoencoderKLLTXVideo(**shapes["vae"])),
        text_encoder=build(lambda: T5EncoderModel(T5Config(**shapes["text_encoder"]))),
        tokenizer=tokenizer(128),
        transformer=build(lambda: diffusers.LTXVideoTransformer3DModel(**shapes["transformer"])),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=4, help="denoising steps per clip (at least 2)")
    parser.add_argument("--duration", type=int, choices=(6, 10), default=6)
    parser.add_argument("--resolution", choices=[r.value for r in Resolution], default="768P")
    parser.add_argument("--rounds", type=int, default=1, help="engine and direct runs, alternating")
    parser.add_argument("--smoke", action="store_true", help="a tiny architecture, to check this script runs")
    args = parser.parse_args()
    if args.steps < 2:
        parser.error("--steps must be at least 2: seconds per step are measured between steps")

    try:
        import torch

        from kinema.engines.diffusers.engine import DiffusersEngine, clip_frames, scale_frame
    except ImportError as error:
        sys.exit(
            f"bench.gpu needs the diffusers extra: pip install -e '.[diffusers]' ({error.name} is missing)"
        )
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        sys.exit(
            "bench.gpu needs a CUDA GPU and none is visible (torch.cuda.is_available() is False): "
            "it measures GPU seconds per step and GPU memory. Run it on a GPU machine "
            "(--smoke only checks that the script runs)."
        )

    settings = Settings()
    config = DiffusersConfig(
        model=settings.diffusers_model,
        weights_dir=None if args.smoke else settings.diffusers_weights_dir,
        offload=settings.diffusers_offload,
        vae_tiling=settings.diffusers_vae_tiling,
        steps=args.steps,
        working_pixels=2048 if args.smoke else None,
        clip_frames=81 if args.smoke and settings.diffusers_model == "wan" else None,
    )
    device = "cuda" if cuda else "cpu"
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("torch", "diffusers"))
    gpu = torch.cuda.get_device_name() if cuda else "no GPU (smoke run)"
    print(f"device: {gpu}; {versions}")

    started = time.perf_counter()
    if config.weights_dir is not None:
        source = f"weights from {config.weights_dir}"
        engine = DiffusersEngine(config)
    else:
        source = (
            "tiny random architecture (smoke)" if args.smoke else "full-size architecture, random weights"
        )
        engine = DiffusersEngine(config, pipeline=random_pipeline(config.model, device, args.smoke))
    engine.setup()
    pipe = engine.pipeline
    print(f"model: {config.model}, {source}; offload {config.offload}, VAE tiling {config.vae_tiling}")
    print(f"load: {time.perf_counter() - started:.1f} s")

    image = decode_image(SAMPLE.read_bytes()).pixels

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def peak_gib() -> float:
        return torch.cuda.max_memory_allocated() / 2**30 if cuda else 0.0

    def reset_peak() -> None:
        if cuda:
            torch.cuda.reset_peak_memory_stats()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        job = GenerationJob(
            PROMPT, image, args.duration, Resolution(args.resolution), work / "engine.mp4", seed=1
        )
        plan = engine.plan(job)
        print(
            f"job: {args.duration} s at {job.size} ({job.frame_count} frames, {job.fps} fps); model works at "
            f"{plan.work}, clips of {', '.join(map(str, plan.clips))} frames, {args.steps} steps each"
        )

        def direct() -> None:
            """The pipeline alone, with the engine's very arguments, clip after clip."""
            generator = engine.generator(plan.seed)
            start = scale_frame(image, plan.work)
            for length in plan.clips:
                output = pipe(**engine.pipeline_arguments(start, plan, length, generator))
                last = np.asarray(output.frames[0][-1], dtype=np.float32)
                start = np.ascontiguousarray(np.rint(np.clip(last, 0.0, 1.0) * 255.0).astype(np.uint8))

        # Warm-up: kernels, allocator and caches, on the first clip's shapes, two steps (LTX's
        # terminal shift needs two).
        warm = engine.pipeline_arguments(
            scale_frame(image, plan.work), plan, plan.clips[0], engine.generator(0)
        )
        clip_frames(pipe(**(warm | {"num_inference_steps": 2})), plan.clips[0])
        sync()

        step_times: list[float] = []
        engine_s: list[float] = []
        direct_s: list[float] = []
        engine_peak = direct_peak = 0.0
        for _ in range(args.rounds):
            stamps: list[tuple[float, float]] = []

            def on_progress(fraction: float, stamps: list[tuple[float, float]] = stamps) -> None:
                sync()
                stamps.append((fraction, time.perf_counter()))

            reset_peak()
            began = time.perf_counter()
            result = engine.generate(job, on_progress, lambda: False)
            sync()
            engine_s.append(time.perf_counter() - began)
            engine_peak = max(engine_peak, peak_gib())
            # Per clip: `steps` step reports, then one when the clip is decoded and encoded.
            per_clip = args.steps + 1
            for clip in range(len(plan.clips)):
                times = [stamp for _, stamp in stamps[clip * per_clip : clip * per_clip + args.steps]]
                step_times += [later - earlier for earlier, later in itertools.pairwise(times)]

            reset_peak()
            began = time.perf_counter()
            direct()
            sync()
            direct_s.append(time.perf_counter() - began)
            direct_peak = max(direct_peak, peak_gib())

        best_engine, best_direct = min(engine_s), min(direct_s)
        ratio = best_engine / best_direct
        print(f"seconds per step: {statistics.median(step_times):.3f} (median of {len(step_times)})")
        if cuda:
            print(f"peak GPU memory: engine {engine_peak:.2f} GiB, pipeline alone {direct_peak:.2f} GiB")
        verdict = "ok" if ratio <= TARGET_OVERHEAD else "OVER the target"
        print(
            f"overhead: engine {best_engine:.2f} s, pipeline alone {best_direct:.2f} s, "
            f"ratio {ratio:.3f} (target <= {TARGET_OVERHEAD:.2f}): {verdict}"
        )
        print(
            f"video: {result.frames} frames at {result.size}, {result.video_path.stat().st_size / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
