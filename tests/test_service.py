# ruff: noqa: E402
"""``autopilot serve`` for real: the CLI in a subprocess on a free port, real HTTP (httpx), real Postgres with
the demo data materialized by the health and AI-ops jobs. Every curl line of the seed (changing only the
host), the answers against the shared code, auth, bad input, a database that stops and comes back, the
exposition through prometheus-client's parsers and promtool, SIGTERM, and the loopback-only rule."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import psycopg
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from autopilot_pipeline import runner, tasks
from autopilot_pipeline.metrics.exposition import EXTRA_METRICS, SEED_METRICS
from autopilot_pipeline.postgres import migrate
from autopilot_pipeline.postgres.embedded import EmbeddedPostgres
from autopilot_pipeline.service import auth

from .conftest import _create_database
from .demo_database import materialized_demo

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-" + uuid.uuid4().hex
# The data ends at the current hour, so the exporter's gauges (each component's hour within the last two
# hours) have values now; set by the demo_db fixture, which keeps clear of the hour's last minutes.
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
HOUR_MARGIN = timedelta(minutes=3)
EXPORTER = "/functions/v1/metrics-exporter"
ANALYZER = "/functions/v1/ai-ops-analyzer"
SEED_KEYS = {
    "detect_anomalies": {"isAnomaly", "confidence", "reason", "expectedValue", "actualValue", "severity"},
    "predict_failures": {"prediction", "probability", "timeframe", "recommendations"},
    "analyze_trends": {"trend", "slope", "confidence", "dataPoints"},
}
INSIGHT_KEYS = {"summary", "health", "migrations", "recommendations"}
OPTIMIZE_KEYS = {"totalOptimizations", "optimizations", "estimatedImpact"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Served:
    """A running ``autopilot serve``: its base URL, process and log files."""

    url: str
    process: subprocess.Popen
    log: Path

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _env(db_url: str, secret: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOPILOT_SECRET", "OPENAI_API_KEY")}
    env.update(AUTOPILOT_DATABASE_URL=db_url, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    if secret:
        env["AUTOPILOT_SECRET"] = secret
    return env


def serve(db_url: str, log: Path, *args: str, secret: str | None = SECRET) -> Served:
    port = _free_port()
    out = log.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "autopilot_pipeline.cli", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=_env(db_url, secret),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    out.close()
    served = Served(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, served.output()
        try:
            if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                return served
        except httpx.TransportError:
            time.sleep(0.2)
    served.stop()
    raise AssertionError(f"autopilot serve did not answer: {served.output()}")


@pytest.fixture(scope="module")
def demo_db(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Four days of demo data for three components ending at the current hour, the hourly health tables
    materialized and one aiops_job run at that hour (as ``autopilot demo`` leaves them)."""
    global END
    now = datetime.now(UTC)
    next_hour = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if next_hour - now < HOUR_MARGIN:  # the exporter's window would move under the module's feet
        time.sleep((next_hour - now).total_seconds() + 1)
    END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with materialized_demo(pg_server, tmp_path_factory.mktemp("state"), END, "autopilot_service") as url:
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions("targets", ["default"])
            job = runner.load_definitions().resolve_job_def("aiops_job")
            result = job.execute_in_process(
                instance=instance,
                partition_key=f"default|{runner.hour_key(END - timedelta(hours=1))}",  # the hour ending at END
                run_config=runner.QUIET_LOGGERS,
            )
            assert result.success
        yield url


