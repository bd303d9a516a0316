from __future__ import annotations

import pytest

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import CatalogueDefaults, Entry, RenderSettings
from avatar_batch.core.settings import parse_size, resolve_run_settings, settings_for_entry


def test_layers_apply_in_order_defaults_catalogue_env_cli():
    defaults = CatalogueDefaults(preset="high", seed=1)
    env = {"AVATAR_BATCH_SEED": "7", "AVATAR_BATCH_PRESET": "standard"}
    settings = resolve_run_settings(defaults, env, {"seed": 9})
    assert settings.preset == "standard" and settings.size == "688*368" and settings.sample_steps == 4
    assert settings.seed == 9


def test_preset_brings_size_and_steps_but_same_layer_size_wins():
    settings = resolve_run_settings(CatalogueDefaults(), {}, {"preset": "quick", "size": "512*256"})
    assert (settings.preset, settings.size, settings.sample_steps) == ("quick", "512*256", 3)


@pytest.mark.parametrize(
    "cli, message",
    [
        ({"preset": "ultra"}, "unknown preset 'ultra'"),
        ({"renderer": "gpu"}, "unknown renderer"),
        ({"size": "704x"}, "is not WIDTH*HEIGHT"),
        ({"sample_steps": 0}, "sample_steps 0 must be at least 1"),
        ({"offload": "disk"}, "unknown offload mode"),
        ({"num_clip": 0}, "num_clip 0"),
        ({"weight_format": "int2"}, "unknown weight format 'int2'"),
        ({"kv_format": "int8"}, "unknown kv format 'int8'"),
        ({"gpu_memory_gib": 0.0}, "--gpu-memory 0.0 GiB must be a positive"),
        ({"precision": "fp8", "weight_format": "int8"}, "--precision fp8 computes with weights stored in fp8"),
        ({"precision": "fp8", "weight_format": "bf16"}, "use --weight-format auto"),
    ],
)
def test_bad_settings_are_usage_errors(cli, message):
    with pytest.raises(UsageError, match=message.replace("*", r"\*")) as info:
        resolve_run_settings(CatalogueDefaults(), {}, cli)
    assert info.value.exit_code == 2


def test_bad_env_value_names_the_variable():
    with pytest.raises(UsageError, match="AVATAR_BATCH_SEED"):
        resolve_run_settings(CatalogueDefaults(), {"AVATAR_BATCH_SEED": "abc"}, {})


def test_entry_override_unless_fixed_on_command_line():
    run = resolve_run_settings(CatalogueDefaults(), {}, {})
    entry = Entry("a", "p", "d", {"en": "q"}, {"en": "a"}, ("en",), preset="quick")
    assert settings_for_entry(run, entry).preset == "quick"
    assert settings_for_entry(run, entry, frozenset({"preset"})).preset == "standard"


def test_parse_size_accepts_star_and_x():
    assert parse_size("704*384") == (704, 384)
    assert parse_size("384x256") == (384, 256)


def test_hashed_fields_leave_out_where_weights_live():
    a = RenderSettings(weights_dir="/a", offload="none").hashed_fields()
    b = RenderSettings(weights_dir="/b", offload="model").hashed_fields()
    assert a == b


def test_offload_and_formats_resolve_through_every_layer():
    assert RenderSettings().offload == "auto"
    env = {"AVATAR_BATCH_GPU_MEMORY": "24", "AVATAR_BATCH_KV_FORMAT": "fp8", "AVATAR_BATCH_OFFLOAD": "blocks"}
    settings = resolve_run_settings(CatalogueDefaults(), env, {"weight_format": "int8"})
    assert (settings.gpu_memory_gib, settings.kv_format, settings.offload) == (24.0, "fp8", "blocks")
    assert settings.weight_format == "int8"
    with pytest.raises(UsageError, match="AVATAR_BATCH_GPU_MEMORY"):
        resolve_run_settings(CatalogueDefaults(), {"AVATAR_BATCH_GPU_MEMORY": "lots"}, {})


def test_weight_format_auto_follows_precision():
    assert RenderSettings().resolved_weight_format == "bf16"
    assert RenderSettings(precision="fp8").resolved_weight_format == "fp8"
    assert RenderSettings(weight_format="int8").resolved_weight_format == "int8"


def test_budget_and_offload_never_enter_the_hash():
    plain = RenderSettings().hashed_fields()
    assert RenderSettings(gpu_memory_gib=24.0, offload="blocks").hashed_fields() == plain
    assert "weight_format" not in plain and "kv_format" not in plain


