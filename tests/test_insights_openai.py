# ruff: noqa: E402
"""Insights: the deterministic seed JSON (pure), and the optional LLM narrative through the real ``openai``
client against a real OpenAI-compatible HTTP server on 127.0.0.1 (success, 429, timeout, malformed
replies), with its Postgres cache and token accounting; then the insights asset end to end."""

from __future__ import annotations

import os

os.environ.setdefault(
    "OPENBLAS_NUM_THREADS", "1"
)  # before numpy loads: see docs/AI_OPS_GUIDE.md, Performance

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import polars as pl
import psycopg
import pytest

from autopilot_pipeline import runner
from autopilot_pipeline.aiops.insights import (
    GOOD_MESSAGE,
    add_predictive_scaling,
    build_facts,
    generate_insights,
    llm_messages,
    slack_message,
)
from autopilot_pipeline.aiops.llm import narrate
from autopilot_pipeline.aiops.pipeline import run_insights
from autopilot_pipeline.aiops.settings import AiopsSettings
from autopilot_pipeline.aiops.store import TREND_COLUMNS
from autopilot_pipeline.integrations.openai_chat import LLMSettings

END = datetime(2026, 3, 4, 15, tzinfo=UTC)
START = END - timedelta(hours=24)
SECRET = "sk-test-not-a-real-key"
REPLY = "Error rates on api rose after the deploy; roll back and watch memory on web."
TS = pl.Datetime("us", "UTC")


# ------------------------------------------------------------------------------------------- the server


