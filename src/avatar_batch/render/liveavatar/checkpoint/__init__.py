"""Checkpoint tooling for Live Avatar: layout, manifests, verification, loading, identity, tiny folders.

Importing this package imports torch; only `avatar_batch.render` may do so.
"""

from avatar_batch.render.liveavatar.checkpoint.identity import model_identity
from avatar_batch.render.liveavatar.checkpoint.layout import CheckpointLayout
from avatar_batch.render.liveavatar.checkpoint.loader import load_dit
from avatar_batch.render.liveavatar.checkpoint.manifest import expected_manifest
from avatar_batch.render.liveavatar.checkpoint.tiny import write_tiny_checkpoint
from avatar_batch.render.liveavatar.checkpoint.verify import verify_checkpoint

__all__ = [
    "CheckpointLayout",
    "expected_manifest",
    "load_dit",
    "model_identity",
    "verify_checkpoint",
    "write_tiny_checkpoint",
]
