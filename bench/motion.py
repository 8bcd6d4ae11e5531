"""Motion engine benchmarks: speed against bare libx264, smoothness and speed against ffmpeg's
zoompan, and peak memory. Run with ``make bench``; figures go in docs/benchmarks.md.

- speed: a 6 s 768P push-in through the whole engine, against libx264 alone encoding the very
  same frames (rendered beforehand, held in memory) at the same size, preset and CRF.
  Alternating runs; the best of each side is compared.
- zoompan: ffmpeg's ``zoompan`` with the usual 4x pre-scale, making the same push-in.
- smoothness: ECC affine registration between consecutive frames of the encoded videos;
  mean acceleration of the per-frame corner motion and reversals of direction.
- memory: peak RSS of a separate process rendering 10 s at 768P.
- scene: the same speed comparison with depth and one effect (the sample with two knights
  painted in, as in the docs' contact sheets, ``[Truck left] ... sparks``: the matte, the fill,
  the layered warps and the particles), and its peak memory over 10 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from kinema.domain.video import Resolution
from kinema.engines.base import GenerationJob
from kinema.engines.motion.config import MotionConfig
from kinema.engines.motion.engine import MotionEngine, frame_renderer
from kinema.media.encode import EncoderSettings, H264Writer
from kinema.media.intake import decode_image
from kinema.media.motion_analysis import clip_motion, register, smoothness

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "src" / "kinema" / "assets" / "sample.jpg"
PUSH_IN = "[Push in] a mountain lake at sunset"
SCENE = "[Truck left] two knights clash on the shore, sparks explode"
PAN = "[Pan right] a mountain lake at sunset"


def _job(image: np.ndarray, prompt: str, duration: int, out: Path) -> GenerationJob:
    return GenerationJob(
        prompt=prompt, image=image, duration_s=duration, resolution=Resolution.P768, video_path=out
    )


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def knights_picture() -> np.ndarray:
    """The sample with the two knights of the contact sheets painted in (RGB)."""
    spec = importlib.util.spec_from_file_location(
        "contact_sheets", ROOT / "scripts" / "make_contact_sheets.py"
    )
    if spec is None or spec.loader is None:
        raise FileNotFoundError("scripts/make_contact_sheets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    picture: np.ndarray = module.knights(decode_image(SAMPLE.read_bytes()).pixels)
    return picture


def _cpu_timed(action: Callable[[], object]) -> float:
    """CPU seconds the whole process (every thread, libx264's included) spends on `action`."""
    started = time.process_time()
    action()
    return time.process_time() - started


def bench_speed(
    image: np.ndarray, work: Path, rounds: int, prompt: str = PUSH_IN, depth: bool = False
) -> tuple[float, float]:
    """Best whole-engine time and best libx264-alone time on the renderer's own frames.

    The CPU time of each side is printed too: on a machine shared with other work, wall time
    swings with the load from one run to the next, the work done does not.
    """
    engine = MotionEngine(MotionConfig(depth=depth, flat_without_model=False))
    engine.setup()
    job = _job(image, prompt, 6, work / "engine.mp4")
    renderer = frame_renderer(job, engine.matter)
    frames = []
    for index in range(renderer.frames):
        buffer = np.empty((job.size.height * 3 // 2, job.size.width), np.uint8)
        renderer.render_i420(index, buffer)
        frames.append(buffer)

    def encode_only() -> None:
        with H264Writer(work / "x264.mp4", job.size, job.fps, EncoderSettings()) as writer:
            for frame in frames:
                writer.write_i420(frame)

    def whole_engine() -> None:
        engine.generate(job, lambda _: None, lambda: False)

    engine_times, x264_times = [], []
    engine_cpu, x264_cpu = [], []
    for _ in range(rounds):
        x264_cpu.append(_cpu_timed(lambda: x264_times.append(_timed(encode_only))))
        engine_cpu.append(_cpu_timed(lambda: engine_times.append(_timed(whole_engine))))
    print(
        f"  cpu: engine {min(engine_cpu):.2f} s, libx264 alone {min(x264_cpu):.2f} s, "
        f"ratio {min(engine_cpu) / min(x264_cpu):.3f}"
    )
    return min(engine_times), min(x264_times)


def rendered_motion(job: GenerationJob) -> np.ndarray:
    """ECC motion between the renderer's own luma frames, before the encoder touches them."""
    renderer = frame_renderer(job)
    buffer = np.empty((job.size.height * 3 // 2, job.size.width), np.uint8)
    steps, previous = [], None
    for index in range(renderer.frames):
        renderer.render_i420(index, buffer)
        current = buffer[: job.size.height].astype(np.float32)
        if previous is not None:
            steps.append(register(previous, current))
        previous = current
    return np.array(steps)


def zoompan(image_path: Path, out: Path, width: int, height: int, frames: int, fps: int) -> float:
    """ffmpeg's zoompan push-in to 1.25x with the common 4x pre-scale against jitter."""
    zoom_step = (1.25 - 1.0) / frames
    graph = (
        f"scale={width * 4}:{height * 4},"
        f"zoompan=z='min(zoom+{zoom_step:.6f},1.25)':d={frames}"
        f":x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)':s={width}x{height}:fps={fps},format=yuv420p"
    )
    command = [
        "ffmpeg", "-loglevel", "error", "-y", "-i", str(image_path), "-vf", graph, "-frames:v", str(frames),
        "-c:v", "libx264", "-preset", "veryfast", "-crf", str(EncoderSettings().crf),
        "-x264-params", EncoderSettings().x264_params, str(out),
    ]  # fmt: skip
    return _timed(lambda: subprocess.run(command, check=True))


def peak_memory_mb(duration: int, scene: bool = False) -> float:
    """Peak RSS of a fresh process rendering the sample (or the knights as a scene), in MiB."""
    prompt = SCENE if scene else PUSH_IN
    script = (
        "from pathlib import Path; import tempfile\n"
        "from bench.motion import SAMPLE, _job, knights_picture\n"
        "from kinema.media.intake import decode_image\n"
        "from kinema.engines.motion.engine import MotionEngine\n"
        "from kinema.engines.motion.config import MotionConfig\n"
        f"image = knights_picture() if {scene} else decode_image(SAMPLE.read_bytes()).pixels\n"
        f"engine = MotionEngine(MotionConfig(depth={scene}, flat_without_model=False)); engine.setup()\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        f"    engine.generate(_job(image, {prompt!r}, {duration}, Path(d) / 'm.mp4'),"
        " lambda _: None, lambda: False)\n"
    )
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
    script += "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", script], check=True, cwd=root, capture_output=True, text=True
    )
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per side (best kept)")
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the two speed comparisons (flat push-in, scene with sparks): a minute, not ten",
    )
    args = parser.parse_args()
    image = decode_image(SAMPLE.read_bytes()).pixels
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        engine_s, x264_s = bench_speed(image, work, args.rounds)
        ratio = engine_s / x264_s
        print(f"speed: engine {engine_s:.2f} s, libx264 alone {x264_s:.2f} s, ratio {ratio:.3f}", end=" ")
        print("(target <= 1.15)")
        scene_s, scene_x264_s = bench_speed(knights_picture(), work, args.rounds, SCENE, depth=True)
        print(
            f"speed with depth and sparks: engine {scene_s:.2f} s, libx264 alone {scene_x264_s:.2f} s, "
            f"ratio {scene_s / scene_x264_s:.3f} (target <= 1.5)"
        )
        if args.speed_only:
            return

        job = _job(image, PUSH_IN, 6, work / "push.mp4")
        MotionEngine().generate(job, lambda _: None, lambda: False)
        pan_job = _job(image, PAN, 6, work / "pan.mp4")
        MotionEngine().generate(pan_job, lambda _: None, lambda: False)
        size = job.size
        drawn = smoothness(rendered_motion(job), size.width, size.height)
        print(
            f"smoothness push-in as drawn, before encoding: mean acceleration {drawn.mean_acceleration:.4f} "
            f"px/frame^2, max {drawn.max_acceleration:.3f}, reversals {drawn.reversals}"
        )
        for name, video in (("push-in", job.video_path), ("pan", pan_job.video_path)):
            result = smoothness(clip_motion(video), size.width, size.height)
            print(
                f"smoothness {name}: mean acceleration {result.mean_acceleration:.4f} px/frame^2 "
                f"(target <= 0.05), max {result.max_acceleration:.3f}, reversals {result.reversals}"
            )

        if shutil.which("ffmpeg"):
            zoompan_s = zoompan(
                SAMPLE, work / "zoompan.mp4", size.width, size.height, job.frame_count, job.fps
            )
            engine_push = _timed(lambda: MotionEngine().generate(job, lambda _: None, lambda: False))
            print(
                f"zoompan: ffmpeg {zoompan_s:.2f} s, engine {engine_push:.2f} s, "
                f"engine is {zoompan_s / engine_push:.2f}x faster"
            )
            result = smoothness(clip_motion(work / "zoompan.mp4"), size.width, size.height)
            print(
                f"smoothness zoompan push-in: mean acceleration {result.mean_acceleration:.4f} px/frame^2, "
                f"max {result.max_acceleration:.3f}, reversals {result.reversals}"
            )
        else:
            print("zoompan: skipped, ffmpeg is not installed (apt-get install ffmpeg)")

    print(f"memory: peak RSS of a 10 s 768P render {peak_memory_mb(10):.0f} MiB (target < 500)")
    scene_mb = peak_memory_mb(10, scene=True)
    print(f"memory: peak RSS of a 10 s 768P scene with sparks {scene_mb:.0f} MiB (target < 800)")


if __name__ == "__main__":
    main()
