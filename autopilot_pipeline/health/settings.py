"""The health domain's settings: what counts as a plausible check. One immutable object, read once when the
code location loads (:meth:`HealthSettings.from_env`) and passed to the validation."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.health.tables import MAX_RESPONSE_MS

__all__ = ["MAX_RESPONSE_MS_ENV", "HealthSettings"]

MAX_RESPONSE_MS_ENV = "AUTOPILOT_MAX_RESPONSE_MS"


class HealthSettings(BaseModel):
    """What the health validation accepts."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    max_response_ms: float = Field(MAX_RESPONSE_MS, gt=0, allow_inf_nan=False)
    """Ceiling for a plausible response time (ms): slower checks are quarantined. One hour by default: a
    check that took longer did not measure the service, it measured a stuck probe."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HealthSettings:
        """``AUTOPILOT_MAX_RESPONSE_MS`` when set; a value that is not a finite number > 0 is refused in one line."""
        raw = environ.get(MAX_RESPONSE_MS_ENV, "").strip()
        if not raw:
            return cls()
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise AutopilotError(f"{MAX_RESPONSE_MS_ENV} must be a number of milliseconds > 0, got {raw!r}")
        return cls(max_response_ms=value)
