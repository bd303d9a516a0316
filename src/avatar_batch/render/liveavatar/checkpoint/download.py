"""`download_checkpoint(root, hub)`: fetch the official weights into a checkpoint root.

Exactly the files the runner reads (docs/model.md §1.2-1.4), named by `layout`:
1. from `Wan-AI/Wan2.2-S2V-14B` into ROOT/Wan2.2-S2V-14B/: config.json, the
   shard index, the umT5 .pth, the tokenizer folder, the Wan2.1 VAE .pth and
   the wav2vec2 folder; then the DiT shards the downloaded index names (so no
   file-name pattern is guessed and no unused file is fetched);
2. from `Quark-Vision/Live-Avatar` into ROOT/LiveAvatar/: liveavatar.safetensors.
Each repository is read at the commit pinned in `PINNED_REVISIONS` (or a
revision given with `--revision REPO=REV`, `revisions_with`), resolved once to
a commit by the hub so both passes of a repository see the same files; a pinned
commit must resolve to itself, and the revision asked for and the commit the
hub resolved are recorded in ROOT/`RECORD_NAME`. Downloads go through
`huggingface_hub.snapshot_download` into the folder itself: it resumes
interrupted files, skips finished ones and shows its progress bars. Checking
what arrived is `verify`'s job. Knows nothing of tensors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from avatar_batch.core.errors import UsageError, WeightsError
from avatar_batch.core.fsio import write_json_atomic
from avatar_batch.render.liveavatar.checkpoint.layout import (
    CONFIG_NAME,
    DIT_FOLDER,
    INDEX_NAME,
    LORA_FOLDER,
    LORA_NAME,
    T5_NAME,
    TOKENIZER_FOLDER,
    VAE_NAME,
    WAV2VEC2_FOLDER,
    CheckpointLayout,
)

WAN_REPO = "Wan-AI/Wan2.2-S2V-14B"
LIVEAVATAR_REPO = "Quark-Vision/Live-Avatar"
# The one place a revision is chosen: the commits every download of this version
# of avatar-batch fetches. The official instructions download the newest files and
# name no commit; these ids were read from public projects that pin the same
# official files (stored copies of their sources, read Dec 2026): Wan2.2-S2V-14B @
# dab4e9c5... in several unrelated ones (Modal and wget download scripts, model
# registries), Live-Avatar @ 92cdccd1... in two (a Modal benchmark of the official
# single-GPU script that fetches liveavatar.safetensors at it, and a LiveAvatar
# deployment's record of its sources), each beside the same Wan2.2 commit.
# They were not checked against the hub from here: a download checks that each
# resolves to itself and records it; `--revision REPO=main` takes the newest instead.
PINNED_REVISIONS: Mapping[str, str] = {
    WAN_REPO: "dab4e9c55bbe4c8c4d03db1c2c98c7f0ac9c454b",
    LIVEAVATAR_REPO: "92cdccd12a91e8a63767a7c821b7c75e51d5a172",
}
RECORD_NAME = "avatar-batch-download.json"
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")


class HubClient(Protocol):
    """The two calls made of the model hub (a fake in tests)."""

    def commit_of(self, repo_id: str, revision: str) -> str: ...

    def snapshot_download(
        self, *, repo_id: str, revision: str, allow_patterns: Sequence[str], local_dir: Path
    ) -> None: ...


@dataclass(frozen=True)
class Fetch:
    """One snapshot of one repository into one folder."""

    repo_id: str
    folder: str  # under the checkpoint root
    allow_patterns: tuple[str, ...]


def first_fetches() -> tuple[Fetch, ...]:
    """Everything but the DiT shards, whose names come from the index."""
    return (
        Fetch(
            WAN_REPO,
            DIT_FOLDER,
            (CONFIG_NAME, INDEX_NAME, T5_NAME, f"{TOKENIZER_FOLDER}/*", VAE_NAME, f"{WAV2VEC2_FOLDER}/*"),
        ),
        Fetch(LIVEAVATAR_REPO, LORA_FOLDER, (LORA_NAME,)),
    )


def shard_fetch(index_path: Path) -> Fetch:
    """The shards listed in the downloaded index's weight_map."""
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(
            f"{index_path}: the downloaded shard index cannot be read ({exc}). "
            "Fix: delete it and run `avatar-batch weights download` again"
        ) from exc
    return Fetch(WAN_REPO, DIT_FOLDER, tuple(shards))


