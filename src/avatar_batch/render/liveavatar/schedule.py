"""The DMD Euler schedule (docs/model.md §6.3): flow-matching sigmas with shift 3.

Live Avatar samples with diffusers' FlowMatchEulerDiscreteScheduler at
num_train_timesteps=1000 and shift=3, no CFG. Its numbers reduce to a closed
form, computed here without the scheduler object so the sampler carries no
scheduler state:
    shifted(u) = 3u / (1 + 2u),  u_k = linspace(1, shifted(1/1000), K),
    sigma_k = shifted(u_k),      t_k = 1000 * sigma_k,  sigma_K = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHIFT = 3.0
NUM_TRAIN_TIMESTEPS = 1000
MAX_STEPS = 4  # one KV cache per step; the released model has 4


def _shifted(u: np.ndarray | float) -> np.ndarray | float:
    return SHIFT * u / (1.0 + (SHIFT - 1.0) * u)


@dataclass(frozen=True)
class Schedule:
    timesteps: tuple[float, ...]  # model inputs t_k, k = 0..K-1
    sigmas: tuple[float, ...]  # sigma_0..sigma_K, the last one 0

    @property
    def num_steps(self) -> int:
        return len(self.timesteps)

    def step_size(self, step: int) -> float:
        """sigma_{k+1} - sigma_k: the Euler update is x += step_size * v."""
        return self.sigmas[step + 1] - self.sigmas[step]


def dmd_schedule(num_steps: int) -> Schedule:
    if not 1 <= num_steps <= MAX_STEPS:
        raise ValueError(f"sample steps must be 1..{MAX_STEPS} (one KV cache per step), got {num_steps}")
    sigma_min = float(_shifted(1.0 / NUM_TRAIN_TIMESTEPS))
    # diffusers builds sigmas in float64 then stores them as float32.
    u = np.linspace(1.0, sigma_min, num_steps, dtype=np.float64)
    sigmas = np.asarray(_shifted(u), dtype=np.float32)
    timesteps = (sigmas * NUM_TRAIN_TIMESTEPS).astype(np.float32)
    return Schedule(tuple(float(t) for t in timesteps), tuple(float(s) for s in sigmas) + (0.0,))
