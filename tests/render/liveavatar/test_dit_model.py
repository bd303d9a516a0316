"""The causal S2V DiT on the tiny config: key names, entry points, caches and the
causal invariants (a later block never changes an earlier one; cached == one
uncached pass over the history; the sink reference rolls as docs/model.md §2.9 says)."""

from __future__ import annotations

import pytest
import torch

from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY
from avatar_batch.render.liveavatar.dit import BlockInputs, CausalS2VDiT, DiTNumerics, rolled_reference_time
from avatar_batch.render.liveavatar.dit.attention import sdpa
from avatar_batch.render.liveavatar.dit.embeddings import unpatchify
from avatar_batch.render.liveavatar.dit.rope import apply_rope, block_positions
from tests.render.liveavatar.conftest import reference_manifest

H_PX = W_PX = 128  # latent 16x16, 64 tokens per latent frame
LAT = H_PX // 8
C = 16
# Exactness tests compare two computation orders; the parity bf16 cast before
# norm3 would turn fp32 round-off into bf16 steps, so it is off there.
EXACT = DiTNumerics(rope_fp16_multipliers=True, bf16_before_text_norm=False)


@pytest.fixture(scope="module")
def model() -> CausalS2VDiT:
    return random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32, numerics=EXACT)


def make_inputs(seed: int, num_blocks: int, audio_dim: int = 32):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(C, 1, LAT, LAT, generator=g)
    motion = torch.randn(C, 30, LAT, LAT, generator=g)
    text = torch.randn(9, 4096, generator=g)
    blocks = [
        (torch.randn(C, 3, LAT, LAT, generator=g), torch.randn(25, audio_dim, 12, generator=g))
        for _ in range(num_blocks)
    ]
    return ref, motion, text, blocks


def run_cached(model, ref, motion, text, blocks, *, window_frames=12, timestep=857.6923, sink_distance=10):
    context = model.embed_text(text)
    cond = model.new_cond_cache(H_PX, W_PX)
    step = model.new_step_caches(H_PX, W_PX, num_steps=1, window_latent_frames=window_frames)[0]
    model.prefill_sink(ref, motion, context, cond)
    outs = []
    for j, (latents, audio) in enumerate(blocks):
        block = BlockInputs(latents, timestep, audio, first_frame=3 * j, sink_distance=sink_distance)
        outs.append(model.denoise_block(block, step, cond))
    return outs, cond, context


def test_state_dict_keys_and_shapes_equal_the_official_dump():
    with torch.device("meta"):
        model = CausalS2VDiT(CONFIG_14B.dit)
    reference = reference_manifest("dit_state_dict.json")["tensors"]
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == [[k, s] for k, s, _ in reference]
    assert sum(p.numel() for p in model.parameters()) == 16_295_755_609


def test_entry_points_shapes_dtypes_and_cache_sizes():
    model = random_dit(CONFIG_TINY.dit, seed=1, dtype=torch.bfloat16)
    ref, motion, text, blocks = make_inputs(1, 1)
    outs, cond, context = run_cached(model, ref, motion, text, blocks)
    assert context.shape == (1, 512, 128) and context.dtype == torch.bfloat16
    assert outs[0].shape == (C, 3, LAT, LAT) and outs[0].dtype == torch.bfloat16
    assert torch.isfinite(outs[0].float()).all()
    # Caches come from the model's own heads (2) x head dim (64), sized from the pixels.
    assert cond.keys[0].shape == (1, 160, 2, 64) and cond.length_tokens == 160  # 2.5 x 64 tokens
    assert len(cond.keys) == 3 and cond.keys[0].dtype == torch.bfloat16
    steps = model.new_step_caches(H_PX, W_PX, num_steps=4)
    assert len(steps) == 4 and steps[0].keys[0].shape == (1, 12 * 64, 2, 64)


def test_sink_prefill_stores_unrotated_keys(model):
    ref, motion, text, _ = make_inputs(2, 0)
    context = model.embed_text(text)
    cond = model.new_cond_cache(H_PX, W_PX)
    model.prefill_sink(ref, motion, context, cond)
    # Layer 0's keys depend only on the embedded sink tokens: recompute them directly.
    x = torch.cat(
        [
            model._patchify(model.patch_embedding, ref[None]) + model.trainable_cond_mask.weight[1],
            model.frame_packer(motion) + model.trainable_cond_mask.weight[2],
        ],
        dim=1,
    )
    _, _, e0_zero = model._time_conditioning(0.0, 3)
    captured = {}

    def capture(q, k, v):
        captured["k"], captured["v"] = k, v
        return sdpa(q, k, v)

    model.blocks[0](x, e0_zero[:1], model.blocks[0].text_keys_values(context), capture)
    torch.testing.assert_close(cond.keys[0][:, :160], captured["k"])
    torch.testing.assert_close(cond.values[0][:, :160], captured["v"])
    assert cond.ref_tokens == 64 and cond.positions[0].tolist() == [30, 0, 0]


