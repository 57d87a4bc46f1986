"""``autopilot demo``, ``analyze`` and ``serve`` for a monitored target, for real: the pipeline's database
(target ``default``, left without data) and an application database ``shop_b`` on one test server; the demo
puts its data into shop_b and materializes shop_b's partitions, the other doors then read shop_b's rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from autopilot_pipeline import cli
from autopilot_pipeline.postgres import targets

from .conftest import TEMPLATE, _create_database, _drop_database
from .demo_database import OPTIONAL_SERVICES
from .test_service import ANALYZER, INSIGHT_KEYS, SEED_KEYS, Served, serve, signed


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def shop_b(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(pipeline URL, shop_b URL) after ``autopilot demo --target shop_b``."""
    names = [f"doors_{uuid.uuid4().hex[:10]}", f"doors_shop_b_{uuid.uuid4().hex[:8]}"]
    pipeline, shop = (_create_database(pg_server, name, template=TEMPLATE) for name in names)
    state = tmp_path_factory.mktemp("doors")
    try:
        with pytest.MonkeyPatch.context() as env:
            for var in OPTIONAL_SERVICES:
                env.delenv(var, raising=False)
            # every variable the demo sets for Dagster, so that they are restored after the module
            env.setenv("AUTOPILOT_DATABASE_URL", pipeline)
            env.setenv("AUTOPILOT_STATE_DIR", str(state / "state"))
            env.setenv("DAGSTER_HOME", str(state / "dagster_home"))
            env.setenv("DAGSTER_PG_URL", pipeline)
            env.setenv("SHOP_B_URL", shop)
            with psycopg.connect(pipeline, autocommit=True) as conn:
                targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
            code = cli.main(["demo", "--target", "shop_b", "--days", "2", "--components", "2", "--seed", "5"])
            assert code == 0
            # The demo's migrations run 1-3 a day in business hours, so the 24 hours before the analysis
            # time may hold none of them, depending on the time of day the test runs: one migration three
            # hours ago makes the insights' count of shop_b's release logs certain to be positive.
            with psycopg.connect(shop, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO automation.migration_log (version, name, started_at, finished_at, status) "
                    "VALUES ('20991231000000', 'test_marker', now() - interval '3 hours', "
                    "now() - interval '3 hours' + interval '2 seconds', 'success')"
                )
            yield pipeline, shop
    finally:
        for name in names:
            _drop_database(pg_server, name)


def counts(url: str, table: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(f"SELECT target, count(*) FROM {table} GROUP BY target").fetchall())  # noqa: S608


def test_demo_for_a_target_fills_its_database_and_materializes_only_its_partitions(shop_b):
    pipeline, shop = shop_b
    with psycopg.connect(shop) as conn:
        assert conn.execute("SELECT count(*) FROM automation.health_log").fetchone()[0] > 0
    with psycopg.connect(pipeline) as conn:  # the demo data went to shop_b, not to the pipeline's database
        assert conn.execute("SELECT count(*) FROM automation.health_log").fetchone()[0] == 0
    for table in (
        "analytics.uptime_hourly",
        "analytics.release_stats_daily",
        "automation.table_statistics",
        "analytics.anomalies",
        "analytics.insights",
    ):
        assert set(counts(pipeline, table)) == {"shop_b"}, table
    with psycopg.connect(pipeline) as conn:  # profiling ran on shop_b's partition
        instance_tables = conn.execute(
            "SELECT DISTINCT schema_name FROM automation.table_statistics WHERE target = 'shop_b'"
        ).fetchall()
    assert ("automation",) in instance_tables


