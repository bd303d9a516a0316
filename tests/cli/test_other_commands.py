"""`doctor`, `library list|verify|rebuild` and `weights manifest|tiny|verify` through the CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from avatar_batch.cli import app
from tests.render.liveavatar.conftest import reference_manifest


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_doctor_checks_tools_and_the_catalogue_voices(project):
    result = invoke("doctor", project.catalogue)
    assert result.exit_code == 0, result.output
    assert "ffmpeg" in result.output and "voice dr_chen/en" in result.output


def test_doctor_says_how_to_fix_heavy_packages_without_bytecode(project, monkeypatch, tmp_path):
    from avatar_batch.cli import commands_doctor
    from avatar_batch.core.bytecode import BytecodeState

    slow = BytecodeState("torch", tmp_path / "site" / "torch", modules=100, without_bytecode=90)
    monkeypatch.setattr(commands_doctor, "heavy_imports_state", lambda: [slow])
    result = CliRunner().invoke(app, ["doctor", str(project.catalogue)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output  # slower, not broken
    assert "torch 90/100" in result.output and f"python -m compileall -q {tmp_path / 'site'}" in result.output


def test_doctor_reports_an_unknown_voice(project):
    data = project.data()
    data["personas"]["dr_chen"]["voices"]["en"] = "xx-nonexistent"
    project.write(data)
    result = invoke("doctor", project.catalogue)
    assert result.exit_code == 69
    assert "missing" in result.output


def test_library_list_verify_rebuild(project):
    assert invoke("render", project.catalogue, "--plain").exit_code == 0
    listed = invoke("library", "list", project.library, "--json")
    assert listed.exit_code == 0
    rows = json.loads(listed.output)
    assert sorted(r["entry_id"] for r in rows) == ["smoke-pharmacy", "smoke-register"]
    assert invoke("library", "verify", project.library).exit_code == 0
    (project.library / "index.html").unlink()
    (project.library / "library.sqlite").unlink()
    assert invoke("library", "rebuild", project.library).exit_code == 0
    assert (project.library / "index.html").exists() and (project.library / "library.sqlite").exists()
    video = project.library / rows[0]["video"]
    video.write_bytes(video.read_bytes()[:1000])
    damaged = invoke("library", "verify", project.library)
    assert damaged.exit_code == 65 and rows[0]["entry_id"] in damaged.output


def test_weights_manifest_14b_equals_the_reference_manifests():
    result = invoke("weights", "manifest", "--config", "14b", "--json")
    assert result.exit_code == 0
    ours = json.loads(result.output)
    for part, name in [
        ("dit", "dit_state_dict.json"),
        ("lora", "lora_keys.json"),
        ("t5", "t5_state_dict.json"),
        ("vae", "vae_state_dict.json"),
    ]:
        reference = reference_manifest(name)["tensors"]
        assert [[k, list(s), d] for k, s, d in ours[part]] == [[k, list(s), d] for k, s, d in reference], part


def test_weights_tiny_then_verify_then_break_it(tmp_path):
    root = tmp_path / "weights"
    assert invoke("weights", "tiny", root).exit_code == 0
    assert invoke("weights", "verify", root).exit_code == 0
    shard = sorted((root / "Wan2.2-S2V-14B").glob("diffusion_pytorch_model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-100])
    broken = invoke("weights", "verify", root)
    assert broken.exit_code == 69
    assert shard.name in broken.output


def test_doctor_plans_the_placement_for_a_gpu_budget(project):
    result = invoke("doctor", "--gpu-memory", "24")
    assert result.exit_code in (0, 69), result.output  # 69 only for missing tools, not for the placement
    for preset in ("quick", "standard", "high"):
        assert f"placement {preset}" in result.output


def test_plan_prints_the_placement_of_the_liveavatar_renderer(project, tmp_path):
    weights = tmp_path / "weights"
    assert invoke("weights", "tiny", weights).exit_code == 0
    flags = ("--renderer", "liveavatar", "--weights", weights, "--preset", "quick")
    as_json = invoke("plan", project.catalogue, *flags, "--json")
    assert as_json.exit_code == 2, as_json.output
    placement = json.loads(as_json.output)["placement"]
    assert placement["device"] == "cpu" and placement["placement"]["offload"] == "none"
    assert placement["expected_peak_gpu_gib"] > 0 and placement["decision"].startswith("offload none")
    text = invoke("plan", project.catalogue, *flags, "--offload", "blocks")
    assert "placement (cpu, 384*256): offload blocks: 0/3 DiT layers" in text.output
    still = invoke("plan", project.catalogue, "--json")
    assert json.loads(still.output)["placement"] is None


def test_weights_verify_takes_the_encoder_sizes_from_the_files(tmp_path):
    """umT5 and VAE of sizes no built-in config has, no side file: verify passes,
    and a tensor that does not fit them is still named."""
    from dataclasses import replace

    import torch

    from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
    from avatar_batch.render.liveavatar.config import CONFIG_TINY, T5Sizes, VaeSizes

    t5 = T5Sizes(vocab=600, dim=4096, dim_attn=48, dim_ffn=80, num_heads=3, num_layers=3, num_buckets=16)
    vae = VaeSizes(dim=4, dim_mult=(1, 2, 3, 1), num_res_blocks=1, temperal_downsample=(True, False, True))
    root = tmp_path / "weights"
    write_tiny_checkpoint(root, replace(CONFIG_TINY, t5=t5, vae=vae))
    result = invoke("weights", "verify", root)
    assert result.exit_code == 0, result.output
    path = root / "Wan2.2-S2V-14B" / "Wan2.1_VAE.pth"
    state = torch.load(path, weights_only=True)
    state["decoder.conv1.weight"] = state["decoder.conv1.weight"][:1].clone()
    torch.save(state, path)
    broken = invoke("weights", "verify", root)
    assert broken.exit_code == 69
    assert "decoder.conv1.weight" in broken.output and "wrong shape" in broken.output
    assert broken.output.count("error") == 1, broken.output
