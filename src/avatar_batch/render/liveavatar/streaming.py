"""Streaming decode of sampled blocks into uint8 frames.

Each finished block goes to the VAE stream decoder at once and its 12 frames
leave as uint8 arrays; the caller pulls frames, so neither latents nor frames
accumulate, however long the video.

On a CUDA device with memory to spare, a block is decoded on a second stream
while the sampler already queues the next block's denoising calls: the
decoder's convolutions fill the gaps the DiT leaves (launch gaps, memory-bound
kernels), and the frames reach the host through pinned memory. The arithmetic
is the same either way, so the frames are identical; only their timing moves.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from itertools import islice

import numpy as np
import torch

from avatar_batch.render.liveavatar.memory import free_device_bytes
from avatar_batch.render.liveavatar.telemetry import PhaseClock
from avatar_batch.render.liveavatar.vae import decode_bytes

# Free device memory kept beyond a block's decode before decoding beside the
# sampler. The second stream cannot reuse the sampler's cached blocks, but it
# needs none of them: the first block comes out of a full wave, so the sampler's
# peak working set is already reserved in its own pool, and the free memory
# left is the side stream's. The slack covers the rounding of its segments.
# (2 GiB, sized as if the sampler's peak were still to come, sent every
# 384*256 job within 24 GiB on an H200 to decoding after sampling: 1.7-3.1 s
# of a 5 s job, benchmarks/results/NVIDIA-H200-20261203-offload.json.)
SIDE_DECODE_SLACK_BYTES = 2**29
# Latents per decoder call beside the sampler. Decoder kernels are not preempted:
# a 3-latent call's convolutions hold the SMs long enough to stall the DiT's
# next kernels, where 1-latent calls slot into its gaps. Whole H200, helpers
# resident, bf16: 704*384 went from 10.8 to 15.2 FPS, 384*256 from 36.5 to 55.9
# (benchmarks/results/NVIDIA-H200-20261202-offload.json).
SIDE_DECODE_LATENTS = 1


def to_uint8_video(video: torch.Tensor) -> torch.Tensor:
    """(1, 3, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8 on video's device, truncating as the official writer."""
    scaled = (video[0].float().clamp(-1.0, 1.0) + 1.0) * 127.5
    return scaled.to(torch.uint8).permute(1, 2, 3, 0).contiguous()


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """(1, 3, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8 on the host."""
    return to_uint8_video(video).cpu().numpy()


def side_decode_fits(device: torch.device, height_px: int, width_px: int) -> bool:
    """Whether a block can be decoded on a second stream without squeezing the sampler:
    room for a one-latent decoder call (every side call takes one). A streamed placement
    reserves that room (placement_plan.estimate); decoding a latent at a time beside the
    sampler beats three latents at a time after it."""
    if device.type != "cuda":
        return False
    need_bytes = decode_bytes(SIDE_DECODE_LATENTS, height_px, width_px) + SIDE_DECODE_SLACK_BYTES
    free_bytes = free_device_bytes(device)
    cached_bytes = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if free_bytes < need_bytes <= free_bytes + cached_bytes:
        # Blocks cached by an earlier, larger job belong to the sampler's stream:
        # hand them back once so the second stream can have the room.
        torch.cuda.empty_cache()
        free_bytes = free_device_bytes(device)
    return free_bytes >= need_bytes


def stream_frames(
    blocks: Iterable[torch.Tensor],
    decoder,
    prime_latents: torch.Tensor,
    clock: PhaseClock,
    drop_first_frames: int = 0,
    overlap: bool = False,
) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames, decoded block by block with `decoder` (a VAE
    stream decoder) primed with `prime_latents` (16, n, h, w). `overlap` decodes
    on a second CUDA stream while the next block is sampled, when memory allows."""
    with clock.phase("decode"):
        decoder.prime(prime_latents[None])
    decode = _overlapped if overlap and prime_latents.device.type == "cuda" else _decoded
    frames = decode(iter(blocks), decoder, clock)
    try:
        yield from islice(frames, drop_first_frames, None)
    finally:
        frames.close()


def _decoded(blocks: Iterator[torch.Tensor], decoder, clock: PhaseClock) -> Generator[np.ndarray, None, None]:
    try:
        for latents in _sampled(blocks, clock):
            yield from _decode_now(latents, decoder, clock)
    finally:
        _close(blocks)


def _overlapped(blocks: Iterator[torch.Tensor], decoder, clock: PhaseClock) -> Generator[np.ndarray, None, None]:
    """Block b is queued for decoding on `side`, then block b - 1's frames are handed
    out, then block b + 1's calls are queued: the GPU decodes b while it samples
    b + 1. Until memory allows a second stream, blocks decode as in `_decoded`.
    The clock charges sampling with the host's queueing of the sampler's calls, and
    decode with queueing the decoder's and the wait for frames: the host blocks
    wherever the GPU's launch queue is full, so only their sum, the whole loop, is
    exact. (Out of both phases, the decoder's queueing was 4.1 s of a 13.4 s 704*384
    job on an H200: generation_fps would read 45 % high.)"""
    side: torch.cuda.Stream | None = None
    pending = None  # block b - 1: (event after its frames reach the host, pinned frames)
    try:
        for latents in _sampled(blocks, clock):
            if side is None and side_decode_fits(latents.device, *decoder.frame_size_px(latents)):
                side = torch.cuda.Stream(latents.device)
            if side is None:
                yield from _decode_now(latents, decoder, clock)
                continue
            with clock.phase("decode"):  # queueing can wait: the launch queue is shared with the sampler
                queued = _queue_decode(latents, decoder, side)
            del latents
            if pending is not None:
                yield from _wait(pending, clock)
            pending = queued
        if pending is not None:
            yield from _wait(pending, clock)
    finally:
        _close(blocks)


def _decode_now(latents: torch.Tensor, decoder, clock: PhaseClock) -> np.ndarray:
    """The block's 12 frames (12, H, W, 3), decoded on the current stream."""
    with clock.phase("decode"):
        return to_uint8_frames(decoder.decode_chunk(latents[None]))


def _sampled(blocks: Iterator[torch.Tensor], clock: PhaseClock) -> Iterator[torch.Tensor]:
    while True:
        with clock.phase("sampling"):
            latents = next(blocks, None)
        if latents is None:
            return
        yield latents


def _queue_decode(latents: torch.Tensor, decoder, side: torch.cuda.Stream) -> tuple[torch.cuda.Event, torch.Tensor]:
    sampled = torch.cuda.Event()
    sampled.record()  # on the sampler's stream, after the block's last call
    # The decoder's state was made on the sampler's stream when it was primed: without
    # this, a tensor the side stream replaces could be handed out (or unmapped under
    # memory pressure) while the side stream still reads it.
    decoder.used_on(side)
    with torch.cuda.stream(side):
        side.wait_event(sampled)
        frames = to_uint8_video(decoder.decode_chunk(latents[None], max_latents=SIDE_DECODE_LATENTS))
        host = torch.empty(frames.shape, dtype=torch.uint8, pin_memory=True)
        host.copy_(frames, non_blocking=True)
        done = torch.cuda.Event()
        done.record(side)
    # The sampler's allocator must not hand the block's memory out again before `side` has read it.
    latents.record_stream(side)
    return done, host


def _wait(pending: tuple[torch.cuda.Event, torch.Tensor], clock: PhaseClock) -> Iterator[np.ndarray]:
    done, host = pending
    with clock.phase("decode"):
        done.synchronize()
    yield from host.numpy()


def _close(blocks: Iterator[torch.Tensor]) -> None:
    close = getattr(blocks, "close", None)
    if close is not None:
        close()