class OpenAICompatible:
    """POST /v1/chat/completions on 127.0.0.1: records every request and answers from ``script`` ("ok",
    429, "hang", "garbage", "no_choices", "empty"; empty script: "ok")."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.script: list[int | str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.bodies.append(json.loads(raw))
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                server.paths.append(self.path)
                answer = server.script.pop(0) if server.script else "ok"
                if answer == "hang":
                    server.release.wait(5)
                    return
                if answer == 429:
                    self._send(
                        429, {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}}, True
                    )
                elif answer == "garbage":
                    self._raw(200, b"<html>upstream proxy error</html>")
                elif answer == "no_choices":
                    self._send(200, {"id": "chatcmpl-x", "object": "chat.completion"})
                elif answer == "empty":
                    self._send(200, _completion("", server.bodies[-1]["model"]))
                else:
                    self._send(200, _completion(REPLY, server.bodies[-1]["model"]))

            def _send(self, status: int, payload: dict, retry_soon: bool = False) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if retry_soon:
                    self.send_header("retry-after-ms", "10")  # the client's retry waits 10 ms, not seconds
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _raw(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text: str, model: str) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366},
    }


@pytest.fixture
def llm_server() -> Iterator[OpenAICompatible]:
    server = OpenAICompatible()
    yield server
    server.close()


def settings_for(server: OpenAICompatible, timeout_s: float = 5.0) -> LLMSettings:
    return LLMSettings(api_key=SECRET, base_url=server.base_url, model="test-model", timeout_s=timeout_s)


# -------------------------------------------------------------------------------------------- the facts


def _components(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "component": pl.String,
            "checks": pl.Int64,
            "up_checks": pl.Int64,
            "events": pl.Int64,
            "errors": pl.Int64,
            "p95_ms": pl.Float64,
            "worst_p95_ms": pl.Float64,
            "health_score": pl.Float64,
            "worst_health_score": pl.Float64,
        },
        orient="row",
    )


def _anomalies(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "bucket_start": TS,
            "component": pl.String,
            "metric": pl.String,
            "severity": pl.String,
            "confidence": pl.Float64,
            "reason": pl.String,
        },
        orient="row",
    )


def _trends(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=TREND_COLUMNS) if rows else pl.DataFrame(schema=TREND_COLUMNS)


def _prediction(
    component: str, metric: str, p: float, direction: str = "above", threshold: float = 95.0
) -> dict:
    return {
        "prediction": f"{component} {metric} {direction} {threshold:g} likely within 24 hours",
        "probability": p,
        "timeframe": "24 hours",
        "recommendations": [f"Check resource utilization of {component}"],
        "component": component,
        "metric": metric,
        "threshold": threshold,
        "direction": direction,
        "expectedCrossingAt": (END + timedelta(hours=5)).isoformat(),
    }


def facts(**overrides: object) -> dict:
    kwargs: dict = {
        "window_start": START,
        "window_end": END,
        "components": _components(
            [
                ("api", 1440, 1440, 1470, 30, 120.0, 180.0, 97.0, 90.0),
                ("web", 1440, 1440, 1450, 10, 200.0, 260.0, 99.0, 95.0),
            ]
        ),
        "releases": {"migrations_total": 5, "migrations_failed": 0},
        "anomalies": _anomalies([]),
        "trends": _trends([]),
        "predictions": [],
        "optimizations": None,
    }
    kwargs.update(overrides)
    return build_facts(**kwargs)


# --------------------------------------------------------------------------------------- pure: insights


def test_a_quiet_day_is_good_in_the_seed_shape():
    out = generate_insights(facts())
    assert list(out)[:4] == ["summary", "health", "migrations", "recommendations"]
    assert (
        out["summary"]
        == "System processed 2,880 health checks with 1.4% error rate across 2 component(s) in the last 24 hours"
    )
    assert out["health"] == "good"
    assert out["migrations"] == {"total": 5, "failed": 0, "successRate": "100%"}
    assert out["recommendations"] == [GOOD_MESSAGE]


def test_health_levels_and_recommendations_follow_the_facts():
    down = _components([("api", 100, 85, 110, 20, 150.0, 900.0, 40.0, 0.0)])  # 85 % uptime, 18 % errors
    out = generate_insights(facts(components=down, releases={"migrations_total": 3, "migrations_failed": 1}))
    assert out["health"] == "critical"
    assert out["migrations"]["successRate"] == "66.7%"
    text = " | ".join(out["recommendations"])
    assert "Investigate api availability: uptime 85%" in text
    assert "Investigate errors on api: 18.2% of events failed" in text
    assert "Review 1 failed migration(s) of 3" in text

    risky = generate_insights(facts(predictions=[_prediction("web", "memory_usage_pct", 0.6)]))
    assert risky["health"] == "warning"
    assert risky["recommendations"][0].startswith("Act on web: web memory_usage_pct above 95 likely")
    assert "(risk score 0.60)" in risky["recommendations"][0]
    assert risky["atRisk"][0]["probability"] == 0.6

    hit = _anomalies(
        [
            (
                END - timedelta(hours=3),
                "api",
                "p95_ms",
                "critical",
                0.999,
                "Response time is 30.1 standard deviations above normal",
            )
        ]
    )
    old = _anomalies([(START - timedelta(hours=1), "api", "p95_ms", "critical", 0.999, "outside the window")])
    assert generate_insights(facts(anomalies=hit))["health"] == "critical"
    assert generate_insights(facts(anomalies=old))["health"] == "good"  # before the window: not counted

    degrading = _trends(
        [
            {
                "window_hours": 168,
                "component": "web",
                "metric": "p95_ms",
                "trend": "degrading",
                "slope_per_day": 12.5,
                "p_value": 0.001,
            }
        ]
    )
    out = generate_insights(facts(trends=degrading))
    assert out["health"] == "warning" and out["degradingTrends"] == 1
    assert (
        "web p95_ms is degrading over the last 168 hours (+12.5 per day, p = 0.001)" in out["recommendations"]
    )


def test_prompt_holds_aggregates_only_and_equal_facts_give_equal_prompts():
    f = facts(
        anomalies=_anomalies(
            [
                (
                    END - timedelta(hours=2),
                    "api",
                    "error_ratio",
                    "high",
                    0.97,
                    "Error rate is 6.0x the baseline",
                )
            ]
        )
    )
    messages = llm_messages(f, generate_insights(f))
    user = messages[1]["content"]
    assert END.isoformat() not in user and START.isoformat() not in user  # no absolute times
    payload = json.loads(user.split("Facts:\n", 1)[1].split("\nDeterministic assessment:", 1)[0])
    assert payload["healthChecks"] == 2880 and payload["anomalies"]["top"][0]["hoursAgo"] == 1.0
    shifted = facts(
        window_start=START + timedelta(hours=6),
        window_end=END + timedelta(hours=6),
        anomalies=_anomalies(
            [
                (
                    END + timedelta(hours=4),
                    "api",
                    "error_ratio",
                    "high",
                    0.97,
                    "Error rate is 6.0x the baseline",
                )
            ]
        ),
    )
    assert llm_messages(shifted, generate_insights(shifted)) == messages  # same situation, same prompt


def test_slack_message_and_predictive_scaling():
    out = generate_insights(facts(predictions=[_prediction("web", "memory_usage_pct", 0.8)]))
    text = slack_message({**out, "aiAnalysis": REPLY})["text"]
    assert text.startswith("🤖 *AI Ops Analysis Complete*") and "health: *critical*" in text
    assert out["summary"] in text and REPLY in text

    base = {
        "totalOptimizations": 1,
        "optimizations": [
            {
                "type": "maintenance",
                "priority": "medium",
                "description": "2 tables need VACUUM",
                "action": "Run VACUUM ANALYZE",
                "impact": "x",
                "count": 2,
                "items": [],
            }
        ],
        "estimatedImpact": "Moderate performance improvement expected",
    }
    preds = [
        _prediction("web", "memory_usage_pct", 0.8),
        _prediction("api", "uptime_pct", 0.9, "below", 90.0),  # availability, not a scaling matter
        _prediction("api", "cpu_usage_pct", 0.3),  # below the bar
    ]
    scaled = add_predictive_scaling(base, preds)
    assert scaled["totalOptimizations"] == 2
    assert (
        scaled["optimizations"][0]["type"] == "resource_scaling"
        and scaled["optimizations"][0]["priority"] == "high"
    )
    assert [i["key"] for i in scaled["optimizations"][0]["items"]] == ["forecast:web:memory_usage_pct"]
    assert scaled["estimatedImpact"] == "Significant performance improvement expected"
    assert base["totalOptimizations"] == 1  # the input is not modified
    assert add_predictive_scaling(base, preds[1:]) == base


# ------------------------------------------------------------------------------- the real openai client


def test_success_records_tokens_and_caches_by_input(conn, llm_server):
    f = facts()
    ins = generate_insights(f)
    first = narrate(conn, f, ins, settings_for(llm_server))
    assert first.status == "ok" and first.text == REPLY
    assert first.usage == {"prompt_tokens": 321, "completion_tokens": 45, "total_tokens": 366}
    assert first.tokens_charged == 366
    assert llm_server.paths == ["/v1/chat/completions"]
    body, headers = llm_server.bodies[0], llm_server.headers[0]
    assert body["model"] == "test-model" and body["messages"] == llm_messages(f, ins)
    assert headers["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(body)  # the key only travels in the header
    row = conn.execute("SELECT model, response, total_tokens, hits FROM analytics.llm_cache").fetchone()
    assert row == ("test-model", REPLY, 366, 0)

    again = narrate(conn, f, ins, settings_for(llm_server))
    assert again.status == "cached" and again.text == REPLY and again.tokens_charged == 0
    assert again.usage["total_tokens"] == 366 and again.input_hash == first.input_hash
    assert len(llm_server.bodies) == 1  # no second request, no second charge
    assert conn.execute("SELECT hits FROM analytics.llm_cache").fetchone()[0] == 1

    other_model = narrate(
        conn, f, ins, LLMSettings(api_key=SECRET, base_url=llm_server.base_url, model="other-model")
    )
    assert other_model.status == "ok" and len(llm_server.bodies) == 2  # another model is another question


def test_rate_limit_is_retried_exactly_once(conn, llm_server):
    f = facts()
    llm_server.script = [429, "ok"]
    ok = narrate(conn, f, generate_insights(f), settings_for(llm_server))
    assert ok.status == "ok" and len(llm_server.bodies) == 2

    g = facts(releases={"migrations_total": 1, "migrations_failed": 1})  # new facts: not cached
    llm_server.script = [429, 429, "ok"]
    failed = narrate(conn, g, generate_insights(g), settings_for(llm_server))
    assert failed.status == "failed" and failed.text is None
    assert "RateLimitError" in failed.error and "429" in failed.error
    assert len(llm_server.bodies) == 4  # 2 more: one try, one retry, then give up
    assert (
        conn.execute("SELECT count(*) FROM analytics.llm_cache").fetchone()[0] == 1
    )  # failures are not cached


def test_timeout_gives_up_after_one_retry(conn, llm_server):
    f = facts()
    llm_server.script = ["hang", "hang"]
    out = narrate(conn, f, generate_insights(f), settings_for(llm_server, timeout_s=0.3))
    assert out.status == "failed" and "APITimeoutError" in out.error
    assert len(llm_server.bodies) == 2
    assert conn.execute("SELECT count(*) FROM analytics.llm_cache").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("answer", "expected"),
    [("garbage", "JSONDecodeError"), ("no_choices", "no choices"), ("empty", "no message content")],
)
def test_malformed_replies_are_failures_not_crashes(conn, llm_server, answer, expected):
    f = facts()
    llm_server.script = [answer]
    out = narrate(conn, f, generate_insights(f), settings_for(llm_server))
    assert out.status == "failed" and expected in out.error and SECRET not in out.error
    assert len(llm_server.bodies) == 1
    assert conn.execute("SELECT count(*) FROM analytics.llm_cache").fetchone()[0] == 0


def test_without_a_key_nothing_is_sent(conn, llm_server):
    f = facts()
    out = narrate(conn, f, generate_insights(f), LLMSettings(api_key=None, base_url=llm_server.base_url))
    assert out.status == "disabled" and llm_server.bodies == []


# ------------------------------------------------------------------------------------- through the asset


def _materialize_insights(url: str, llm: dict) -> dg.ExecuteInProcessResult:
    from autopilot_pipeline.defs.aiops.assets import insights
    from autopilot_pipeline.defs.aiops.resources import AiopsResource, LLMConfig, LLMResource
    from autopilot_pipeline.defs.alerting.resources import SlackResource
    from autopilot_pipeline.defs.resources import PostgresResource

    return dg.materialize(
        [insights],
        resources={
            "postgres": PostgresResource(database_url=url),
            "aiops": AiopsResource(),
            "llm": LLMResource(settings=LLMConfig(**llm)),
            "slack": SlackResource(),
        },
        partition_key=f"default|{runner.hour_key(END - timedelta(hours=1))}",
        instance=_instance_with_default(),
    )


def _instance_with_default() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("targets", ["default"])
    return instance


def test_insights_asset_records_usage_and_keeps_deterministic_insights_on_failure(pg_url, conn, llm_server):
    ok = _materialize_insights(
        pg_url, {"api_key": SECRET, "base_url": llm_server.base_url, "model": "test-model"}
    )
    meta = ok.asset_materializations_for_node("analytics__insights")[0].metadata
    assert meta["llm_status"].value == "ok" and meta["llm_total_tokens"].value == 366
    assert meta["llm_prompt_tokens"].value == 321 and meta["llm_tokens_charged"].value == 366
    stored = conn.execute(
        "SELECT ai_status, total_tokens, insights->>'aiAnalysis', insights->>'health' FROM analytics.insights"
    ).fetchone()
    assert stored == ("ok", 366, REPLY, "good")

    conn.execute("DELETE FROM analytics.llm_cache")
    llm_server.script = [429, 429]
    failed = _materialize_insights(
        pg_url, {"api_key": SECRET, "base_url": llm_server.base_url, "model": "test-model"}
    )
    assert failed.success
    meta = failed.asset_materializations_for_node("analytics__insights")[0].metadata
    assert meta["llm_status"].value == "failed" and "429" in meta["llm_error"].value
    doc = conn.execute("SELECT ai_status, insights FROM analytics.insights").fetchone()
    assert doc[0] == "failed" and "aiAnalysis" not in doc[1]
    assert doc[1]["recommendations"] == [GOOD_MESSAGE] and doc[1]["summary"].startswith(
        "System processed 0 health checks"
    )


def test_run_insights_without_llm_is_deterministic(conn):
    kwargs = {
        "anomalies": _anomalies([]),
        "trends": _trends([]),
        "predictions": [],
        "optimizations": None,
    }
    one = run_insights(conn, END, AiopsSettings(), LLMSettings(), **kwargs)
    two = run_insights(conn, END, AiopsSettings(), LLMSettings(), **kwargs)
    assert one.insights == two.insights and one.llm.status == "disabled"
    assert conn.execute("SELECT count(*), min(ai_status) FROM analytics.insights").fetchone() == (
        1,
        "disabled",
    )


def test_cache_survives_a_lost_connection_between_runs(pg_url, llm_server):
    f = facts()
    with psycopg.connect(pg_url, autocommit=True) as c1:
        assert narrate(c1, f, generate_insights(f), settings_for(llm_server)).status == "ok"
    with psycopg.connect(pg_url, autocommit=True) as c2:
        assert narrate(c2, f, generate_insights(f), settings_for(llm_server)).status == "cached"
    assert len(llm_server.bodies) == 1
