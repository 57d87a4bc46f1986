"""AI-ops settings and the optional LLM (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``AUTOPILOT_OPENAI_MODEL``,
bound through ``dg.EnvVar`` only when set, so an unset key means "deterministic insights only")."""

import dagster as dg

from autopilot_pipeline.aiops.pipeline import AiopsSettings
from autopilot_pipeline.defs.alerting.resources import optional_env
from autopilot_pipeline.integrations.openai_chat import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_MODEL,
    MODEL_ENV,
    LLMSettings,
)

_DEFAULTS = AiopsSettings()


class AiopsResource(dg.ConfigurableResource):
    """Windows and knobs of the AI-ops assets (defaults and reasons: :class:`AiopsSettings`)."""

    scored_hours: int = _DEFAULTS.scored_hours
    history_hours: int = _DEFAULTS.history_hours
    trend_windows_hours: list[int] = list(_DEFAULTS.trend_windows_hours)
    horizon_hours: int = _DEFAULTS.horizon_hours
    prediction_history_hours: int = _DEFAULTS.prediction_history_hours
    insights_hours: int = _DEFAULTS.insights_hours
    significance_alpha: float = _DEFAULTS.significance_alpha
    n_paths: int = _DEFAULTS.n_paths
    workers: int = _DEFAULTS.workers
    scaling_risk: float = _DEFAULTS.scaling_risk

    def settings(self) -> AiopsSettings:
        return AiopsSettings(
            scored_hours=self.scored_hours,
            history_hours=self.history_hours,
            trend_windows_hours=tuple(self.trend_windows_hours),
            horizon_hours=self.horizon_hours,
            prediction_history_hours=self.prediction_history_hours,
            insights_hours=self.insights_hours,
            significance_alpha=self.significance_alpha,
            n_paths=self.n_paths,
            workers=self.workers,
            scaling_risk=self.scaling_risk,
        )


class LLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint for the insights narrative; no ``api_key``: no narrative."""

    api_key: str | None = None
    base_url: str | None = None
    model: str | None = None
    timeout_seconds: float = 30.0
    max_tokens: int = 400

    def settings(self) -> LLMSettings:
        return LLMSettings(
            api_key=self.api_key or None,
            base_url=self.base_url or None,
            model=self.model or DEFAULT_MODEL,
            timeout_s=self.timeout_seconds,
            max_tokens=self.max_tokens,
        )


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "aiops": AiopsResource(),
            "llm": LLMResource(
                api_key=optional_env(API_KEY_ENV),
                base_url=optional_env(BASE_URL_ENV),
                model=optional_env(MODEL_ENV),
            ),
        }
    )
