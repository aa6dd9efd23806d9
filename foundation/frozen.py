"""Base model for settings sections (kept apart from fetchlab.settings to avoid an import cycle)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["FrozenModel"]


class FrozenModel(BaseModel):
    """Immutable, unknown keys rejected (a typo in a settings file is an error, not a no-op)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
