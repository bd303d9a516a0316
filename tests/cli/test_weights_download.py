"""`weights download` at its edge: the model hub replaced by a fake that serves
a tiny checkpoint (plus files the runner never reads). No network."""

from __future__ import annotations

import fnmatch
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from avatar_batch.cli import app, commands_weights
from avatar_batch.render.liveavatar.checkpoint import write_tiny_checkpoint
from avatar_batch.render.liveavatar.checkpoint.download import (
    LIVEAVATAR_REPO,
    PINNED_REVISIONS,
    RECORD_NAME,
    WAN_REPO,
    HuggingFaceHub,
)
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout

COMMITS = {WAN_REPO: "a" * 40, LIVEAVATAR_REPO: "b" * 40}
UNUSED = ("README.md", "configuration.json", "assets/logo.png", "examples/talk.wav")


class FakeHub:
    """Serves one folder per repository; remembers every call. Resolves a full commit id
    to itself, as the hub does, and any other revision to the repository's COMMITS entry."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = repos
        self.resolved: list[tuple[str, str]] = []
        self.snapshots: list[dict] = []

    def commit_of(self, repo_id: str, revision: str) -> str:
        self.resolved.append((repo_id, revision))
        return revision if len(revision) == 40 else COMMITS[repo_id]

    def snapshot_download(self, *, repo_id: str, revision: str, allow_patterns: Sequence[str], local_dir: Path):
        self.snapshots.append(
            {"repo_id": repo_id, "revision": revision, "allow_patterns": list(allow_patterns), "local_dir": local_dir}
        )
        source = self.repos[repo_id]
        for path in sorted(source.rglob("*")):
            name = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(name, pattern) for pattern in allow_patterns):
                (local_dir / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, local_dir / name)


@pytest.fixture(scope="module")
def hub_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub")
    layout = write_tiny_checkpoint(root)  # the official files only: every size is read from them
    for name in UNUSED:
        for folder in (layout.dit_dir, layout.lora_path.parent):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(b"not needed")
    return {WAN_REPO: layout.dit_dir, LIVEAVATAR_REPO: layout.lora_path.parent}


def download(tmp_path: Path, monkeypatch, hub: FakeHub):
    monkeypatch.setattr(commands_weights, "hub_client", lambda: hub)
    return CliRunner().invoke(app, ["weights", "download", str(tmp_path / "weights")])


def test_download_fetches_exactly_the_runners_files_then_verifies(tmp_path: Path, monkeypatch, hub_folders):
    hub = FakeHub(hub_folders)
    result = download(tmp_path, monkeypatch, hub)
    assert result.exit_code == 0, result.output
    assert "checkpoint verified" in result.output
    assert hub.resolved == [
        (WAN_REPO, PINNED_REVISIONS[WAN_REPO]),
        (LIVEAVATAR_REPO, PINNED_REVISIONS[LIVEAVATAR_REPO]),
    ]
    root = tmp_path / "weights"
    layout = CheckpointLayout.at(root)
    shards = sorted(set(json.loads(layout.index_path.read_text())["weight_map"].values()))
    assert len(shards) == 2
    assert [(s["repo_id"], s["revision"], s["allow_patterns"], s["local_dir"]) for s in hub.snapshots] == [
        (
            WAN_REPO,
            PINNED_REVISIONS[WAN_REPO],
            [
                "config.json",
                "diffusion_pytorch_model.safetensors.index.json",
                "models_t5_umt5-xxl-enc-bf16.pth",
                "google/umt5-xxl/*",
                "Wan2.1_VAE.pth",
                "wav2vec2-large-xlsr-53-english/*",
            ],
            layout.dit_dir,
        ),
        (LIVEAVATAR_REPO, PINNED_REVISIONS[LIVEAVATAR_REPO], ["liveavatar.safetensors"], layout.lora_path.parent),
        (WAN_REPO, PINNED_REVISIONS[WAN_REPO], shards, layout.dit_dir),
    ]
    served = {p.relative_to(hub_folders[WAN_REPO]) for p in hub_folders[WAN_REPO].rglob("*") if p.is_file()}
    fetched = {p.relative_to(layout.dit_dir) for p in layout.dit_dir.rglob("*") if p.is_file()}
    assert fetched == served - {Path(name) for name in UNUSED}
    assert sorted(p.name for p in layout.lora_path.parent.iterdir()) == ["liveavatar.safetensors"]
    record = json.loads((root / RECORD_NAME).read_text(encoding="utf-8"))
    assert {repo: (r["revision"], r["commit"]) for repo, r in record.items()} == {
        repo: (rev, rev) for repo, rev in PINNED_REVISIONS.items()
    }
    assert record[LIVEAVATAR_REPO]["files"] == ["liveavatar.safetensors"]


def test_a_damaged_download_exits_with_verifys_result(tmp_path: Path, monkeypatch, hub_folders):
    damaged = tmp_path / "damaged-lora"
    shutil.copytree(hub_folders[LIVEAVATAR_REPO], damaged)
    lora = damaged / "liveavatar.safetensors"
    lora.write_bytes(lora.read_bytes()[: lora.stat().st_size // 2])
    result = download(tmp_path, monkeypatch, FakeHub({**hub_folders, LIVEAVATAR_REPO: damaged}))
    assert result.exit_code == 69
    assert "liveavatar.safetensors" in result.output


def test_the_real_client_passes_the_same_arguments_to_huggingface_hub(tmp_path: Path, monkeypatch):
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *args, **kwargs: calls.append((args, kwargs)))
    HuggingFaceHub().snapshot_download(
        repo_id=WAN_REPO, revision=COMMITS[WAN_REPO], allow_patterns=["config.json"], local_dir=tmp_path
    )
    assert calls == [
        ((WAN_REPO,), {"revision": COMMITS[WAN_REPO], "allow_patterns": ["config.json"], "local_dir": tmp_path})
    ]


def test_a_hub_failure_is_a_weights_error_saying_it_resumes(tmp_path: Path, monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    monkeypatch.setattr(commands_weights, "hub_client", HuggingFaceHub)
    monkeypatch.setattr(HuggingFaceHub, "commit_of", lambda self, repo, revision: revision)
    result = CliRunner().invoke(app, ["weights", "download", str(tmp_path / "w")])
    assert result.exit_code == 69
    assert "network is unreachable" in result.output and "resume" in result.output


# --- revisions: pinned commits, the --revision override, what the hub resolved ------------------


def test_the_pinned_revisions_are_full_commit_ids():
    assert all(len(rev) == 40 and all(c in "0123456789abcdef" for c in rev) for rev in PINNED_REVISIONS.values())


class MovedHub(FakeHub):
    """A hub whose answer for the pinned commit is another commit."""

    def commit_of(self, repo_id: str, revision: str) -> str:
        self.resolved.append((repo_id, revision))
        return COMMITS[repo_id]


def test_revision_overrides_one_repository_and_records_what_the_hub_resolved(tmp_path: Path, monkeypatch, hub_folders):
    hub = FakeHub(hub_folders)
    monkeypatch.setattr(commands_weights, "hub_client", lambda: hub)
    argv = ["weights", "download", str(tmp_path / "weights"), "--revision", f"{LIVEAVATAR_REPO}=main"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    assert hub.resolved == [(WAN_REPO, PINNED_REVISIONS[WAN_REPO]), (LIVEAVATAR_REPO, "main")]
    record = json.loads((tmp_path / "weights" / RECORD_NAME).read_text(encoding="utf-8"))
    assert record[LIVEAVATAR_REPO]["revision"] == "main"
    assert record[LIVEAVATAR_REPO]["commit"] == COMMITS[LIVEAVATAR_REPO]  # the commit, not the branch name
    assert record[WAN_REPO]["commit"] == PINNED_REVISIONS[WAN_REPO]
    assert f"{LIVEAVATAR_REPO} @ {COMMITS[LIVEAVATAR_REPO]} (main)" in result.output


@pytest.mark.parametrize("bad", ["main", "Some/Other=main", f"{WAN_REPO}=", f"{WAN_REPO}"])
def test_a_malformed_revision_override_is_a_usage_error_before_any_download(tmp_path: Path, monkeypatch, bad):
    hub = FakeHub({})
    monkeypatch.setattr(commands_weights, "hub_client", lambda: hub)
    result = CliRunner().invoke(app, ["weights", "download", str(tmp_path / "w"), "--revision", bad])
    assert result.exit_code == 2
    assert "REPO=REVISION" in result.output and LIVEAVATAR_REPO in result.output
    assert hub.resolved == [] and hub.snapshots == []


def test_a_pinned_commit_the_hub_resolves_elsewhere_stops_before_fetching(tmp_path: Path, monkeypatch, hub_folders):
    hub = MovedHub(hub_folders)
    result = download(tmp_path, monkeypatch, hub)
    assert result.exit_code == 69
    assert PINNED_REVISIONS[WAN_REPO] in result.output and "--revision" in result.output
    assert hub.snapshots == []


def test_a_revision_the_hub_does_not_know_says_how_to_take_the_newest(tmp_path: Path, monkeypatch):
    import huggingface_hub
    from huggingface_hub.utils import RevisionNotFoundError

    class NoSuchRevision:
        def model_info(self, repo_id, revision):
            error = RevisionNotFoundError.__new__(RevisionNotFoundError)
            Exception.__init__(error, f"404 Client Error: Revision Not Found for {repo_id}@{revision}")
            raise error

    monkeypatch.setattr(huggingface_hub, "HfApi", NoSuchRevision)
    monkeypatch.setattr(commands_weights, "hub_client", HuggingFaceHub)
    result = CliRunner().invoke(app, ["weights", "download", str(tmp_path / "w")])
    assert result.exit_code == 69
    assert f"--revision {WAN_REPO}=main" in result.output and "Revision Not Found" in result.output


def test_the_real_client_reports_the_commit_the_hub_resolved(monkeypatch):
    import huggingface_hub

    class Resolving:
        def model_info(self, repo_id, revision):
            return type("Info", (), {"sha": COMMITS[repo_id]})()

    monkeypatch.setattr(huggingface_hub, "HfApi", Resolving)
    assert HuggingFaceHub().commit_of(LIVEAVATAR_REPO, "main") == COMMITS[LIVEAVATAR_REPO]
