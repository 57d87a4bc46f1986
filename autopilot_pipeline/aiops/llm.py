"""Optional LLM narrative (``aiAnalysis``) for the insights, through the official ``openai`` client.

The request itself is :func:`autopilot_pipeline.integrations.openai_chat.ask` (any OpenAI-compatible
server). The prompt holds the computed aggregates only (:func:`aiops.insights.llm_messages`); answers are cached in ``analytics.llm_cache`` by a hash of model and prompt, so the
same facts are never paid for twice; token usage is returned for the asset's metadata. Any failure
(no key, network, HTTP error, malformed reply) leaves the deterministic insights standing: it comes back
as ``status='failed'`` with a one-line reason, never as an exception.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg

from autopilot_pipeline.aiops import store
from autopilot_pipeline.aiops.insights import PROMPT_VERSION, llm_messages
from autopilot_pipeline.integrations.openai_chat import LLMSettings, ask

__all__ = ["LLMOutcome", "input_hash", "narrate"]

_MAX_ERROR = 300


@dataclass(frozen=True)
class LLMOutcome:
    """What happened: ``disabled`` (no key), ``ok`` (answered now), ``cached`` (answered before: no
    tokens charged) or ``failed`` (``error`` says why)."""

    status: Literal["disabled", "ok", "cached", "failed"]
    text: str | None = None
    error: str | None = None
    model: str | None = None
    input_hash: str | None = None
    usage: dict[str, int | None] = field(default_factory=dict)
    tokens_charged: int = 0
    seconds: float = 0.0

    def metadata(self) -> dict[str, Any]:
        """Flat values for Dagster metadata (numbers chart over time in the UI)."""
        out: dict[str, Any] = {"llm_status": self.status}
        if self.model:
            out["llm_model"] = self.model
        if self.error:
            out["llm_error"] = self.error
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            if self.usage.get(key) is not None:
                out[f"llm_{key}"] = int(self.usage[key])  # type: ignore[arg-type]
        if self.status in ("ok", "cached"):
            out["llm_tokens_charged"] = self.tokens_charged
            out["llm_seconds"] = round(self.seconds, 3)
        return out


def input_hash(model: str, messages: list[dict[str, str]], max_tokens: int, temperature: float) -> str:
    """sha256 of everything that decides the answer (so a new model or prompt version is a new entry)."""
    payload = {
        "version": PROMPT_VERSION,
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": temperature,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _one_line(text: str, secret: str | None) -> str:
    line = " ".join(str(text).split())
    if secret:
        line = line.replace(secret, "***")
    return line if len(line) <= _MAX_ERROR else line[: _MAX_ERROR - 1] + "…"


def narrate(
    conn: psycopg.Connection, facts: Mapping[str, Any], insights: Mapping[str, Any], settings: LLMSettings
) -> LLMOutcome:
    """The ``aiAnalysis`` text for ``insights`` (built from ``facts``), from the cache or the model."""
    if not settings.api_key:
        return LLMOutcome("disabled")
    messages = llm_messages(facts, insights)
    key = input_hash(settings.model, messages, settings.max_tokens, settings.temperature)
    hit = store.cache_get(conn, key)
    if hit is not None:
        usage = {k: hit[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return LLMOutcome("cached", hit["response"], None, hit["model"], key, usage, tokens_charged=0)
    started = time.perf_counter()
    try:
        text, usage = ask(settings, messages)
    except Exception as exc:  # any failure keeps the deterministic insights; the reason is reported
        reason = _one_line(f"{type(exc).__name__}: {exc}", settings.api_key)
        return LLMOutcome(
            "failed", None, reason, settings.model, key, {}, seconds=time.perf_counter() - started
        )
    store.cache_put(conn, key, settings.model, text, usage)
    return LLMOutcome(
        "ok",
        text,
        None,
        settings.model,
        key,
        usage,
        tokens_charged=int(usage.get("total_tokens") or 0),
        seconds=time.perf_counter() - started,
    )