def test_demo_summary_and_errors(shop_b, capsys, monkeypatch, tmp_path):
    pipeline, _ = shop_b
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pipeline)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    monkeypatch.setenv("DAGSTER_PG_URL", pipeline)
    for var in OPTIONAL_SERVICES:
        monkeypatch.delenv(var, raising=False)
    code, out, err = run_cli(capsys, "demo", "--target", "shop_b")  # shop_b has data now: analysed again
    assert code == 0, err
    assert "target shop_b already has health_log rows" in out
    assert "Health by component of target shop_b" in out and "Overall health score" in out
    assert "✗" not in out
    for bad, message in (("nope", "unknown target 'nope'"), ("Bad-Name", "is not valid")):
        code, _, err = run_cli(capsys, "demo", "--target", bad)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_analyze_reads_the_targets_rows(shop_b, capsys, monkeypatch):
    pipeline, _ = shop_b
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pipeline)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, err = run_cli(capsys, "analyze", "analyze_trends", "--json", "--target", "shop_b")
    assert code == 0, err
    shop = json.loads(out)
    assert shop["target"] == "shop_b" and shop["result"]
    assert all(SEED_KEYS["analyze_trends"] <= set(t) for t in shop["result"])
    code, out, err = run_cli(capsys, "analyze", "analyze_trends", "--json")  # default: no data of its own
    assert code == 0, err
    default = json.loads(out)
    assert "target" not in default and default["result"] == []
    code, out, err = run_cli(capsys, "analyze", "generate_insights", "--json", "--target", "shop_b")
    assert code == 0, err
    insights = json.loads(out)["result"]
    assert set(insights) >= INSIGHT_KEYS and insights["migrations"]["total"] > 0  # shop_b's release logs
    code, _, err = run_cli(capsys, "analyze", "detect_anomalies", "--target", "nope")
    assert code == 2 and err.strip() == (
        "autopilot: error: unknown target 'nope' (see `autopilot targets list`)"
    )


@pytest.fixture(scope="module")
def client(shop_b, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    served: Served = serve(shop_b[0], Path(tmp_path_factory.mktemp("serve")) / "serve.log")
    try:
        with httpx.Client(base_url=served.url, timeout=120) as c:
            yield c
    finally:
        assert served.stop() == 0


def post(client: httpx.Client, task: str, query: str = "") -> httpx.Response:
    return client.post(f"{ANALYZER}{query}", headers=signed(), content=json.dumps({"task": task}))


def test_serve_answers_per_target(shop_b, client):
    shop = post(client, "detect_anomalies", "?target=shop_b")
    assert shop.status_code == 200, shop.text
    body = shop.json()
    assert body["target"] == "shop_b" and body["asOf"] and isinstance(body["result"], list)
    insights = post(client, "generate_insights", "?target=shop_b").json()
    assert set(insights["result"]) >= INSIGHT_KEYS
    # the seed's curl line (no parameter) is the default target, which has no analyses here
    default = post(client, "detect_anomalies")
    assert default.status_code == 503 and "no materialization yet" in default.json()["error"]
    explicit = post(client, "detect_anomalies", "?target=default")
    assert explicit.status_code == 503 and explicit.json() == default.json()
    fresh = client.post(
        f"{ANALYZER}?target=shop_b",
        headers=signed(),
        content=json.dumps({"task": "generate_insights", "fresh": True}),
    )
    assert fresh.status_code == 200 and fresh.json()["result"]["migrations"]["total"] > 0
    assert client.get("/readyz?target=shop_b").status_code == 200
    assert client.get("/readyz").status_code == 503  # default has no health tables


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("?target=nope", 404, "unknown target 'nope'"),
        ("?target=Bad-Name", 400, "is not valid"),
        ("?target=shop_b&target=default", 400, "give one target"),
    ],
)
def test_serve_refuses_unknown_or_bad_targets_in_one_line(client, query, status, message):
    response = post(client, "predict_failures", query)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error and "\n" not in error
    assert client.get(f"/readyz{query}").status_code == status
    scrape = client.get(f"/metrics{query}", headers=signed())
    assert scrape.status_code == status and message in scrape.json()["error"]


def test_scrape_per_target_labels_its_series(client):
    """Prometheus's multi-target pattern: ``?target=shop_b`` exposes shop_b's rows, every series labelled
    with it (as in the push); the seed's exporter line without a parameter stays the default target's."""
    shop = client.get("/functions/v1/metrics-exporter?target=shop_b", headers=signed())
    assert shop.status_code == 200, shop.text
    samples = [line for line in shop.text.splitlines() if line and not line.startswith("#")]
    assert samples and all('target="shop_b"' in line for line in samples)
    checks = [line for line in samples if line.startswith("autopilot_health_checks_total{")]
    assert checks and all(float(line.rsplit(" ", 1)[1]) > 0 for line in checks)
    default = client.get("/functions/v1/metrics-exporter", headers=signed()).text
    assert "target=" not in default and "autopilot_health_checks_total{" not in default
