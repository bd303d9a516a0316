"""`--gpus`, `--workers`, `--executor`, `--ray-address` and their env vars."""

from __future__ import annotations

import pytest

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import WorkerSettings
from avatar_batch.core.settings import resolve_worker_settings
from avatar_batch.render.devices import visible_gpu_ids

FOUR = ("0", "1", "2", "3")


def test_a_cpu_machine_runs_one_worker_in_this_process():
    assert resolve_worker_settings({}, {}, ()) == WorkerSettings("local", (), 1, None, in_process=True)


def test_a_gpu_box_gets_one_worker_per_gpu_by_default():
    settings = resolve_worker_settings({}, {}, FOUR)
    assert (settings.gpus, settings.workers, settings.in_process) == (FOUR, 4, False)
    assert [settings.device_of(i) for i in range(4)] == list(FOUR)


def test_picked_gpus_are_indices_into_the_visible_list_and_deal_round_robin():
    settings = resolve_worker_settings({}, {"gpus": "0,2", "workers": 4}, ("4", "5", "6"))
    assert settings.gpus == ("4", "6") and settings.workers == 4
    assert [settings.device_of(i) for i in range(4)] == ["4", "6", "4", "6"]


def test_one_gpu_picked_out_of_several_runs_in_a_worker_process():
    settings = resolve_worker_settings({}, {"gpus": "2"}, FOUR)
    assert (settings.workers, settings.in_process) == (1, False)
    assert resolve_worker_settings({}, {}, ("0",)).in_process


def test_cli_beats_env():
    env = {"AVATAR_BATCH_WORKERS": "3", "AVATAR_BATCH_GPUS": "1"}
    assert resolve_worker_settings(env, {}, FOUR).workers == 3
    assert resolve_worker_settings(env, {"workers": 2}, FOUR).workers == 2
    assert resolve_worker_settings(env, {"gpus": "all"}, FOUR).gpus == FOUR


def test_more_workers_than_cores_is_allowed_on_a_cpu_machine():
    settings = resolve_worker_settings({}, {"workers": 2}, ())
    assert (settings.workers, settings.in_process, settings.device_of(1)) == (2, False, None)


def test_ray_leaves_the_count_to_the_cluster():
    settings = resolve_worker_settings({"AVATAR_BATCH_EXECUTOR": "ray"}, {"ray_address": "auto"}, FOUR)
    assert settings == WorkerSettings("ray", (), None, "auto", in_process=False)


@pytest.mark.parametrize(
    "env, cli, message",
    [
        ({}, {"gpus": "0,7"}, "'7' is not a visible GPU index; visible: 0, 1, 2, 3"),
        ({}, {"gpus": "first"}, "is not a visible GPU index"),
        ({}, {"workers": 0}, "--workers 0 must be at least 1"),
        ({"AVATAR_BATCH_WORKERS": "two"}, {}, "AVATAR_BATCH_WORKERS='two' is not a valid int"),
        ({}, {"executor": "slurm"}, "unknown executor 'slurm'"),
        ({}, {"ray_address": "auto"}, "add --executor ray"),
    ],
)
def test_bad_values_name_the_flag_and_the_fix(env, cli, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("*", r"\*")):
        resolve_worker_settings(env, cli, FOUR)


def test_visible_gpus_follow_cuda_visible_devices_then_the_driver(tmp_path):
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": "3, 1"}, tmp_path) == ("3", "1")
    assert visible_gpu_ids({"CUDA_VISIBLE_DEVICES": ""}, tmp_path) == ()
    for index in range(2):
        (tmp_path / f"0000:0{index}:00.0").mkdir()
    assert visible_gpu_ids({}, tmp_path) == ("0", "1")
    assert visible_gpu_ids({}, tmp_path / "absent") == ()
