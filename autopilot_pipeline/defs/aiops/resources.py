"""AI-ops settings and the optional LLM (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``AUTOPILOT_OPENAI_MODEL``,
bound through ``dg.EnvVar`` only when set, so an unset key means "deterministic insights only")."""

import dagster as dg

from autopilot_pipeline.aiops.settings import AiopsSettings
from autopilot_pipeline.defs.alerting.resources import optional_env
from autopilot_pipeline.integrations.openai_chat import (
    API_KEY_ENV,
    BASE_URL_ENV,
    DEFAULT_MODEL,
    MODEL_ENV,
    LLMSettings,
)


class AiopsConfig(dg.Config, AiopsSettings):
    """:class:`AiopsSettings` as Dagster config: one definition of each window, editable per run."""


class AiopsResource(dg.ConfigurableResource):
    """The AI-ops domain's settings for its assets (defaults and reasons: :class:`AiopsSettings`)."""

    settings: AiopsConfig = AiopsConfig()


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
