"""The persistent compile cache: its key, its file, and a render around a bad file.

torch's artifact API is faked at the edge here (the renderer's CPU path runs the
blocks eager); `test_compiled_kernels_survive_into_a_new_process` runs the real
inductor round trip on the CPU in two fresh processes."""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import pytest
import torch

from avatar_batch.core.fsio import TEMP_PREFIX
from avatar_batch.render.liveavatar.compile_cache import MAGIC, CompileCache, CompileKey, compile_key, pack, unpack
from avatar_batch.render.liveavatar.limits import ClipGeometry
from avatar_batch.render.liveavatar.placing import resident_placement

GPU = ("NVIDIA H200", "9.0")
GEOMETRY = ClipGeometry(384, 704, 48, 3)


def key_for(**changes) -> CompileKey:
    placement = resident_placement("none", "bf16", 40, torch.device("cpu"))
    return replace(compile_key("2.13.0", GPU, placement, GEOMETRY), **changes)


class FakeTorch:
    """torch.compiler's two calls: records what was loaded; saves `kernels`, whose artifact
    names are its bytes, one a letter (torch saves what it loaded and used, and anything new)."""

    def __init__(self, kernels: bytes | None = b"kernels"):
        self.kernels = kernels
        self.loaded: list[bytes] = []

    def load(self, artifacts: bytes) -> frozenset[str]:
        self.loaded.append(artifacts)
        return frozenset(artifacts.decode())

    def save(self):
        return None if self.kernels is None else (self.kernels, frozenset(self.kernels.decode()))

    def cache(self, folder: Path | None) -> CompileCache:
        return CompileCache(folder, load_artifacts=self.load, save_artifacts=self.save)


# --- the key ------------------------------------------------------------------------------


def test_the_key_is_pure_and_every_field_names_another_file():
    assert key_for().file_name() == key_for().file_name()
    assert key_for().file_name().startswith("dit-") and key_for().file_name().endswith(".bin")
    names = {key_for().file_name()}
    for f in fields(CompileKey):
        value = getattr(key_for(), f.name)
        names.add(key_for(**{f.name: value + 1 if isinstance(value, int) else value + "x"}).file_name())
    assert len(names) == len(fields(CompileKey)) + 1


def test_budgets_and_byte_counts_do_not_enter_the_key():
    placement = resident_placement("none", "bf16", 40, torch.device("cpu"))
    budgeted = replace(placement, gpu_budget_bytes=7, gpu_peak_bytes=5, host_budget_bytes=3)
    assert compile_key("2.13.0", GPU, placement, GEOMETRY) == compile_key("2.13.0", GPU, budgeted, GEOMETRY)
    longer = replace(GEOMETRY, num_clips=9)  # more clips run the same graphs
    assert compile_key("2.13.0", GPU, placement, GEOMETRY) == compile_key("2.13.0", GPU, placement, longer)


def test_a_file_carries_its_key_and_refuses_another():
    data = pack(key_for(), b"kernels")
    assert data.startswith(MAGIC) and unpack(data, key_for()) == b"kernels"
    with pytest.raises(ValueError, match="differs in height_px, width_px"):
        unpack(data, key_for(height_px=512, width_px=512))
    with pytest.raises(ValueError, match="not an avatar-batch compile cache"):
        unpack(b"x" * 64, key_for())
    with pytest.raises(ValueError, match="shorter than its header"):
        unpack(b"AB", key_for())


# --- the cache ----------------------------------------------------------------------------


def test_cold_then_warm_across_processes(tmp_path):
    first = FakeTorch()
    cache = first.cache(tmp_path)
    assert cache.prepare(key_for()) == "cold"
    written = cache.finished(key_for())
    assert written == tmp_path / key_for().file_name() and written.is_file()
    assert cache.finished(key_for()) is None  # once per key and process
    later = FakeTorch(kernels=b"kernels")  # the same graphs again: nothing new to write
    warm = later.cache(tmp_path)
    assert warm.prepare(key_for()) == "warm" and warm.prepare(key_for()) == "warm"
    assert later.loaded == [b"kernels"]  # loaded once, before anything compiles
    assert warm.finished(key_for()) is None and unpack(written.read_bytes(), key_for()) == b"kernels"