def test_formats_enter_the_hash_only_when_they_change_pixels():
    plain = RenderSettings().hashed_fields()
    assert RenderSettings(weight_format="bf16").hashed_fields() == plain
    fp8 = RenderSettings(precision="fp8").hashed_fields()
    assert RenderSettings(precision="fp8", weight_format="fp8").hashed_fields() == fp8
    assert RenderSettings(weight_format="int8").hashed_fields() == {**plain, "weight_format": "int8"}
    assert RenderSettings(kv_format="fp8").hashed_fields() == {**plain, "kv_format": "fp8"}


def test_model_limits_are_the_renderers_not_the_settings():
    """Steps past 4 are the liveavatar model's limit (checked when it opens), not a tool-wide one."""
    assert resolve_run_settings(CatalogueDefaults(), {}, {"sample_steps": 5}).sample_steps == 5


def test_sink_refresh_enters_the_job_id_only_when_on():
    off = RenderSettings().hashed_fields()
    assert "sink_refresh" not in off  # ids of videos made before the option stay
    assert RenderSettings(sink_refresh=True).hashed_fields() == {**off, "sink_refresh": True}


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("on", True), ("TRUE", True), ("no", False), ("0", False)])
def test_sink_refresh_from_env(raw, expected):
    run = resolve_run_settings(CatalogueDefaults(), {"AVATAR_BATCH_SINK_REFRESH": raw}, {})
    assert run.sink_refresh is expected


def test_bad_sink_refresh_env_names_the_variable_and_the_words():
    with pytest.raises(UsageError, match="AVATAR_BATCH_SINK_REFRESH='sometimes'.*on/off"):
        resolve_run_settings(CatalogueDefaults(), {"AVATAR_BATCH_SINK_REFRESH": "sometimes"}, {})


def test_entry_sink_refresh_unless_fixed_on_command_line():
    entry = Entry("a", "p", "d", {"en": "q"}, {"en": "a"}, ("en",), sink_refresh=True)
    run = resolve_run_settings(CatalogueDefaults(), {}, {})
    assert settings_for_entry(run, entry).sink_refresh is True
    fixed = resolve_run_settings(CatalogueDefaults(), {}, {"sink_refresh": False})
    assert settings_for_entry(fixed, entry, frozenset({"sink_refresh"})).sink_refresh is False
    plain = Entry("b", "p", "d", {"en": "q"}, {"en": "a"}, ("en",))
    assert settings_for_entry(resolve_run_settings(CatalogueDefaults(), {}, {"sink_refresh": True}), plain).sink_refresh


@pytest.mark.parametrize(
    "env, cli, expected",
    [
        ({"HOME": "/home/ana"}, {}, "/home/ana/.cache/avatar-batch/compile"),
        ({"HOME": "/home/ana", "XDG_CACHE_HOME": "/var/cache/ana"}, {}, "/var/cache/ana/avatar-batch/compile"),
        ({}, {}, None),  # no home known: off rather than a guess
        ({"HOME": "/home/ana", "AVATAR_BATCH_COMPILE_CACHE": "/fast/cc"}, {}, "/fast/cc"),
        ({"AVATAR_BATCH_COMPILE_CACHE": "/fast/cc"}, {"compile_cache_dir": "/mine"}, "/mine"),
        ({"HOME": "/home/ana"}, {"compile_cache_dir": "off"}, None),
        ({"HOME": "/home/ana", "AVATAR_BATCH_COMPILE_CACHE": "OFF"}, {}, None),
    ],
)
def test_the_compile_cache_folder_resolves_from_flag_env_and_the_users_cache(env, cli, expected):
    assert resolve_run_settings(CatalogueDefaults(), env, cli).compile_cache_dir == expected


def test_the_compile_cache_never_enters_the_job_id():
    assert RenderSettings(compile_cache_dir="/a").hashed_fields() == RenderSettings().hashed_fields()


@pytest.mark.parametrize(
    ("env", "cli", "expected"),
    [
        ({}, {}, False),
        ({"AVATAR_BATCH_CUDA_GRAPHS": "on"}, {}, True),
        ({"AVATAR_BATCH_CUDA_GRAPHS": "on"}, {"cuda_graphs": False}, False),
    ],
)
def test_cuda_graphs_resolve_from_env_and_flag_and_leave_job_ids_alone(env, cli, expected):
    assert resolve_run_settings(CatalogueDefaults(), env, cli).cuda_graphs is expected
    assert RenderSettings(cuda_graphs=True).hashed_fields() == RenderSettings().hashed_fields()