def test_a_later_block_never_changes_an_earlier_one(model):
    ref, motion, text, blocks = make_inputs(3, 3)
    first, _, _ = run_cached(model, ref, motion, text, blocks)
    changed = blocks[:2] + [(torch.randn(C, 3, LAT, LAT), blocks[2][1])]
    second, _, _ = run_cached(model, ref, motion, text, changed)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.allclose(first[2], second[2])
    # ...while an earlier block does reach a later one through the cache.
    earlier = [(torch.randn(C, 3, LAT, LAT), blocks[0][1])] + blocks[1:]
    third, _, _ = run_cached(model, ref, motion, text, earlier)
    assert not torch.allclose(first[2], third[2], atol=1e-4)


def test_rerunning_an_early_block_ignores_later_cache_entries(model):
    ref, motion, text, blocks = make_inputs(4, 3)
    outs, cond, context = run_cached(model, ref, motion, text, blocks)
    step = model.new_step_caches(H_PX, W_PX, num_steps=1)[0]
    for j, (latents, audio) in enumerate(blocks):
        model.denoise_block(BlockInputs(latents, 857.6923, audio, 3 * j, 10), step, cond)
    again = model.denoise_block(BlockInputs(blocks[0][0], 857.6923, blocks[0][1], 0, 10), step, cond)
    torch.testing.assert_close(again, outs[0], rtol=0, atol=1e-6)


def uncached_reference(model, ref, motion, text, blocks, *, window_frames, timestep, sink_distance):
    """All blocks in ONE pass over their concatenated tokens: block j's queries see the
    keys of the blocks in the window ending at j and the sink re-rotated for block j."""
    _, cond, context = run_cached(model, ref, motion, text, blocks[:1], timestep=timestep)  # the prefill
    fsl, frames = 64, 3
    count = len(blocks)
    x = model._noisy_tokens([BlockInputs(lat, timestep, a, 0, sink_distance) for lat, a in blocks])
    rope = model._rope(torch.cat([block_positions(3 * j, frames, 8, 8) for j in range(count)]))
    cond_ropes = []
    for j in range(count):
        pos = cond.positions.clone()
        pos[: cond.ref_tokens, 0] = rolled_reference_time(3 * j, sink_distance)
        cond_ropes.append(model._rope(pos))
    e, e0, _ = model._time_conditioning(timestep, frames)
    e_all, e0_all = e.repeat(count, 1), e0.repeat(count, 1, 1)
    glob, local = model._encode_audio([a for _, a in blocks], frames)
    per_block, window_blocks = frames * fsl, window_frames // frames

    def attend_for(layer):
        def attend(q, k, v):
            qr, kr = apply_rope(q, rope), apply_rope(k, rope)
            cond_k, cond_v = cond.read(layer)
            outs = []
            for j in range(count):
                lo, hi = max(0, j - window_blocks + 1) * per_block, (j + 1) * per_block
                keys = torch.cat([kr[:, lo:hi], apply_rope(cond_k, cond_ropes[j])], dim=1)
                values = torch.cat([v[:, lo:hi], cond_v], dim=1)
                outs.append(sdpa(qr[:, j * per_block : hi], keys, values))
            return torch.cat(outs, dim=1)

        return attend

    for layer, block in enumerate(model.blocks):
        x = block(x, e0_all, block.text_keys_values(context), attend_for(layer))
        if layer in model._injector_of_layer:
            x = model.audio_injector.inject(model._injector_of_layer[layer], x, glob, local)
    out = model.head(x.reshape(count * frames, fsl, -1), e_all)
    return [unpatchify(o.reshape(frames * fsl, -1), (frames, 8, 8), (1, 2, 2), C) for o in out.split(frames)]


