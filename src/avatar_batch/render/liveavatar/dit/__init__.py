"""The causal S2V DiT of Live Avatar: model, caches and numerics options.

Importing this package imports torch; only `avatar_batch.render` may do so.
"""

from avatar_batch.render.liveavatar.dit.cache import CondCache, StepCache, TokenGrid
from avatar_batch.render.liveavatar.dit.model import (
    LATENT_FRAMES_PER_BLOCK,
    SINK_REF_TIME,
    BlockInputs,
    CausalS2VDiT,
    rolled_reference_time,
)
from avatar_batch.render.liveavatar.dit.numerics import PARITY, DiTNumerics

__all__ = [
    "BlockInputs",
    "CausalS2VDiT",
    "CondCache",
    "DiTNumerics",
    "LATENT_FRAMES_PER_BLOCK",
    "PARITY",
    "SINK_REF_TIME",
    "StepCache",
    "TokenGrid",
    "rolled_reference_time",
]
