"""The placement planner without a GPU: byte formulas against the real modules,
estimates against the measured H100 peaks, decisions for the 14b model at
24-141 GiB, host accounting, capability and "nothing fits" errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from avatar_batch.core.errors import OutOfMemoryError, UsageError
from avatar_batch.render.liveavatar.checkpoint.manifest import meta_dit
from avatar_batch.render.liveavatar.checkpoint.tiny import random_dit
from avatar_batch.render.liveavatar.config import CONFIG_14B, CONFIG_TINY
from avatar_batch.render.liveavatar.dit.fp8 import KEEP_IN_BF16
from avatar_batch.render.liveavatar.dit.quant import Int4Linear, quantise_linears
from avatar_batch.render.liveavatar.memory_model import (
    GIB,
    activation_bytes,
    block_params,
    decoder_bytes,
    injector_params,
    injectors_params,
    layer_params,
    model_bytes,
    sink_cache_layer_bytes,
    step_cache_layer_bytes,
    text_cache_layer_bytes,
    trunk_params,
    wav2vec2_params,
)
from avatar_batch.render.liveavatar.memory_model import VideoShape as Video
from avatar_batch.render.liveavatar.placement_plan import (
    BLOCKS_HEADROOM_FRACTION,
    Machine,
    PlacementError,
    PlacementRequest,
    candidates,
    estimate,
    knobs_of,
    moved_bytes_per_wave,
    plan_placement,
    required_gpu_bytes,
)

REPO = Path(__file__).resolve().parents[3]
RESULTS = REPO / "benchmarks" / "results" / "NVIDIA-H100-80GB-HBM3-20261124.json"
H100_BYTES = 85_031_714_816  # torch.cuda.get_device_properties(0).total_memory of an H100 80GB HBM3
H200_BYTES = 150_754_820_096
HOST = 512 * GIB
SIZES = {"704*384": Video(384, 704, 48, 4), "384*256": Video(256, 384, 48, 3)}


def request(size="704*384", precision="bf16", budget_gib=None, offload="auto", host=HOST, capability=(9, 0), **kw):
    video = SIZES[size] if isinstance(size, str) else size
    budget = None if budget_gib is None else int(budget_gib * GIB)
    machine = Machine("NVIDIA H200", H200_BYTES, capability, budget, host)
    fmt = kw.pop("weight_format", "fp8" if precision == "fp8" else "bf16")
    return PlacementRequest(CONFIG_14B, video, machine, precision, fmt, kw.pop("kv_format", "bf16"), offload)


# --- the byte formulas are the modules' -------------------------------------------------


@pytest.mark.parametrize("cfg", [CONFIG_14B, CONFIG_TINY], ids=["14b", "tiny"])
def test_dit_parameter_formulas_equal_the_module(cfg):
    model = meta_dit(cfg.dit)
    assert block_params(cfg.dit).total == sum(p.numel() for p in model.blocks[0].parameters())
    injectors = sum(p.numel() for p in model.audio_injector.parameters())
    assert injector_params(cfg.dit).total * len(cfg.dit.audio_inject_layers) == injectors
    layers = sum(p.total for p in layer_params(cfg.dit))
    assert layer_params(cfg.dit)[0].total == sum(p.numel() for p in model.blocks[0].parameters())  # what streams
    assert injectors_params(cfg.dit).total == injectors
    assert trunk_params(cfg.dit).total + injectors + layers == sum(p.numel() for p in model.parameters())
    quantised = sum(
        m.weight.numel()
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and not name.startswith(KEEP_IN_BF16)
    )
    stored_low_bit = sum(p.linear for p in layer_params(cfg.dit)) + injectors_params(cfg.dit).linear
    assert stored_low_bit == quantised  # what fp8.py stores in 8 bits


@pytest.mark.parametrize("cfg", [CONFIG_14B, CONFIG_TINY], ids=["14b", "tiny"])
def test_wav2vec2_formula_equals_the_module(cfg):
    from transformers import Wav2Vec2ForCTC

    from avatar_batch.render.liveavatar.audio_encoder import _wav2vec2_config

    with torch.device("meta"):
        model = Wav2Vec2ForCTC(_wav2vec2_config(cfg.audio))
    assert wav2vec2_params(cfg.audio) == sum(p.numel() for p in model.parameters())


def test_14b_weights_in_each_format():
    bf16 = model_bytes(CONFIG_14B, "bf16", 2, "bf16")
    assert bf16.dit == 2 * 16_295_755_609  # 32.6 GB, the released DiT
    fp8 = model_bytes(CONFIG_14B, "fp8", 2, "fp8")
    int8 = model_bytes(CONFIG_14B, "int8", 2, "bf16")
    assert bf16.dit - fp8.dit == pytest.approx(15_938_355_200, rel=1e-4)  # one byte saved per linear weight
    assert int8.dit > fp8.dit and int8.dequantise_workspace > 0 == fp8.dequantise_workspace
    assert bf16.t5 == pytest.approx(11.4e9, rel=0.01)


def test_int4_formula_equals_the_stored_14b_block():
    block = meta_dit(CONFIG_14B.dit).blocks[0]
    quantise_linears(block, "int4", "bf16")
    stored = [m for m in block.modules() if isinstance(m, Int4Linear)]
    stored_bytes = sum(nbytes(m.buffers()) for m in stored)
    params = block_params(CONFIG_14B.dit)
    assert stored_bytes == params.nbytes("int4", 2) - params.other * 2
    assert len(stored) == params.linear_layers and stored_bytes < 0.27 * params.linear * 2  # ~a quarter of bf16


def nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def test_cache_formulas_equal_the_caches_the_model_fills():
    dit = random_dit(CONFIG_TINY.dit, seed=0, dtype=torch.float32)
    video = Video(128, 128, 48, 2)
    g = torch.Generator().manual_seed(0)
    lat = (16, 16)
    cond = dit.new_cond_cache(128, 128)
    context = dit.embed_text(torch.randn(5, CONFIG_TINY.dit.text_dim, generator=g))
    dit.prefill_sink(torch.randn(16, 1, *lat, generator=g), torch.randn(16, 19, *lat, generator=g), context, cond)
    layers = CONFIG_TINY.dit.num_layers
    assert nbytes(cond.keys + cond.values) == layers * sink_cache_layer_bytes(CONFIG_TINY.dit, video, 4)
    # The text keys and values stay on the device even where the sink streams.
    assert nbytes(t for kv in cond.text for t in kv) == layers * text_cache_layer_bytes(CONFIG_TINY.dit, 4)
    steps = dit.new_step_caches(128, 128, num_steps=2, window_latent_frames=video.window_latent_frames)
    assert nbytes(t for c in steps for t in c.keys + c.values) == 2 * layers * step_cache_layer_bytes(
        CONFIG_TINY.dit, video, 4
    )


def test_a_streamed_cond_cache_keeps_its_text_part_resident():
    at_24 = request("384*256", budget_gib=24)
    knobs = knobs_of(plan_placement(at_24))
    streamed = estimate(at_24, replace(knobs, cond_cache="stream"), 1)
    resident = estimate(at_24, replace(knobs, cond_cache="gpu"), 1)
    text = CONFIG_14B.dit.num_layers * text_cache_layer_bytes(CONFIG_14B.dit, 2)
    assert streamed.gpu["cond cache text"] == resident.gpu["cond cache text"] == text
    assert streamed.gpu["cond cache sink"] < resident.gpu["cond cache sink"]
    sink = CONFIG_14B.dit.num_layers * sink_cache_layer_bytes(CONFIG_14B.dit, SIZES["384*256"], 2)
    assert streamed.host["streamed KV caches"] - resident.host["streamed KV caches"] == sink


# --- estimates against measured peaks ---------------------------------------------------


def measured_runs() -> list[dict]:
    return json.loads(RESULTS.read_text(encoding="utf-8"))["runs"]


@pytest.mark.parametrize("run", measured_runs(), ids=lambda r: f"{r['width']}x{r['height']}-{r['precision']}")
def test_estimated_peak_is_within_10_percent_of_the_h100_measurement(run):
    # The benchmark keeps the DiT, its caches and the VAE on the GPU, the encoders elsewhere:
    # the sampling phase of `--offload model`, on the whole 80 GB card.
    video = Video(run["height"], run["width"], 48, run["steps"])
    machine = Machine("NVIDIA H100 80GB HBM3", H100_BYTES, (9, 0), None, HOST)
    fmt = "fp8" if run["precision"] == "fp8" else "bf16"
    placed = plan_placement(PlacementRequest(CONFIG_14B, video, machine, run["precision"], fmt, "bf16", "model"))
    measured = run["peak_gpu_gib"] * GIB
    assert placed.gpu_peak_bytes == pytest.approx(measured, rel=0.10)
    print(f"{video.width_px}x{video.height_px} {run['precision']}: {placed.gpu_peak_bytes / GIB:.2f} GiB estimated")


# --- decisions for the 14b model ---------------------------------------------------------


@pytest.mark.parametrize("budget_gib", [24, 40, 48, 80, 141])
@pytest.mark.parametrize("size", ["704*384", "384*256"])
@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_every_budget_gets_a_placement_within_it(budget_gib, size, precision):
    req = request(size, precision, budget_gib)
    placed = plan_placement(req)
    budget = min(budget_gib * GIB, H200_BYTES)  # 141 GiB is a little more than the card
    assert required_gpu_bytes(placed.gpu_peak_bytes) <= budget
    assert placed.gpu_budget_bytes == budget and placed.kv_format == "bf16"  # fp8 KV only when asked
    assert placed.weight_format == ("fp8" if precision == "fp8" else "bf16")
    weights = model_bytes(CONFIG_14B, placed.weight_format, 2, placed.compute)
    streamed = sum(weights.layers[placed.dit_layers_resident :])
    assert placed.host_pinned_bytes >= streamed  # every streamed layer has one pinned host copy
    if not placed.streams_kv:
        assert placed.host_pinned_bytes == streamed


def test_decisions_make_sense_at_each_card_size():
    assert knobs_of(plan_placement(request(budget_gib=141))).offload == "none"
    at_80 = plan_placement(request(budget_gib=80))
    assert (at_80.offload, at_80.helpers, at_80.streams_dit, at_80.streams_kv) == ("model", "lend", False, False)
    assert plan_placement(request("384*256", budget_gib=80)).offload == "none"
    at_24 = plan_placement(request(budget_gib=24))
    assert at_24.offload == "blocks" and at_24.streams_dit and at_24.streams_kv
    small_24 = plan_placement(request("384*256", budget_gib=24))
    # The step caches of 384*256 fit beside some layers and the side decoder's room.
    assert small_24.streams_dit and small_24.kv_steps_resident == small_24.kv_steps_total
    for size in SIZES:
        resident = [plan_placement(request(size, budget_gib=g)).dit_layers_resident for g in (24, 40, 48, 80)]
        assert resident[-1] == 40 and all(r >= 0 for r in resident)


def test_more_budget_never_moves_more_data():
    for size in SIZES:
        moved = []
        for gib in (24, 32, 40, 48, 64, 80, 141):
            req = request(size, budget_gib=gib)
            moved.append(moved_bytes_per_wave(req, knobs_of(plan_placement(req))))
        assert moved == sorted(moved, reverse=True)


def test_fp8_kv_cache_frees_memory_when_asked():
    plain, fp8 = request(budget_gib=48), request(budget_gib=48, kv_format="fp8")
    assert moved_bytes_per_wave(fp8, knobs_of(plan_placement(fp8))) < moved_bytes_per_wave(
        plain, knobs_of(plan_placement(plain))
    )


def test_explicit_modes_are_kept_or_refused():
    assert plan_placement(request(budget_gib=141, offload="model")).helpers == "lend"
    blocks = plan_placement(request(budget_gib=80, offload="blocks"))
    usable = (1 - BLOCKS_HEADROOM_FRACTION) * 80 * GIB
    assert blocks.offload == "blocks" and required_gpu_bytes(blocks.gpu_peak_bytes) <= usable
    with pytest.raises(PlacementError, match="would fit with --offload auto") as info:
        plan_placement(request(budget_gib=48, offload="none"))
    assert isinstance(info.value, OutOfMemoryError)  # the OOM ladder moves on without loading


def test_streaming_candidates_move_least_data_first():
    req = request(budget_gib=24)
    order = [moved_bytes_per_wave(req, k) for k in candidates(req)]
    assert order[:2] == [0, 0] and order[2:] == sorted(order[2:])


# --- host memory and errors ---------------------------------------------------------------


def test_host_memory_counts_lent_helpers_and_streamed_bytes():
    req = request(budget_gib=24)
    placed = plan_placement(req)
    found = estimate(req, knobs_of(placed), 1)
    weights = model_bytes(CONFIG_14B, "bf16", 2, "bf16")
    assert found.host["helpers lent"] == weights.helpers
    assert found.host_pinned_bytes == placed.host_pinned_bytes
    assert found.host_bytes == sum(found.host.values()) > placed.host_pinned_bytes + weights.helpers


def test_too_little_host_memory_is_refused_with_the_numbers():
    with pytest.raises(PlacementError) as info:
        plan_placement(request(budget_gib=24, host=48 * GIB))
    message = str(info.value)
    assert "fits 24.0 GiB of GPU memory only by keeping at least" in message
    assert "in host memory (48.0 GiB available)" in message and "NVIDIA H200" in message and "704x384" in message
    assert "--preset quick" in message


def test_too_small_a_gpu_names_what_would_fit():
    with pytest.raises(PlacementError) as info:
        plan_placement(request(budget_gib=10))
    message = str(info.value)
    assert "needs at least" in message and "of GPU memory (budget 10.0 GiB)" in message
    assert "would fit with a larger --gpu-memory" in message
    small_card = request()
    small_card = replace(small_card, machine=replace(small_card.machine, gpu_total_bytes=12 * GIB))
    with pytest.raises(PlacementError, match=r"budget 12\.0 GiB\); no change of flags makes it fit"):
        plan_placement(small_card)  # umT5 (11.4 GB) must visit the GPU to encode the prompt


def test_where_no_flag_fits_alone_the_fewest_savers_together_are_named():
    # An RTX 4090 (23.6 GiB) beside 22 GiB of free host memory, at 384*256.
    pc = request("384*256", host=22 * GIB, capability=(8, 9))
    pc = replace(pc, machine=replace(pc.machine, gpu_name="NVIDIA GeForce RTX 4090", gpu_total_bytes=int(23.6 * GIB)))
    with pytest.raises(PlacementError, match=r"it would fit with --kv-format fp8 --weight-format int8$"):
        plan_placement(pc)
    both = plan_placement(replace(pc, kv_format="fp8", weight_format="int8"))
    assert both.kv_format == "fp8" and both.weight_format == "int8"
    with pytest.raises(PlacementError, match="it would fit with --weight-format int8$"):
        plan_placement(replace(pc, machine=replace(pc.machine, host_available_bytes=24 * GIB)))
    # With 16 GiB of host memory no change with int8 weights fits; int4 keeps the whole DiT on the card.
    with pytest.raises(PlacementError, match="it would fit with --weight-format int4$"):
        plan_placement(replace(pc, machine=replace(pc.machine, host_available_bytes=16 * GIB)))
    int4 = plan_placement(replace(pc, weight_format="int4", machine=replace(pc.machine, host_available_bytes=16 * GIB)))
    assert int4.dit_layers_resident == int4.dit_layers_total and int4.weight_format == "int4"


def test_fp8_below_sm89_names_the_gpu_and_the_option():
    req = request(precision="fp8", budget_gib=40, capability=(8, 0))
    req = replace(req, machine=replace(req.machine, gpu_name="NVIDIA A100-SXM4-40GB"))
    with pytest.raises(UsageError, match=r"A100-SXM4-40GB is sm 8\.0.*--weight-format fp8 --precision bf16"):
        plan_placement(req)
    ampere = plan_placement(request(weight_format="int8", budget_gib=40, capability=(8, 0)))
    assert ampere.compute == "bf16" and ampere.weight_format == "int8"


def test_cpu_places_everything_on_the_compute_device():
    req = replace(request(), machine=Machine(None, host_available_bytes=8 * GIB), model=CONFIG_TINY)
    placed = plan_placement(replace(req, video=Video(256, 384, 48, 3)))
    assert (placed.compute, placed.offload, placed.streams_dit, placed.streams_kv) == ("fp32", "none", False, False)
    assert placed.host_pinned_bytes == 0


def test_runner_precision_check_names_the_gpu_and_the_8_bit_option(monkeypatch):
    from avatar_batch.render.liveavatar.runner import Runtime, check_precision

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA RTX A6000")
    with pytest.raises(UsageError, match=r"RTX A6000 is sm 8\.6.*--weight-format fp8 --precision bf16"):
        check_precision("fp8", Runtime(torch.device("cuda"), torch.bfloat16))


def test_streamed_placements_reserve_the_side_decoders_room_beside_the_activations():
    """A streamed placement fills the budget; the decoder then works beside the sampler
    only if the plan kept its room (resident ones keep the larger of the two, as measured)."""
    at_48 = request(budget_gib=48)
    streamed = plan_placement(at_48)
    assert streamed.offload == "blocks"
    found = estimate(at_48, knobs_of(streamed), 1)
    activations = activation_bytes(CONFIG_14B.dit, SIZES["704*384"], 2, False)
    assert found.gpu["activations"] == activations + decoder_bytes(SIZES["704*384"], 1)
    resident = estimate(request(), knobs_of(plan_placement(request())), 1)
    assert resident.gpu["activations"] == max(activations, decoder_bytes(SIZES["704*384"], 1))


# --- the README's table of decisions ---------------------------------------------------


def readme_cell(p) -> str:
    """A decision in the words of the README's table ("n/40 layers" = resident)."""
    if p.offload == "none":
        return "all resident"
    if p.offload == "model":
        return f"helpers lent, {p.gpu_peak_bytes / GIB:.1f} GiB"
    parts = [f"{p.dit_layers_resident}/{p.dit_layers_total} layers"]
    streamed = p.kv_steps_total - p.kv_steps_resident
    if streamed:
        parts.append(f"{streamed} step cache{'s' if streamed > 1 else ''} streamed")
    if p.cond_cache == "stream":
        parts.append("cond cache streamed")
    return ", ".join(parts) + f" ({p.gpu_peak_bytes / GIB:.1f} GiB)"


def test_the_readme_table_is_the_planners_decisions():
    header = "| budget | 704*384 bf16 | 704*384 fp8 | 384*256 bf16 | 384*256 fp8 |"
    lines = (REPO / "README.md").read_text(encoding="utf-8").split(header + "\n")[1].splitlines()[1:6]
    for line in lines:
        budget, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        gib = int(budget.removesuffix(" GiB"))
        columns = [(size, precision) for size in ("704*384", "384*256") for precision in ("bf16", "fp8")]
        planned = [
            readme_cell(plan_placement(request(size, precision, None if gib == 141 else gib)))
            for size, precision in columns
        ]
        assert cells == planned, f"README row {budget}"