def test_a_warm_run_that_still_compiled_completes_the_file(tmp_path):
    cold = FakeTorch(kernels=b"ab").cache(tmp_path)
    cold.prepare(key_for())
    path = cold.finished(key_for())
    grown = FakeTorch(kernels=b"abc").cache(tmp_path)  # a graph the first run never met
    assert grown.prepare(key_for()) == "warm" and grown.finished(key_for()) == path
    assert unpack(path.read_bytes(), key_for()) == b"abc"


def test_another_geometry_is_its_own_cold_file(tmp_path):
    cache = FakeTorch().cache(tmp_path)
    cache.prepare(key_for())
    cache.finished(key_for())
    assert FakeTorch().cache(tmp_path).prepare(key_for(height_px=512)) == "cold"


def test_off_loads_and_writes_nothing(tmp_path):
    fake = FakeTorch()
    cache = fake.cache(None)
    assert cache.prepare(key_for()) == "off" and cache.finished(key_for()) is None
    assert fake.loaded == [] and list(tmp_path.iterdir()) == []


def test_nothing_compiled_writes_no_file(tmp_path):
    cache = FakeTorch(kernels=None).cache(tmp_path)
    assert cache.prepare(key_for()) == "cold" and cache.finished(key_for()) is None
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "content, reason",
    [(b"\x00garbage", "shorter than its header"), (b"ABCC0001\xff\xff\xff\xff{", "unreadable header")],
)
def test_a_corrupt_file_warns_by_name_and_compiles_cold(tmp_path, caplog, content, reason):
    path = tmp_path / key_for().file_name()
    path.write_bytes(content)
    fake = FakeTorch()
    cache = fake.cache(tmp_path)
    with caplog.at_level(logging.WARNING):
        assert cache.prepare(key_for()) == "cold"
    assert str(path) in caplog.text and reason in caplog.text and fake.loaded == []
    cache.finished(key_for())
    assert unpack(path.read_bytes(), key_for()) == b"kernels"  # the next run is warm again


def test_artifacts_torch_refuses_warn_and_compile_cold(tmp_path, caplog):
    path = tmp_path / key_for().file_name()
    path.write_bytes(pack(key_for(), b"not torch's"))

    def refuse(_artifacts: bytes) -> frozenset[str]:
        raise RuntimeError("Bytes object is corrupted, checksum does not match")

    cache = CompileCache(tmp_path, load_artifacts=refuse, save_artifacts=FakeTorch().save)
    with caplog.at_level(logging.WARNING):
        assert cache.prepare(key_for()) == "cold"
    assert str(path) in caplog.text and "checksum" in caplog.text