@pytest.fixture(scope="module")
def server(demo_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    served = serve(demo_db, tmp_path_factory.mktemp("serve") / "serve.log")
    yield served
    assert served.stop() == 0


@pytest.fixture(scope="module")
def client(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=120) as c:
        yield c


def signed(**headers: str) -> dict[str, str]:
    return {"x-autopilot-sign": SECRET, **headers}


# ------------------------------------------------------------------------------------- the seed's curl lines


def test_metrics_exporter_curl_line(client: httpx.Client) -> None:
    # curl "https://YOUR_PROJECT_REF.supabase.co/functions/v1/metrics-exporter" -H "x-autopilot-sign: ..."
    response = client.get(EXPORTER, headers=signed())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    # counters are parsed without their _total suffix
    names = {f"{n}_total" if f.type == "counter" else n for n, f in families.items()}
    assert set(SEED_METRICS) <= names, set(SEED_METRICS) - names
    assert set(EXTRA_METRICS) <= names
    samples = {s.name: s for f in families.values() for s in f.samples}
    uptime = [s for f in families.values() for s in f.samples if s.name == "autopilot_uptime_percentage"]
    assert {s.labels["component"] for s in uptime} and all(0 <= s.value <= 100 for s in uptime)
    stats = {
        s.labels["stat"]
        for f in families.values()
        for s in f.samples
        if s.name == "autopilot_response_time_ms"
    }
    assert stats == {"avg", "p95", "p99"}
    assert all(0 <= s.value <= 100 for s in families["autopilot_health_score"].samples)
    assert samples["autopilot_health_checks_total"].value > 0


def test_exposition_is_the_push_registry(client: httpx.Client, demo_db: str) -> None:
    """No second implementation: the scrape shows the series the Pushgateway push would send."""
    from prometheus_client.exposition import generate_latest

    from autopilot_pipeline.metrics.exposition import build_registry
    from autopilot_pipeline.metrics.store import read_metrics_snapshot

    with psycopg.connect(demo_db, autocommit=True) as conn:
        pushed = generate_latest(build_registry(read_metrics_snapshot(conn, datetime.now(UTC)), 0)).decode()

    def series(text: str) -> set[str]:
        return {
            line.rsplit(" ", 1)[0]
            for line in text.splitlines()
            if line and not line.startswith("#") and "last_success" not in line
        }

    assert series(client.get("/metrics", headers=signed()).text) == series(pushed)


def test_openmetrics_when_asked(client: httpx.Client) -> None:
    response = client.get(EXPORTER, headers=signed(accept="application/openmetrics-text; version=1.0.0"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    names = {f.name for f in parse_openmetrics(response.text)}
    assert "autopilot_uptime_percentage" in names and "autopilot_health_checks" in names


def test_plain_metrics_route_with_bearer_token(client: httpx.Client) -> None:
    response = client.get("/metrics", headers={"authorization": f"Bearer {SECRET}"})
    assert response.status_code == 200
    assert "autopilot_health_score{" in response.text


def test_promtool_accepts_the_exposition(client: httpx.Client) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    text = client.get(EXPORTER, headers=signed()).text
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    # Exit 3 is promtool's "lint problems" (1 would be a malformed exposition): the only ones allowed are the
    # abbreviated units of the seed's own names, which users' queries depend on and we keep as written.
    findings = (checked.stdout + checked.stderr).strip().splitlines()
    assert checked.returncode in (0, 3), findings
    assert {line.split(" ", 1)[0] for line in findings} <= {
        "autopilot_response_time_ms",
        "autopilot_migration_duration_ms",
    }, findings
    assert all(line.endswith("should not contain abbreviated units") for line in findings), findings


@pytest.mark.parametrize("task", ["detect_anomalies", "predict_failures", "generate_insights"])
def test_analyzer_curl_lines(client: httpx.Client, task: str) -> None:
    # curl -X POST .../functions/v1/ai-ops-analyzer -H "x-autopilot-sign: ..." -H "Content-Type: application/json"
    #      -d '{"task":"..."}'
    response = client.post(
        ANALYZER, headers=signed(**{"content-type": "application/json"}), content=json.dumps({"task": task})
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["task"] == task and body["fresh"] is False
    assert body["asOf"] == END.isoformat()  # the stored analysis the answer comes from
    result = body["result"]
    if task == "generate_insights":
        assert set(result) >= INSIGHT_KEYS
        assert {"total", "failed", "successRate"} <= set(result["migrations"])
    else:
        assert isinstance(result, list) and result
        assert all(SEED_KEYS[task] <= set(item) for item in result)


@pytest.mark.parametrize("task", tasks.TASKS)
def test_analyzer_without_content_type_as_the_seed_typescript_sends(client: httpx.Client, task: str) -> None:
    # fetch(AI_OPS_URL, {method: 'POST', headers: {'x-autopilot-sign': SECRET}, body: JSON.stringify({task})})
    response = client.post(ANALYZER, headers=signed(), content=json.dumps({"task": task}).encode())
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    if task == "predict_failures":  # predictions.result.some((p) => p.probability > 0.7)
        assert isinstance(result, list)
        assert all(0 <= p["probability"] <= 1 for p in result)
    elif task == "optimize_system":  # for (const opt of optimizations.result.optimizations)
        assert set(result) >= OPTIMIZE_KEYS and isinstance(result["optimizations"], list)
        assert result["totalOptimizations"] == len(result["optimizations"])
    elif task == "generate_insights":
        assert set(result) >= INSIGHT_KEYS
    else:
        assert isinstance(result, list)


@pytest.mark.parametrize("task", ["detect_anomalies", "analyze_trends", "predict_failures"])
def test_stored_answer_is_what_analyze_computes(client: httpx.Client, demo_db: str, task: str) -> None:
    """The analyzer serves the assets' rows; ``autopilot analyze``'s code recomputes the same answer."""
    served = client.post(ANALYZER, headers=signed(), content=json.dumps({"task": task})).json()["result"]
    with psycopg.connect(demo_db, autocommit=True) as conn:
        computed = tasks.compute(conn, task, END).result
    key = {
        "detect_anomalies": ("component", "metric", "timestamp"),
        "analyze_trends": ("windowHours", "component", "metric"),
    }
    if task == "predict_failures":
        assert {(p["component"], p["metric"]) for p in served} == {
            (p["component"], p["metric"]) for p in computed
        }
        by_series = {(p["component"], p["metric"]): p for p in computed}
        for p in served:
            assert p["probability"] == pytest.approx(by_series[(p["component"], p["metric"])]["probability"])
            assert p["prediction"] == by_series[(p["component"], p["metric"])]["prediction"]
        return
    ordered = sorted(computed, key=lambda r: tuple(r[k] for k in key[task]))
    got = sorted(served, key=lambda r: tuple(r[k] for k in key[task]))
    assert [tuple(r[k] for k in key[task]) for r in got] == [tuple(r[k] for k in key[task]) for r in ordered]
    field = "confidence" if task == "detect_anomalies" else "slope"
    assert [r[field] for r in got] == pytest.approx([r[field] for r in ordered], nan_ok=True)


def test_fresh_computes_at_the_current_analysis_time(client: httpx.Client) -> None:
    stored = client.post(ANALYZER, headers=signed(), content=b'{"task": "analyze_trends"}').json()
    fresh = client.post(
        ANALYZER, headers=signed(), content=b'{"task": "analyze_trends", "fresh": true}'
    ).json()
    assert fresh["fresh"] is True and fresh["asOf"] == END.isoformat()
    assert [(t["component"], t["metric"], t["trend"]) for t in fresh["result"]] == [
        (t["component"], t["metric"], t["trend"]) for t in stored["result"]
    ]


def test_nothing_materialized_is_503_then_served_once_it_is(client: httpx.Client, demo_db: str) -> None:
    with psycopg.connect(demo_db, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE saved AS SELECT * FROM analytics.insights")
        conn.execute("DELETE FROM analytics.insights")
        try:
            missing = client.post(ANALYZER, headers=signed(), content=b'{"task": "generate_insights"}')
            assert missing.status_code == 503 and int(missing.headers["retry-after"]) > 0
            assert missing.json()["error"].startswith("generate_insights has no materialization yet")
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "generate_insights" in ready.json()["error"]
        finally:
            conn.execute("INSERT INTO analytics.insights SELECT * FROM saved")
    back = client.post(ANALYZER, headers=signed(), content=b'{"task": "generate_insights"}')
    assert back.status_code == 200 and back.json()["asOf"] == END.isoformat()


def test_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


# ------------------------------------------------------------------------------------------- auth and input


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-autopilot-sign": "wrong"},
        {"x-autopilot-sign": SECRET[:-1]},
        {"authorization": "Bearer wrong"},
        {"authorization": SECRET},  # not a bearer token
    ],
    ids=["none", "wrong", "prefix", "wrong-bearer", "no-scheme"],
)
def test_unauthorized_without_detail(client: httpx.Client, headers: dict[str, str]) -> None:
    for response in (
        client.get(EXPORTER, headers=headers),
        client.get("/metrics", headers=headers),
        client.post(ANALYZER, headers=headers, content=b'{"task": "detect_anomalies"}'),
    ):
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
        assert SECRET not in response.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"task": "detect_anomalies"', "not valid JSON"),
        (b'{"task": "make_coffee"}', "unknown task"),
        (b"{}", "unknown task missing"),
        (b'["detect_anomalies"]', "JSON object"),
        (b"", "empty body"),
        (b'{"task": "predict_failures", "fresh": "yes"}', '"fresh" must be'),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_input_is_400_with_one_line(client: httpx.Client, body: bytes, reason: str) -> None:
    response = client.post(ANALYZER, headers=signed(), content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert reason in error and "\n" not in error and "Traceback" not in error


def test_body_over_64_kib_is_413(client: httpx.Client) -> None:
    big = json.dumps({"task": "detect_anomalies", "pad": "x" * (64 * 1024)}).encode()
    assert client.post(ANALYZER, headers=signed(), content=big).status_code == 413
    just_fits = json.dumps({"task": "analyze_trends", "pad": "x" * (60 * 1024)}).encode()
    assert client.post(ANALYZER, headers=signed(), content=just_fits).status_code == 200

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for _ in range(20):
            yield b" " * 4096

    assert client.post(ANALYZER, headers=signed(), content=chunks()).status_code == 413


def test_wrong_method_is_405_and_unknown_path_404(client: httpx.Client) -> None:
    wrong = client.get(ANALYZER, headers=signed())
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert client.post(EXPORTER, headers=signed()).status_code == 405
    assert client.delete("/metrics", headers=signed()).status_code == 405
    assert client.get("/functions/v1/nothing-here", headers=signed()).status_code == 404


def test_server_log_has_no_traceback_and_no_secret(client: httpx.Client, server: Served) -> None:
    client.post(ANALYZER, headers=signed(), content=b"{bad")
    client.post(ANALYZER, headers={"x-autopilot-sign": "guess"}, content=b"{}")
    log = server.output()
    assert "Traceback" not in log and SECRET not in log
    assert f'"POST {ANALYZER} HTTP/1.1" 401' in log  # requests are logged, one line each


# ------------------------------------------------------------------------------------ a database that stops


@pytest.fixture(scope="module")
def stoppable() -> Iterator[tuple[EmbeddedPostgres, str]]:
    """Its own embedded Postgres (migrated, no data), so stopping it leaves the shared server alone."""
    root = Path(tempfile.mkdtemp(prefix="autopilot-test-stoppable-"))
    pg = EmbeddedPostgres(root, fast=True)
    pg.start()
    url = _create_database(pg.url(), "autopilot")
    migrate.migrate(url)
    yield pg, url
    pg.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_503_while_the_database_is_down_and_200_when_back(
    stoppable: tuple[EmbeddedPostgres, str], tmp_path: Path
) -> None:
    pg, url = stoppable
    served = serve(url, tmp_path / "serve.log", "--cache-seconds", "0")
    try:
        with httpx.Client(base_url=served.url, headers=signed(), timeout=60) as c:
            assert c.get(EXPORTER).status_code == 200
            ready = c.get("/readyz")  # reachable but nothing materialized
            assert ready.status_code == 503 and "not materialized" in ready.json()["error"]
            assert c.post(ANALYZER, content=b'{"task": "predict_failures"}').status_code == 503
            pg.stop()
            for response in (
                c.get(EXPORTER),
                c.get("/metrics"),
                c.post(ANALYZER, content=b'{"task": "detect_anomalies"}'),
                c.get("/readyz"),
            ):
                assert response.status_code == 503
                assert response.json() == {"error": "database unreachable"}
                assert int(response.headers["retry-after"]) > 0
            assert c.get("/healthz").status_code == 200  # the process itself is fine
            pg.start()
            assert c.get(EXPORTER).status_code == 200
            assert "autopilot_migrations_total 0.0" in c.get("/metrics").text
    finally:
        assert served.stop() == 0
    log = served.output()
    assert "Traceback" not in log and SECRET not in log and "password" not in log


# ------------------------------------------------------------------------------------- process behaviour


def test_sigterm_stops_cleanly(stoppable: tuple[EmbeddedPostgres, str], tmp_path: Path) -> None:
    served = serve(stoppable[1], tmp_path / "serve.log")
    served.process.send_signal(signal.SIGTERM)
    assert served.process.wait(30) == 0
    log = served.output()
    assert "Finished server process" in log and "Traceback" not in log


def test_loopback_rule() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        auth.check_bind(host, None)
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com", ""):
        with pytest.raises(ValueError, match="refusing to listen"):
            auth.check_bind(host, None)
        auth.check_bind(host, SECRET)


def test_serve_refuses_a_public_address_without_a_secret() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "autopilot_pipeline.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(_free_port()),
        ],
        cwd=ROOT,
        env=_env("postgresql://nobody@127.0.0.1:1/none", secret=None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr.startswith("autopilot: error: refusing to listen on") and "Traceback" not in done.stderr
    )


# ------------------------------------------------------------------------------------------------ examples


def test_github_actions_example_calls_every_task_every_6_hours() -> None:
    import yaml

    text = (ROOT / "examples/github-actions/autopilot-ai-ops.yml").read_text()
    workflow = yaml.safe_load(text)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as a boolean
    assert triggers["schedule"] == [{"cron": "0 */6 * * *"}] and "workflow_dispatch" in triggers
    steps = workflow["jobs"]["ai-analysis"]["steps"]
    called = {task for task in tasks.TASKS for step in steps if f'"task":"{task}"' in step.get("run", "")}
    assert called == set(tasks.TASKS)
    assert "${{ secrets.AUTOPILOT_SECRET }}" in text and "${{ secrets.AI_OPS_URL }}" in text
    assert all(
        "x-autopilot-sign: $AUTOPILOT_SECRET" in s["run"] for s in steps if '"task"' in s.get("run", "")
    )


def test_prometheus_scrape_example_is_valid(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    secret_file = tmp_path / "autopilot_secret"
    secret_file.write_text(SECRET)
    text = (ROOT / "examples/prometheus/scrape-autopilot-exporter.yml").read_text()
    assert "/etc/prometheus/autopilot_secret" in text and "../../prometheus/alerts.yml" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(
        text.replace("/etc/prometheus/autopilot_secret", str(secret_file)).replace(
            "../../prometheus/alerts.yml", str(ROOT / "prometheus/alerts.yml")
        )
    )
    checked = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dev_starts_the_api_beside_the_ui(stoppable: tuple[EmbeddedPostgres, str]) -> None:
    """``autopilot dev``'s helper: the same ``autopilot serve`` process, stopped with the UI."""
    import argparse

    from autopilot_pipeline.commands import dev

    port = _free_port()
    args = argparse.Namespace(host="127.0.0.1", api_port=port)
    api = dev._start_api(args, _env(stoppable[1], SECRET))
    answer = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert api.poll() is None
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/metrics", headers=signed(), timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        assert "autopilot_migrations_total" in answer.text
    finally:
        dev._stop_api(api)
    assert api.returncode == 0
