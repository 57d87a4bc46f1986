"""The CLI end to end: errors are one line without a traceback; `autopilot demo` runs the whole pipeline."""

import psycopg
import pytest

from autopilot_pipeline import cli


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://user:pw@localhost/db", "must be a postgresql:// URL"),
        ("postgresql://user:s3cret@127.0.0.1:1/db", "cannot connect to Postgres"),
        ("not a url", "not valid"),
    ],
)
def test_database_errors_are_one_line_and_hide_passwords(capsys, monkeypatch, url, message):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", url)
    code, _, err = run_cli(capsys, "db", "migrate")
    assert code == 2
    assert message in err
    assert "s3cret" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_arguments_are_rejected_in_one_line(capsys):
    code, _, err = run_cli(capsys, "demo", "--days", "0")
    assert code == 2 and "at least 1" in err and "Traceback" not in err


def test_db_migrate_twice_on_a_configured_database(capsys, monkeypatch, pg_url):
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    code, out, _ = run_cli(capsys, "db", "migrate")
    assert code == 0 and "up to date" in out  # the test database is migrated already
    code, out, _ = run_cli(capsys, "db", "status")
    assert code == 0 and "pending" not in out


def test_demo_end_to_end_on_a_fresh_embedded_postgres(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("AUTOPILOT_DATABASE_URL", raising=False)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    code, out, err = run_cli(capsys, "demo", "--days", "3", "--components", "3", "--seed", "7")
    assert code == 0, err
    assert "Health by component" in out and "Overall health score" in out
    assert "✗" not in out
    # the embedded server the demo started is stopped again; its data stays for `autopilot dev`
    from autopilot_pipeline.postgres.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(tmp_path / "state" / "postgres")  # its URL carries the password
    with pytest.raises(psycopg.OperationalError, match="Connection refused"):
        psycopg.connect(embedded.url("autopilot"), connect_timeout=2)
    assert (tmp_path / "state" / "dagster_home" / "dagster.yaml").exists()


def test_demo_on_a_configured_database_with_data_analyses_it(capsys, monkeypatch, tmp_path, pg_url, conn):
    from .test_health_assets import load_fixture

    load_fixture(conn)
    monkeypatch.setenv("AUTOPILOT_DATABASE_URL", pg_url)
    monkeypatch.setenv("AUTOPILOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dh"))
    code, out, err = run_cli(capsys, "demo")
    assert code == 0, err
    assert "analysing them instead" in out
    assert conn.execute("SELECT count(*) FROM analytics.uptime_hourly").fetchone()[0] == 3