def test_a_failed_write_leaves_no_partial_file(tmp_path, caplog, monkeypatch):
    real_write = Path.write_bytes

    def half_then_full_disk(self: Path, data: bytes) -> int:
        real_write(self, data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    cache = FakeTorch().cache(tmp_path / "compile")
    cache.prepare(key_for())
    monkeypatch.setattr(Path, "write_bytes", half_then_full_disk)
    with caplog.at_level(logging.WARNING):
        assert cache.finished(key_for()) is None
    monkeypatch.undo()
    assert "No space left" in caplog.text and key_for().file_name() in caplog.text
    assert list((tmp_path / "compile").iterdir()) == []  # neither the file nor a .tmp- leftover


def test_a_written_file_replaces_the_old_one_whole(tmp_path):
    path = tmp_path / key_for().file_name()
    path.write_bytes(b"old and corrupt")
    cache = FakeTorch(kernels=b"k" * 100_000).cache(tmp_path)
    cache.prepare(key_for())
    cache.finished(key_for())
    assert unpack(path.read_bytes(), key_for()) == b"k" * 100_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


# --- the real torch round trip ------------------------------------------------------------

ROUND_TRIP = """
import sys, torch
from pathlib import Path
from torch._dynamo.utils import counters
from avatar_batch.render.liveavatar.compile_cache import CompileCache, CompileKey
key = CompileKey("t", "cpu", "cpu", "fp32", "bf16", "bf16", 1, 0, 64, 64, 48)
cache = CompileCache(Path(sys.argv[1]))
state = cache.prepare(key)
f = torch.compile(lambda x: torch.sin(x) * 2 + x.cos(), dynamic=False)
assert torch.allclose(f(torch.arange(8.0)), torch.sin(torch.arange(8.0)) * 2 + torch.arange(8.0).cos())
written = cache.finished(key)
print(state, counters["inductor"]["fxgraph_cache_hit"], written is not None)
"""


def _fresh_process(folder: Path, inductor_dir: Path) -> str:
    env = {"TORCHINDUCTOR_CACHE_DIR": str(inductor_dir), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = ":".join(sys.path)
    done = subprocess.run(
        [sys.executable, "-c", ROUND_TRIP, str(folder)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_compiled_kernels_survive_into_a_new_process(tmp_path):
    """Two processes with their own (empty) inductor folders: the second compiles from the file."""
    assert _fresh_process(tmp_path / "cache", tmp_path / "inductor-1") == "cold 0 True"
    assert _fresh_process(tmp_path / "cache", tmp_path / "inductor-2") == "warm 1 False"  # nothing new to write


# --- a render around the cache --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The tiny checkpoint, a portrait and one second of speech, at 64 px: the cache's
    handling does not depend on the frame size, and the portrait's encode costs a quarter of 128 px's."""
    from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
    from tests.conftest import write_portrait, write_sine_wav

    root = tmp_path_factory.mktemp("compile-cache-run")
    write_tiny_checkpoint(root / "weights")
    write_portrait(root / "portrait.png", size=(64, 64))
    write_sine_wav(root / "speech.wav", duration_s=1.0)
    return root


def _render(root: Path, folder: Path, fake: FakeTorch) -> tuple[int, dict]:
    from avatar_batch.core.records import RenderRequest, RenderSettings, SpeechTrack
    from avatar_batch.render.liveavatar.renderer import LiveAvatarRenderer

    settings = RenderSettings(
        renderer="liveavatar",
        size="64*64",
        sample_steps=2,
        weights_dir=str(root / "weights"),
        compile_cache_dir=str(folder),
    )
    renderer = LiveAvatarRenderer(settings)
    renderer.compile_cache = fake.cache(folder)
    wav = root / "speech.wav"
    speech = SpeechTrack(wav, wav, 1.0, -16.0, (), wav, wav, "tts")
    stream = renderer.start(RenderRequest("job", root / "portrait.png", "A doctor.", speech, settings))
    frames = sum(1 for _ in stream)
    renderer.close()
    return frames, stream.telemetry()


def test_a_corrupt_cache_file_never_fails_a_render(tiny_run, tmp_path, monkeypatch, caplog):
    """The CPU runs eager; here the runtime claims compiled blocks (compiling itself faked),
    so the renderer keys, loads and writes the cache as on a GPU."""
    from avatar_batch.render.liveavatar import runner as runner_module

    compiled_cpu = runner_module.Runtime(torch.device("cpu"), torch.float32, compile=True)
    monkeypatch.setattr(
        runner_module.Runtime, "detect", classmethod(lambda cls, device=None, cuda_graphs=False: compiled_cpu)
    )
    monkeypatch.setattr(runner_module, "compile_blocks", lambda dit: dit)
    folder = tmp_path / "compile"
    frames, telemetry = _render(tiny_run, folder, FakeTorch())
    assert (frames, telemetry["compile_cache"]) == (25, "cold")
    [written] = folder.iterdir()
    written.write_bytes(written.read_bytes()[:20])  # truncated, as by a crash of another tool
    with caplog.at_level(logging.WARNING):
        frames, telemetry = _render(tiny_run, folder, FakeTorch())
    assert (frames, telemetry["compile_cache"]) == (25, "cold")
    assert str(written) in caplog.text
    warm = FakeTorch()
    frames, telemetry = _render(tiny_run, folder, warm)  # the cold run rewrote it
    assert (frames, telemetry["compile_cache"], warm.loaded) == (25, "warm", [b"kernels"])