@pytest.mark.parametrize("window_frames, sink_distance", [(12, 10), (9, 28)])
def test_cached_block_by_block_equals_one_uncached_pass(model, window_frames, sink_distance):
    # 5 blocks: with a 9-frame window the ring wraps and reorders its slots.
    ref, motion, text, blocks = make_inputs(5, 5)
    kwargs = dict(window_frames=window_frames, timestep=602.1506, sink_distance=sink_distance)
    cached, _, _ = run_cached(model, ref, motion, text, blocks, **kwargs)
    reference = uncached_reference(model, ref, motion, text, blocks, **kwargs)
    for got, want in zip(cached, reference):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_rolled_reference_position():
    assert rolled_reference_time(0, 4) == 30  # far from the reference: it stays at 30
    assert rolled_reference_time(26, 4) == 30
    assert rolled_reference_time(27, 4) == 31  # from f0 >= 30 - d on, it sits d frames ahead
    assert rolled_reference_time(300, 17) == 317


def test_sink_distance_matters_only_once_the_reference_rolls(model):
    ref, motion, text, blocks = make_inputs(6, 1)
    context = model.embed_text(text)
    cond = model.new_cond_cache(H_PX, W_PX)
    model.prefill_sink(ref, motion, context, cond)
    latents, audio = blocks[0]

    def velocity(first_frame, distance):
        step = model.new_step_caches(H_PX, W_PX, 1)[0]
        step.written_tokens = first_frame * 64  # pretend the history is there (zeros)
        return model.denoise_block(BlockInputs(latents, 1000.0, audio, first_frame, distance), step, cond)

    assert torch.equal(velocity(0, 4), velocity(0, 10))  # both keep the reference at 30
    assert not torch.allclose(velocity(27, 4), velocity(27, 10))  # 31 vs 37


def test_audio_of_a_later_frame_never_reaches_an_earlier_latent(model):
    audio = torch.randn(25, 32, 12)
    changed = audio.clone()
    changed[..., 11] += 1.0  # the last video frame belongs to latent frame 2
    g1, l1 = model._encode_audio(audio, 3)
    g2, l2 = model._encode_audio(changed, 3)
    assert torch.equal(g1[:2], g2[:2]) and torch.equal(l1[:2], l2[:2])
    assert not torch.allclose(g1[2], g2[2])
    assert l1.shape == (3, 5, 128) and g1.shape == (3, 128)


def test_blocks_must_arrive_in_order(model):
    ref, motion, text, blocks = make_inputs(7, 1)
    _, cond, context = run_cached(model, ref, motion, text, [])
    step = model.new_step_caches(H_PX, W_PX, 1)[0]
    with pytest.raises(ValueError, match="skips frames"):
        model.denoise_block(BlockInputs(blocks[0][0], 1000.0, blocks[0][1], 3, 10), step, cond)


def test_denoise_needs_a_prefilled_sink(model):
    _, _, text, blocks = make_inputs(8, 1)
    cond = model.new_cond_cache(H_PX, W_PX)
    step = model.new_step_caches(H_PX, W_PX, 1)[0]
    with pytest.raises(ValueError, match="prefill_sink"):
        model.denoise_block(BlockInputs(blocks[0][0], 1000.0, blocks[0][1], 0, 10), step, cond)


def test_unsupported_config_is_refused():
    from dataclasses import replace

    with pytest.raises(ValueError, match="enable_framepack"):
        CausalS2VDiT(replace(CONFIG_TINY.dit, enable_framepack=False))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_tiny_dit_on_cuda_matches_cpu(model):
    torch.backends.cudnn.allow_tf32 = False  # compare fp32 with fp32
    torch.backends.cuda.matmul.allow_tf32 = False
    ref, motion, text, blocks = make_inputs(9, 2)
    on_cpu, _, _ = run_cached(model, ref, motion, text, blocks)
    gpu = random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32, numerics=EXACT).to("cuda")
    on_gpu, cond, _ = run_cached(gpu, ref, motion, text, blocks)
    assert cond.keys[0].is_cuda and on_gpu[1].is_cuda
    for got, want in zip(on_gpu, on_cpu):
        torch.testing.assert_close(got.cpu(), want, rtol=1e-3, atol=1e-3)
    bf16 = random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.bfloat16).to("cuda")
    out, _, _ = run_cached(bf16, ref, motion, text, blocks)
    assert out[1].dtype == torch.bfloat16 and torch.isfinite(out[1].float()).all()
    assert (out[1].float().cpu() - on_cpu[1]).abs().mean() < 0.05 * on_cpu[1].abs().mean()
