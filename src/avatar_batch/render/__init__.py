"""Renderers: turn a speech track and a persona image into frames at 25 fps.

`still` needs no GPU; `liveavatar` runs the Live Avatar model (torch is
imported lazily, only when that renderer is opened, and the model's limits
are checked then, before any job).
"""

from __future__ import annotations

from avatar_batch.core.errors import UsageError
from avatar_batch.core.records import RenderSettings
from avatar_batch.render.protocol import Renderer


def open_renderer(settings: RenderSettings) -> Renderer:
    """The renderer named by the settings. Cheap: heavy models load on first use."""
    if settings.renderer == "still":
        from avatar_batch.render.still import StillRenderer

        return StillRenderer()
    if settings.renderer == "liveavatar":
        from avatar_batch.render.liveavatar.renderer import LiveAvatarRenderer

        return LiveAvatarRenderer(settings)
    raise UsageError(f"unknown renderer {settings.renderer!r}; choose 'still' or 'liveavatar'")
