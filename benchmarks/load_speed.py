"""Where loading a full-size checkpoint onto the GPU spends its time, and how fast
each way of reading the DiT's safetensors shards onto the GPU is.

    python -m benchmarks.load_speed --weights /tmp/w14b [--write-random] --out load.json
    python -m benchmarks.load_speed --weights /tmp/tiny --device cpu   (the harness itself, on a CPU)

Part 1 times each of the runner's loaders alone (umT5, wav2vec2, the VAE, the DiT
with and without its LoRA merged), resident on the GPU, freeing the GPU between.
Part 2 moves every byte of the DiT's shards to the GPU, once per way:

* `safetensors`: `safe_open(device="cpu").get_tensor(key).to("cuda")`, key after key
  (what `load_dit` did before it had `ShardReader`);
* `safetensors-threads-N`: the same spread over N threads, one shard's keys each;
* `pinned-read`: each shard's data section read with `readinto` into two pinned
  buffers in turn, each copied to the GPU on a side stream while the next fills
  (the first form of `ShardReader`, kept so the committed figures can be reproduced);
* `pinned-read-threads-N`: that with N shards at once;
* `fastsafetensors`: the library's `fastsafe_open(..., device="cuda:0", nogds=True)`;
* `shard-reader`: the loader's own reader (`checkpoint/shard_reader.py`), every tensor of
  each shard, with its default threads and staging buffers.

Each figure is GB/s of checkpoint bytes over wall time with the files already in
the page cache (the checkpoint was just written or read), the state a nightly
run on a machine with enough RAM starts in. Nothing here is kept: the GPU is
emptied after each way.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

CHUNK_BYTES = 256 * 2**20


def _shards(weights: Path) -> list[Path]:
    from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout

    layout = CheckpointLayout.at(weights)
    index = json.loads(layout.index_path.read_text(encoding="utf-8"))
    return [layout.shard_path(name) for name in sorted(set(index["weight_map"].values()))]


def _synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(work: Callable[[], Any], device: str) -> tuple[float, Any]:
    _synchronize(device)
    began = time.perf_counter()
    kept = work()
    _synchronize(device)
    return time.perf_counter() - began, kept


def _free(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def safetensors_keys(shard: Path, device: str) -> list[Any]:
    from safetensors import safe_open

    with safe_open(str(shard), framework="pt", device="cpu") as handle:
        names = handle.keys()
        return [handle.get_tensor(key).to(device) for key in names]


def pinned_read(shard: Path, device: str, chunk_bytes: int = CHUNK_BYTES) -> Any:
    """The shard's data section, byte for byte, in one buffer on `device` (on a CPU the
    staging buffers are plain memory and each copy is synchronous)."""
    import torch

    from avatar_batch.render.liveavatar.checkpoint.headers import read_header

    header = read_header(shard)
    size = header.file_bytes - header.data_start
    on_gpu = device == "cuda"
    device_bytes = torch.empty(size, dtype=torch.uint8, device=device)
    buffers = [torch.empty(chunk_bytes, dtype=torch.uint8, pin_memory=on_gpu) for _ in range(2)]
    done = [torch.cuda.Event(), torch.cuda.Event()] if on_gpu else []
    stream = torch.cuda.Stream() if on_gpu else None
    with open(shard, "rb", buffering=0) as handle:
        handle.seek(header.data_start)
        offset, turn = 0, 0
        while offset < size:
            if done:
                done[turn].synchronize()  # its last copy has left the buffer
            view = memoryview(buffers[turn].numpy())[: min(chunk_bytes, size - offset)]
            got = handle.readinto(view)
            if not got:
                raise EOFError(f"{shard} ends {size - offset} bytes early")
            with torch.cuda.stream(stream) if stream else contextlib.nullcontext():
                device_bytes[offset : offset + got].copy_(buffers[turn][:got], non_blocking=on_gpu)
            if done:
                done[turn].record(stream)
            offset, turn = offset + got, 1 - turn
    if stream:
        stream.synchronize()
    return device_bytes


def _in_threads(work: Callable[[Path], Any], shards: list[Path], threads: int) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(work, shards))


def fastsafetensors_all(shards: list[Path], device: str) -> list[Any]:
    from fastsafetensors import fastsafe_open

    target = "cuda:0" if device == "cuda" else device
    with fastsafe_open([str(s) for s in shards], framework="pt", device=target, nogds=True) as handle:
        names = handle.keys()
        return [handle.get_tensor(key) for key in names]


def read_ways(weights: Path, device: str) -> list[dict[str, Any]]:
    import torch

    from avatar_batch.render.liveavatar.checkpoint.headers import read_header
    from avatar_batch.render.liveavatar.checkpoint.shard_reader import ShardReader

    shards = _shards(weights)
    total_bytes = sum(s.stat().st_size for s in shards)
    reader = ShardReader(torch.device(device))
    keys = functools.partial(safetensors_keys, device=device)
    staged = functools.partial(pinned_read, device=device)
    ways: dict[str, Callable[[], Any]] = {
        "safetensors": lambda: [keys(s) for s in shards],
        "safetensors-threads-4": lambda: _in_threads(keys, shards, 4),
        "pinned-read": lambda: [staged(s) for s in shards],
        "pinned-read-threads-2": lambda: _in_threads(staged, shards, 2),
        "pinned-read-threads-4": lambda: _in_threads(staged, shards, 4),
        "fastsafetensors": lambda: fastsafetensors_all(shards, device),
        "shard-reader": lambda: [reader.read(s, list(read_header(s).tensors)) for s in shards],
    }
    rows = []
    for name, work in ways.items():
        try:
            seconds, kept = _timed(work, device)
            rows.append({"way": name, "s": round(seconds, 2), "gb_per_s": round(total_bytes / seconds / 1e9, 2)})
            del kept
        except (ImportError, RuntimeError, OSError, ValueError) as exc:  # reported, not fatal
            rows.append({"way": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        _free(device)
        print(rows[-1], flush=True)
    return rows


def loaders(weights: Path, device: str) -> list[dict[str, Any]]:
    import torch

    from avatar_batch.render.liveavatar.audio_encoder import load_audio_encoder
    from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout
    from avatar_batch.render.liveavatar.checkpoint.loader import load_dit
    from avatar_batch.render.liveavatar.text_encoder import load_text_encoder
    from avatar_batch.render.liveavatar.vae import load_vae

    ckpt = CheckpointLayout.at(weights).dit_dir
    target, bf16 = torch.device(device), torch.bfloat16
    parts: dict[str, Callable[[], Any]] = {
        "umt5": lambda: load_text_encoder(ckpt, device=target, dtype=bf16),
        "wav2vec2": lambda: load_audio_encoder(ckpt, device=target, dtype=bf16),
        "vae": lambda: load_vae(ckpt, device=target, dtype=bf16),
        "dit-without-lora": lambda: load_dit(weights, device=target, dtype=bf16, lora=False),
        "dit": lambda: load_dit(weights, device=target, dtype=bf16),
    }
    rows = []
    for name, work in parts.items():
        seconds, kept = _timed(work, device)
        rows.append({"loader": name, "s": round(seconds, 2)})
        del kept
        _free(device)
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True)
    parser.add_argument("--write-random", action="store_true", help="write a random 14b checkpoint there first")
    parser.add_argument("--out", default="load_speed.json")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args()
    import torch

    weights = Path(args.weights)
    if args.write_random and not (weights / "LiveAvatar").is_dir():
        from avatar_batch.render.liveavatar.checkpoint.random_weights import write_random_checkpoint
        from avatar_batch.render.liveavatar.config import CONFIG_14B

        write_random_checkpoint(weights, CONFIG_14B)
    shards = _shards(weights)
    result = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "command": "python -m benchmarks.load_speed " + " ".join(sys.argv[1:]),
        "dit_shard_gb": [round(s.stat().st_size / 1e9, 2) for s in shards],
        "loaders": loaders(weights, args.device),
        "dit_read_ways": read_ways(weights, args.device),
    }
    Path(args.out).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
