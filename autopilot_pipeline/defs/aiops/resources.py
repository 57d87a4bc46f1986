"""AI-ops settings and the optional LLM (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``AUTOPILOT_OPENAI_MODEL``,
bound through ``dg.EnvVar`` only when set, so an unset key means "deterministic insights only")."""

import dagster as dg

from autopilot_pipeline.aiops.settings import AiopsSettings
from autopilot_pipeline.defs.alerting.resources import optional_env
from autopilot_pipeline.integrations.openai_chat import (
    API_KEY_ENV,
    BASE_URL_ENV,
    MODEL_ENV,
    LLMSettings,
)


class AiopsConfig(dg.Config, AiopsSettings):
    """:class:`AiopsSettings` as Dagster config: one definition of each window, editable per run."""


class AiopsResource(dg.ConfigurableResource):
    """The AI-ops domain's settings for its assets (defaults and reasons: :class:`AiopsSettings`)."""

    settings: AiopsConfig = AiopsConfig()


class LLMConfig(dg.Config, LLMSettings):
    """:class:`LLMSettings` as Dagster config; the key, server and model come from ``dg.EnvVar``."""


class LLMResource(dg.ConfigurableResource):
    """An OpenAI-compatible chat endpoint for the insights narrative; no ``api_key``: no narrative."""

    settings: LLMConfig = LLMConfig()


def llm_from_env() -> LLMConfig:
    """The optional LLM, bound through ``dg.EnvVar`` for what is set (the key is never a plain value)."""
    bound = {
        field: env
        for field, name in (("api_key", API_KEY_ENV), ("base_url", BASE_URL_ENV), ("model", MODEL_ENV))
        if (env := optional_env(name)) is not None
    }
    return LLMConfig(**bound)


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "aiops": AiopsResource(),
            "llm": LLMResource(settings=llm_from_env()),
        }
    )
