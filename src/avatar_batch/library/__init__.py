"""The library stage: finished videos, their manifest (the source of truth),
a SQLite index with full-text search and a static index.html player.
Imports only `avatar_batch.core` and itself."""

from avatar_batch.library.layout import FILE_NAMES, PLAYABLE_STATUSES, LibraryError
from avatar_batch.library.manifest import ManifestDamagedError
from avatar_batch.library.sqlite_index import search
from avatar_batch.library.store import Library
from avatar_batch.library.verify import ffprobe_argv

__all__ = [
    "FILE_NAMES",
    "PLAYABLE_STATUSES",
    "Library",
    "LibraryError",
    "ManifestDamagedError",
    "ffprobe_argv",
    "search",
]
