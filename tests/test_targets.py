"""Monitored targets: the CLI (add, list, remove, purge), their Dagster partitions, and URL resolution."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from autopilot_pipeline import cli
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.postgres import targets

from .conftest import _create_database, _drop_database


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_env(pg_url: str, tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    return pg_url


@pytest.fixture
def second_db(pg_server: str) -> str:
    """A second database on the test server, migrated: a monitored application of its own."""
    url = _create_database(pg_server, "autopilot_test_target_b", template="autopilot_test_template")
    yield url
    _drop_database(pg_server, "autopilot_test_target_b")


def partitions() -> list[str]:
    with dg.DagsterInstance.get() as instance:
        return sorted(instance.get_dynamic_partitions("targets"))


def test_add_list_remove_a_target(cli_env, second_db, capsys, monkeypatch, conn):
    monkeypatch.setenv("SHOP_B_URL", second_db)
    code, out, err = run_cli(capsys, "targets", "add", "shop_b", "--url-env", "SHOP_B_URL")
    assert code == 0, err
    assert "added target shop_b (env:SHOP_B_URL)" in out
    # only where the URL lives is stored, never the URL
    row = conn.execute("SELECT url_env, url_file FROM automation.targets WHERE name = 'shop_b'").fetchone()
    assert row == ("SHOP_B_URL", None)
    stored = conn.execute("SELECT string_agg(t::text, ' ') FROM automation.targets t").fetchone()[0]
    assert second_db.split("@")[-1] not in stored
    assert partitions() == ["default", "shop_b"]

    code, out, _ = run_cli(capsys, "targets", "list")
    assert code == 0
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") >= 4}
    assert "env:SHOP_B_URL" in lines["shop_b"] and "yes" in lines["shop_b"]
    assert "the configured database" in lines["default"]

    monkeypatch.setenv("SHOP_B_URL", "postgresql://nobody:pw@127.0.0.1:1/none")
    code, out, _ = run_cli(capsys, "targets", "list")
    shop_b = next(line for line in out.splitlines() if "shop_b" in line)
    assert "no:" in shop_b and "pw@" not in out

    code, out, _ = run_cli(capsys, "targets", "remove", "shop_b")
    assert code == 0 and "history stays" in out
    assert partitions() == ["default"]
    assert conn.execute("SELECT count(*) FROM automation.targets").fetchone()[0] == 1


def test_remove_keeps_history_unless_purged(cli_env, capsys, conn, tmp_path):
    url_file = tmp_path / "shop_c.url"
    url_file.write_text("postgresql://u:p@127.0.0.1:1/x\n")
    for name in ("shop_c", "shop_d"):
        assert run_cli(capsys, "targets", "add", name, "--url-file", str(url_file))[0] == 0
    for name in ("default", "shop_c", "shop_d"):
        conn.execute(
            "INSERT INTO analytics.uptime_hourly (target, bucket_start, component, checks, up_checks, "
            "uptime_pct) VALUES (%s, '2026-03-02 10:00+00', 'api', 1, 1, 100)",
            (name,),
        )
    assert run_cli(capsys, "targets", "remove", "shop_c")[0] == 0
    code, out, _ = run_cli(capsys, "targets", "remove", "shop_d", "--purge")
    assert code == 0 and "1 row(s)" in out
    kept = conn.execute("SELECT target FROM analytics.uptime_hourly ORDER BY 1").fetchall()
    assert kept == [("default",), ("shop_c",)]
    assert partitions() == ["default"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("add", "Bad-Name", "--url-env", "X"), "target name 'Bad-Name' is not valid"),
        (("add", "default", "--url-env", "X"), "target 'default' already exists"),
        (("add", "x", "--url-env", "1BAD"), "not an environment variable name"),
        (("add", "x", "--url-file", "/nonexistent/url"), "no such file"),
        (("remove", "nope"), "unknown target 'nope'"),
        (("remove", "default"), "cannot be removed"),
    ],
)
def test_user_errors_are_one_line(cli_env, capsys, args, message):
    code, _, err = run_cli(capsys, "targets", *args)
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_duplicate_is_refused(cli_env, capsys, monkeypatch):
    monkeypatch.setenv("SHOP_E_URL", "postgresql://u:p@127.0.0.1:1/x")
    assert run_cli(capsys, "targets", "add", "shop_e", "--url-env", "SHOP_E_URL")[0] == 0
    code, _, err = run_cli(capsys, "targets", "add", "shop_e", "--url-env", "OTHER")
    assert code == 2 and "already exists" in err


def test_urls_resolve_at_run_time(conn, tmp_path):
    targets.add_target(conn, "by_env", url_env="BY_ENV_URL")
    with pytest.raises(AutopilotError, match="environment variable BY_ENV_URL is not set"):
        targets.resolve_url(targets.get_target(conn, "by_env"), {})
    assert targets.resolve_url(targets.get_target(conn, "by_env"), {"BY_ENV_URL": "postgresql://a/b"}) == (
        "postgresql://a/b"
    )
    path = tmp_path / "secret"
    targets.add_target(conn, "by_file", url_file=str(path))
    with pytest.raises(AutopilotError, match="cannot read URL file"):
        targets.resolve_url(targets.get_target(conn, "by_file"))
    path.write_text("postgresql://c/d\n")
    assert targets.resolve_url(targets.get_target(conn, "by_file")) == "postgresql://c/d"


def test_the_database_refuses_a_target_without_a_url_source(conn):
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO automation.targets (name) VALUES ('nowhere')")


def test_alert_rules_naming_a_target(conn, caplog):
    from datetime import UTC, datetime

    from autopilot_pipeline.alerting.engine import evaluate_alert_rules

    targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
    conn.execute(
        "INSERT INTO automation.alert_rules (name, metric_name, condition, threshold, target) VALUES "
        "('On default', 'uptime_percentage', '<', 99, 'default'), ('On all', 'uptime_percentage', '<', 99, NULL), "
        "('On shop_b', 'uptime_percentage', '<', 99, 'shop_b'), ('On typo', 'uptime_percentage', '<', 99, 'shop_x')"
    )
    with caplog.at_level("WARNING"):
        result = evaluate_alert_rules(conn, datetime(2026, 3, 2, 12, tzinfo=UTC))
    reasons = dict(zip(result.skipped["rule"], result.skipped["reason"], strict=True))
    # shop_b is evaluated from its own database: its URL variable is unset here, so its rules wait for it
    assert reasons["On shop_b"] == "target 'shop_b': environment variable SHOP_B_URL is not set"
    assert reasons["On typo"] == "unknown target 'shop_x' (see `autopilot targets list`)"
    assert "alert rule" in caplog.text and "unknown target 'shop_x'" in caplog.text
    evaluated = conn.execute("SELECT rules_evaluated FROM automation.alert_evaluations").fetchone()
    rules = conn.execute("SELECT count(*) FROM automation.alert_rules WHERE enabled").fetchone()[0]
    assert evaluated == (rules - 2,)  # the default and every-target rules (and the built-in ones) ran


def test_the_targets_sensor_keeps_the_partitions_in_step_with_the_table(pg_url, conn):
    from autopilot_pipeline.defs.resources import PostgresResource
    from autopilot_pipeline.defs.targets.sensors import targets_sensor

    targets.add_target(conn, "shop_b", url_env="SHOP_B_URL")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("targets", ["gone"])

        def tick() -> dg.SensorResult:
            resources = {"postgres": PostgresResource(database_url=pg_url)}
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                return targets_sensor(context)

        result = tick()
        [add, delete] = result.dynamic_partitions_requests
        assert add.partition_keys == ["default", "shop_b"] and delete.partition_keys == ["gone"]
        instance.add_dynamic_partitions("targets", add.partition_keys)
        instance.delete_dynamic_partition("targets", "gone")
        assert tick().skip_reason.skip_message == "2 target(s), all registered"


def test_migration_0014_keeps_existing_rows_as_the_default_targets(pg_server, tmp_path):
    """Rows written before targets existed become the ``default`` target's, under the new keys."""
    import shutil
    import uuid

    from autopilot_pipeline.postgres import migrate

    name = f"targets_upgrade_{uuid.uuid4().hex[:8]}"
    url = _create_database(pg_server, name)
    try:
        before = tmp_path / "sql"
        before.mkdir()
        for m in migrate.available():
            if m.version < "0014":
                shutil.copy(m.path, before)
        migrate.migrate(url, before)
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(
                "INSERT INTO analytics.uptime_hourly (bucket_start, component, checks, up_checks, uptime_pct) "
                "VALUES ('2026-03-02 10:00+00', 'api', 4, 3, 75)"
            )
            c.execute(
                "INSERT INTO analytics.quarantine (source_table, source_id, partition_start, reason, payload) "
                "VALUES ('automation.health_log', 7, '2026-03-02 10:00+00', 'duplicate', '{}')"
            )
        assert migrate.migrate(url)[0] == "0014_targets"
        with psycopg.connect(url, autocommit=True) as c:
            assert c.execute("SELECT target, checks FROM analytics.uptime_hourly").fetchall() == [
                ("default", 4)
            ]
            assert c.execute("SELECT name FROM automation.targets").fetchall() == [("default",)]
            # the same hour and component may now exist once per target, and a source id once per target
            c.execute(
                "INSERT INTO analytics.uptime_hourly (target, bucket_start, component, checks, up_checks, "
                "uptime_pct) VALUES ('shop_b', '2026-03-02 10:00+00', 'api', 1, 1, 100)"
            )
            c.execute(
                "INSERT INTO analytics.quarantine (target, source_table, source_id, partition_start, reason, "
                "payload) VALUES ('shop_b', 'automation.health_log', 7, '2026-03-02 10:00+00', 'duplicate', '{}')"
            )
            with pytest.raises(psycopg.errors.UniqueViolation):
                c.execute(
                    "INSERT INTO analytics.uptime_hourly (bucket_start, component, checks, up_checks, "
                    "uptime_pct) VALUES ('2026-03-02 10:00+00', 'api', 1, 1, 100)"
                )
    finally:
        _drop_database(pg_server, name)
