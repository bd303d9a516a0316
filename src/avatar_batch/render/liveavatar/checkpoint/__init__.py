"""Checkpoint tooling for Live Avatar: layout, sizes, manifests, verification, loading, identity, tiny folders.

`layout.py` spells every official file name; `sizes.checkpoint_sizes(root)`
reads every network's sizes from the folder's own files.

Importing this package imports torch; only `avatar_batch.render` may do so.
"""

from avatar_batch.render.liveavatar.checkpoint.identity import model_identity
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout
from avatar_batch.render.liveavatar.checkpoint.loader import load_dit
from avatar_batch.render.liveavatar.checkpoint.manifest import expected_manifest
from avatar_batch.render.liveavatar.checkpoint.sizes import FolderSizes, checkpoint_sizes, read_sizes
from avatar_batch.render.liveavatar.checkpoint.tiny import write_tiny_checkpoint
from avatar_batch.render.liveavatar.checkpoint.verify import verify_checkpoint

__all__ = [
    "CheckpointLayout",
    "FolderSizes",
    "checkpoint_sizes",
    "expected_manifest",
    "load_dit",
    "model_identity",
    "read_sizes",
    "verify_checkpoint",
    "write_tiny_checkpoint",
]
