"""Profiling settings as a resource, and the opt-in switch for auto-remediation.

Auto-remediation stays a dry run unless ``auto_remediate`` is set in the resource config or the code
location runs with ``AUTOPILOT_AUTO_REMEDIATE=1``; even then it only builds high-priority, planner-verified
(HypoPG) indexes, with CREATE INDEX CONCURRENTLY.
"""

import os

import dagster as dg

from autopilot_pipeline.profiling.settings import ProfilingSettings

AUTO_REMEDIATE_ENV = "AUTOPILOT_AUTO_REMEDIATE"
_TRUE = {"1", "true", "yes", "on"}


class ProfilingResource(dg.ConfigurableResource):
    """Thresholds of the profiling assets (defaults: :class:`ProfilingSettings`, with their reasons)."""

    slow_ms: float = ProfilingSettings.slow_ms
    lookback_hours: float = ProfilingSettings.lookback_hours
    analyze_top_n: int = ProfilingSettings.analyze_top_n
    min_mean_ms: float = ProfilingSettings.min_mean_ms
    min_cost: float = ProfilingSettings.min_cost
    min_saving_pct: float = ProfilingSettings.min_saving_pct
    min_table_rows: int = ProfilingSettings.min_table_rows
    high_saved_ms: float = ProfilingSettings.high_saved_ms
    auto_remediate: bool | None = None  # None: follow AUTOPILOT_AUTO_REMEDIATE at run time
    remediation_lock_timeout_ms: int = 5_000
    remediation_limit: int = 5

    def settings(self) -> ProfilingSettings:
        return ProfilingSettings(
            slow_ms=self.slow_ms,
            lookback_hours=self.lookback_hours,
            analyze_top_n=self.analyze_top_n,
            min_mean_ms=self.min_mean_ms,
            min_cost=self.min_cost,
            min_saving_pct=self.min_saving_pct,
            min_table_rows=self.min_table_rows,
            high_saved_ms=self.high_saved_ms,
        )

    def remediation_enabled(self) -> bool:
        """Apply (True) or only record what would be applied (False, the default)."""
        if self.auto_remediate is not None:
            return self.auto_remediate
        return os.environ.get(AUTO_REMEDIATE_ENV, "").strip().lower() in _TRUE


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"profiling": ProfilingResource()})
