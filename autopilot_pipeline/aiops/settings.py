"""The AI-ops domain's settings: windows and knobs of the tasks, each with the reason for its default.

One immutable object, read once (the ``aiops`` resource holds it as its config; the CLI and the HTTP service
use the defaults) and passed down to every task.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from autopilot_pipeline.aiops.detection import DEFAULT_ALPHA
from autopilot_pipeline.aiops.parallel import default_workers

__all__ = ["AiopsSettings"]


class AiopsSettings(BaseModel):
    """Windows and knobs of the AI-ops tasks."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    scored_hours: int = 168
    """Anomalies: the window scored (and replaced) by each run: the last 7 days."""
    history_hours: int = 504
    """Hours before a scored window that only train the detector (its state, season and tails)."""
    trend_windows_hours: list[int] = [24, 168]
    """Trend windows (24 h and 7 days)."""
    horizon_hours: int = 24
    """Failure prediction horizon."""
    prediction_history_hours: int = 504
    """History the forecaster is fitted on (21 days: a weekly season needs two weeks and a day, and the
    failure risk was calibrated and backtested on 504-hour histories, see aiops/risk.py)."""
    insights_hours: int = 24
    """The window the insights summarize (the seed's "1,440 health checks" is a day)."""
    significance_alpha: float = DEFAULT_ALPHA
    """Significance an error-ratio or uptime anomaly needs under the binomial model (``aiops.detection``)."""
    n_paths: int = 1000
    """Simulated paths per failure probability (Monte Carlo error <= 0.016)."""
    workers: int = Field(default=default_workers(), ge=1)
    """Processes that score the anomalies and fit the forecasts (1: in this process). Default: one per core,
    at most 2, counted when the code location loads. Small inputs stay in process whatever the setting
    (a worker takes 1-2 s to start)."""
    scaling_risk: float = 0.5
    """Failure risk at which a resource or latency forecast becomes a scaling optimization."""
