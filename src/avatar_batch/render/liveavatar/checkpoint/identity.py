"""`model_identity(root)`: a short content key for "which weights made this video".

sha256 over config.json, the shard index (which pins every tensor's place and
size) and the sha256 of the LoRA file. The shards themselves are not hashed:
32 GB per run would cost minutes, and the index together with the config
identifies the released DiT. The LoRA digest (1.35 GB) is cached in a side
file keyed by size and mtime so nightly runs do not rehash it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from avatar_batch.core.errors import Problem, WeightsError
from avatar_batch.core.fsio import file_sha256, write_json_atomic
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout
from avatar_batch.render.liveavatar.checkpoint.sizes import FIX_DOWNLOAD


def digest_cache_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.sha256.json")


def cached_file_sha256(path: Path) -> str:
    """sha256 of `path`, reusing the side file while size and mtime are unchanged."""
    stat = path.stat()
    stamp = {"size_bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cache = digest_cache_path(path)
    if cache.is_file():
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            saved = {}
        if {k: saved.get(k) for k in stamp} == stamp and isinstance(saved.get("sha256"), str):
            return saved["sha256"]
    digest = file_sha256(path)
    # A read-only weights folder: the digest is still right, only recomputed next time.
    with contextlib.suppress(OSError):
        write_json_atomic(cache, {**stamp, "sha256": digest})
    return digest


def model_identity(root: Path) -> str:
    layout = CheckpointLayout.at(root)
    missing = [p for p in (layout.config_path, layout.index_path, layout.lora_path) if not p.is_file()]
    if missing:
        raise WeightsError(
            f"cannot identify the model in {layout.root}",
            [Problem(str(p), "file is missing", fix=FIX_DOWNLOAD) for p in missing],
        )
    digest = hashlib.sha256()
    for label, data in (
        ("config.json", layout.config_path.read_bytes()),
        ("index", layout.index_path.read_bytes()),
        ("lora-sha256", cached_file_sha256(layout.lora_path).encode("ascii")),
    ):
        digest.update(label.encode("ascii") + b"\0" + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()
