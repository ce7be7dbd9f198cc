"""Slice encoder throughput: slices/s and peak memory per configuration and batch size.

Configurations (all on the real all-MiniLM-L6-v2 text tower, over real MovieLens
slices: title, genres and overview as text, the poster as the frame):

- ``text``: text only (no vision tower);
- ``base``: text + 1 frame through a SigLIP-base-sized vision tower (768 wide,
  12 layers, 224 px, patch 16; random weights, saved and loaded back as a
  checkpoint folder: timing does not depend on the weights);
- ``tiny``: text + 1 frame through a 1-layer 32-wide tower (the tests' tower).

Each (configuration, batch size) runs in a subprocess of its own, so that its
peak resident memory (``ru_maxrss``) is its own. With CUDA, the same runs on
the GPU in fp16, with peak allocated GPU memory. Prints one JSON document.

    python bench/encoder.py [--batch-sizes 8,16,32,64,128] [--configs text,base,tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import DEFAULT_DATA, emit, log, timed

CONFIGS = ("text", "base", "tiny")
TOWERS = {
    "base": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
             "num_attention_heads": 12, "image_size": 224, "patch_size": 16},
    "tiny": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
}  # fmt: skip


def save_tower(kind: str, folder: Path) -> Path:
    """A random SigLIP vision tower of the given size, saved as a checkpoint folder."""
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    torch.manual_seed(0)
    SiglipVisionModel(SiglipVisionConfig(**TOWERS[kind])).save_pretrained(folder)
    size = TOWERS[kind]["image_size"]
    SiglipImageProcessorPil(size={"height": size, "width": size}).save_pretrained(folder)
    return folder


def movie_slices(data_dir: Path, n: int) -> list:
    """``n`` real MovieLens slices (cycled if needed), each with its poster as one frame."""
    from encoder.datasets.movielens import movie_slices as lines

    base = [line.to_input(data_dir) for line in lines(data_dir).values() if line.frames]
    return [base[i % len(base)] for i in range(n)]


def measure(config: str, batch: int, device: str, data_dir: Path) -> dict[str, float]:
    """Build the encoder, warm up, time ``reps`` batches; runs inside the subprocess."""
    import torch

    from configs.encoder import EncoderSettings, VisionSettings
    from encoder import SliceEncoder

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        vision = VisionSettings(max_frames=1)
        if config != "text":
            vision = VisionSettings(max_frames=1, path=str(save_tower(config, Path(tmp))))
        precision = "float16" if device == "cuda" else "float32"
        settings = EncoderSettings(device=device, precision=precision, vision=vision)
        encoder = SliceEncoder.from_settings(settings)
        reps = max(1, 64 // batch)  # at least 64 slices per measurement
        slices = movie_slices(data_dir, batch * reps)
        encoder.encode(slices[:batch], batch_size=batch)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        cpu_start = time.process_time()
        _, seconds = timed(lambda: encoder.encode(slices, batch_size=batch))
        result = {
            "slices_per_s": len(slices) / seconds,
            # CPU seconds of all threads per slice: steadier than wall time on a shared machine.
            "cpu_ms_per_slice": 1000 * (time.process_time() - cpu_start) / len(slices),
            "slices_timed": len(slices),
        }
        if device == "cuda":
            result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_case(config: str, batch: int, device: str, data_dir: Path) -> dict[str, float]:
    """One measurement in a fresh interpreter (its own peak memory)."""
    command = [sys.executable, __file__, "--worker", config, "--batch-sizes", str(batch),
               "--device", device, "--data-dir", str(data_dir)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{config} batch {batch} on {device} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sweep(configs: list[str], batches: list[int], device: str, data_dir: Path) -> dict:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for config in configs:
        for batch in batches:
            log(f"[{device}] {config}, batch {batch}")
            table.setdefault(config, {})[str(batch)] = run_case(config, batch, device, data_dir)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", default="8,16,32,64,128")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",") if b]
    if args.worker:
        print(json.dumps(measure(args.worker, batches[0], args.device, args.data_dir)))
        return

    import torch

    configs = [c for c in args.configs.split(",") if c]
    torch_threads = torch.get_num_threads()
    result: dict[str, object] = {
        "text_tower": "all-MiniLM-L6-v2",
        "frames_per_slice": 1,
        "tokens_per_frame": 4,
        "torch_threads": torch_threads,
        "cpu": sweep(configs, batches, "cpu", args.data_dir),
    }
    if torch.cuda.is_available():
        result["gpu_fp16"] = sweep(configs, batches, "cuda", args.data_dir)
        result["gpu_name"] = torch.cuda.get_device_name(0)
    else:
        result["gpu_fp16"] = "not measured: no CUDA device"
    emit(result)


if __name__ == "__main__":
    main()