def revisions_with(overrides: Sequence[str], pinned: Mapping[str, str] = PINNED_REVISIONS) -> dict[str, str]:
    """The pinned revisions with `REPO=REVISION` overrides (the `--revision` flag) applied."""
    revisions = dict(pinned)
    for text in overrides:
        repo, sep, revision = text.partition("=")
        if not sep or not revision.strip() or repo.strip() not in revisions:
            raise UsageError(
                f"--revision {text!r}: expected REPO=REVISION with REPO one of {', '.join(revisions)}, "
                f"e.g. --revision {LIVEAVATAR_REPO}=main"
            )
        revisions[repo.strip()] = revision.strip()
    return revisions


def resolve_commit(hub: HubClient, repo_id: str, revision: str) -> str:
    """The commit the hub resolves `revision` to; a full commit id must resolve to itself."""
    commit = hub.commit_of(repo_id, revision)
    if _COMMIT_ID.fullmatch(revision) and commit != revision:
        raise WeightsError(
            f"the hub resolved {repo_id} at the pinned commit {revision} to {commit}. "
            f"Fix: download with --revision {repo_id}=main (the newest) and check the result with weights verify"
        )
    return commit


def download_checkpoint(root: Path, hub: HubClient, revisions: Mapping[str, str] = PINNED_REVISIONS) -> dict:
    """Fetch every file the runner needs into `root`; return what was recorded."""
    root = Path(root)
    commits = {repo: resolve_commit(hub, repo, revisions[repo]) for repo in (WAN_REPO, LIVEAVATAR_REPO)}
    fetched: dict[str, list[str]] = {WAN_REPO: [], LIVEAVATAR_REPO: []}
    for fetch in first_fetches():
        _snapshot(hub, fetch, commits[fetch.repo_id], root)
        fetched[fetch.repo_id] += fetch.allow_patterns
    shards = shard_fetch(CheckpointLayout.at(root).index_path)
    _snapshot(hub, shards, commits[WAN_REPO], root)
    fetched[WAN_REPO] += shards.allow_patterns
    record = {
        repo: {"revision": revisions[repo], "commit": commits[repo], "files": patterns}
        for repo, patterns in fetched.items()
    }
    write_json_atomic(root / RECORD_NAME, record)
    return record


def _snapshot(hub: HubClient, fetch: Fetch, commit: str, root: Path) -> None:
    folder = root / fetch.folder
    folder.mkdir(parents=True, exist_ok=True)
    hub.snapshot_download(
        repo_id=fetch.repo_id, revision=commit, allow_patterns=list(fetch.allow_patterns), local_dir=folder
    )


class HuggingFaceHub:
    """The real hub, through `huggingface_hub` (the `runner` extra). A token
    comes from its usual places (HF_TOKEN, `hf auth login`)."""

    def __init__(self) -> None:
        try:
            import huggingface_hub
            from huggingface_hub.utils import RevisionNotFoundError
        except ImportError as exc:
            raise WeightsError(
                "huggingface_hub is not installed. Fix: pip install 'avatar-batch[runner]' "
                "(or pip install huggingface_hub)"
            ) from exc
        self._hub = huggingface_hub
        self._revision_not_found = RevisionNotFoundError

    def commit_of(self, repo_id: str, revision: str) -> str:
        try:
            sha = self._hub.HfApi().model_info(repo_id, revision=revision).sha
        except self._revision_not_found as exc:
            raise WeightsError(
                f"the hub has no revision {revision!r} of {repo_id} ({exc}). "
                f"Fix: --revision {repo_id}=main downloads the newest files (their commit is recorded)"
            ) from exc
        except OSError as exc:  # the hub's HTTP and connection errors are OSErrors
            raise _failed(repo_id, revision, exc) from exc
        if not sha:
            raise WeightsError(f"the hub gave no commit for {repo_id} at revision {revision!r}")
        return sha

    def snapshot_download(self, *, repo_id: str, revision: str, allow_patterns: Sequence[str], local_dir: Path) -> None:
        try:
            self._hub.snapshot_download(
                repo_id, revision=revision, allow_patterns=list(allow_patterns), local_dir=local_dir
            )
        except OSError as exc:
            raise _failed(repo_id, revision, exc) from exc


def _failed(repo_id: str, revision: str, exc: OSError) -> WeightsError:
    return WeightsError(
        f"downloading {repo_id} at {revision} failed: {exc}. Fix: check the network, the free disk space "
        "and, for a gated repository, HF_TOKEN; then run the same command again: finished files are kept "
        "and partial ones resume"
    )
