"""The OpenAI chat client: one completion with a timeout and exactly one retry (the client's own retry: 429,
5xx, timeouts and connection errors), through the official ``openai`` package.

Any OpenAI-compatible server works (``OPENAI_BASE_URL``); the model is ``AUTOPILOT_OPENAI_MODEL`` (default
``gpt-4o-mini``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["API_KEY_ENV", "BASE_URL_ENV", "DEFAULT_MODEL", "MODEL_ENV", "LLMSettings", "ask"]

DEFAULT_MODEL = "gpt-4o-mini"
API_KEY_ENV = "OPENAI_API_KEY"
BASE_URL_ENV = "OPENAI_BASE_URL"
MODEL_ENV = "AUTOPILOT_OPENAI_MODEL"


class LLMSettings(BaseModel):
    """Where and how to ask. ``api_key`` None disables the narrative."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    api_key: str | None = None
    """The OpenAI (or compatible) key; none: deterministic insights only."""
    base_url: str | None = None
    """An OpenAI-compatible server (none: OpenAI's)."""
    model: str = DEFAULT_MODEL
    """The chat model."""
    timeout_s: float = 30.0
    """Per request; the client retries once (429, 5xx, timeouts, connection errors)."""
    max_tokens: int = 400
    """Length of the narrative at most (a quiet day needs about 150)."""
    temperature: float = 0.2
    """Low: the narrative restates the computed facts, it does not invent."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> LLMSettings:
        """For the CLI (Dagster runs get theirs from the ``llm`` resource, bound with ``EnvVar``)."""
        return cls(
            api_key=environ.get(API_KEY_ENV) or None,
            base_url=environ.get(BASE_URL_ENV) or None,
            model=environ.get(MODEL_ENV) or DEFAULT_MODEL,
        )


def _usage(response: Any) -> dict[str, int | None]:
    usage = getattr(response, "usage", None)
    return {
        key: (int(v) if isinstance(v := getattr(usage, key, None), int) else None)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }


def ask(settings: LLMSettings, messages: list[dict[str, str]]) -> tuple[str, dict[str, int | None]]:
    """One chat completion (one retry inside the client); raises on any failure or malformed reply."""
    from openai import OpenAI

    client = OpenAI(
        api_key=settings.api_key,
        base_url=settings.base_url,
        timeout=settings.timeout_s,
        max_retries=1,
    )
    try:
        response = client.chat.completions.create(
            model=settings.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=settings.max_tokens,
            temperature=settings.temperature,
        )
    finally:
        client.close()
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ValueError("malformed reply: no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        raise ValueError("malformed reply: no message content")
    return content.strip(), _usage(response)
