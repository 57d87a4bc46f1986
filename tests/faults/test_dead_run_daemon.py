"""Issue 10 point 1, end to end: dead and hung runs under a running daemon do not block the alerts.

A real ``dagster-daemon`` with our ``dagster.yaml`` (Postgres storage, the queued coordinator and its lanes,
run monitoring, the run-failure sensor) runs the real minute schedule of the alert evaluation, plus one
evaluation launched by hand (``dagster job launch``, queued like the schedule's) so the first victim need not
wait for a tick. The test holds the engine's advisory lock (``alerting/store.lock_engine``: a blocking
transaction-level lock, on the application database) with a session lock of its own, so every evaluation
waits inside its step, visibly in ``pg_stat_activity``. Then:

- its worker gets SIGKILL: the code server that started the worker sees it die and fails the run at once
  (Dagster's default run launcher has no health check, but it needs none for this);
- the next one hangs (worker alive, waiting): it holds the alerting lane's only slot until run monitoring
  fails it at the job's ``dagster/max_runtime`` (60 s, ``defs/run_policy.py``), and the scheduled evaluation
  queued behind it then runs and succeeds;
- worker and code server both killed: nobody reports the death, the run stays STARTED until its max
  runtime, the daemon brings a code server back, and the next tick's evaluation succeeds.

Each failed run gets exactly one notice on a local Slack receiver. Only the monitoring poll interval is
shortened in the test's copy of ``dagster.yaml`` (2 s instead of 20 s); the runtime limit is the shipped one.
Most of each test's 2–3 minutes is waiting for minute ticks and the 60 s limit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from dagster._core.events import DagsterEventType
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.dagster_run import DagsterRunStatus, RunsFilter

from autopilot_pipeline import settings
from autopilot_pipeline.defs.partitions import AS_OF_TAG
from autopilot_pipeline.defs.run_policy import ALERTING, MAX_RUNTIME_TAG
from autopilot_pipeline.postgres import urls
from autopilot_pipeline.postgres.server import ensure_database

from .conftest import ROOT, Receiver, cli_env
from .processes import descendants

pytestmark = pytest.mark.slow

ENGINE_LOCK = "SELECT pg_advisory_lock(hashtext('autopilot.alert_engine'))"  # alerting/store.lock_engine
MAX_RUNTIME_S = int(ALERTING[MAX_RUNTIME_TAG])
POLL_S = 2  # run monitoring's poll interval in the test's dagster.yaml
CAP_S = 150  # only a cap for a loaded machine, not an assertion on speed


def _instance_home(tmp_path: Path) -> Path:
    """The shipped dagster.yaml, with run monitoring polling every POLL_S seconds."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load((settings.PROJECT_ROOT / "dagster.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = POLL_S
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


@contextlib.contextmanager
def _daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` in its own session (default signal handling, FACTS trap 3); on exit SIGINT
    to it, then SIGKILL to its whole session's group for whatever is left (code server, run workers)."""
    daemon = Path(sys.executable).parent / "dagster-daemon"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(daemon), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _alert_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The alerting job's runs, oldest first."""
    return list(reversed(instance.get_runs(RunsFilter(job_name="alerting_job"))))


def _wait(what: str, check, diagnose, cap_s: float = CAP_S):
    deadline = time.monotonic() + cap_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {cap_s} s\n{diagnose()}")


def _worker_pid(instance: dg.DagsterInstance, run_id: str, daemon_pid: int) -> int | None:
    """The run's worker: the process the code server started for it (its pid is in the run's engine event
    "Started process for run"), checked to be one of the daemon's living descendants."""
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None and entry.message.startswith("Started process for run"):
            worker = int(pid.value)
            return worker if worker in descendants(daemon_pid) else None
    return None


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _engine_lock_waiters(conn: psycopg.Connection) -> set[int]:
    """Backends of the application database waiting for an advisory lock (the test holds the only one)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND wait_event = 'advisory' AND pid <> pg_backend_pid()"
    ).fetchall()
    return {row[0] for row in rows}


def _sensor_ticked(instance: dg.DagsterInstance, name: str, after: float | None = None) -> bool:
    """The daemon has finished an evaluation of sensor ``name`` (one that started after ``after``): from
    its first one on it sees every run that fails."""
    for state in instance.all_instigator_state():
        if state.name != name:
            continue
        ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
        if any(tick.status != TickStatus.STARTED for tick in ticks):
            return True
    return False


def _messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.message for entry in instance.all_logs(run_id)]


def _launch_by_hand(env: dict[str, str]) -> None:
    """One alert evaluation submitted to the queue as `dagster job launch` does (the daemon launches it)."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "job",
            "launch",
            "-w",
            str(ROOT / "workspace.yaml"),
            "-j",
            "alerting_job",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=CAP_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@dataclass
class World:
    """A running daemon on our instance, the engine lock held by the test, a local Slack receiver."""

    instance: dg.DagsterInstance
    daemon: subprocess.Popen
    holder: psycopg.Connection
    receiver: Receiver
    env: dict[str, str]
    log: Path
    pg_url: str

    def diagnose(self) -> str:
        lines = [f"daemon alive: {self.daemon.poll() is None}", self.log.read_text()[-3000:]]
        for run in _alert_runs(self.instance):
            lines.append(f"run {run.run_id} {run.status} {run.tags.get(AS_OF_TAG)}")
            lines += [f"  {m[:300]}" for m in _messages(self.instance, run.run_id) if m]
        return "\n".join(lines)

    def blocked(self, known: set[int], done: set[str]) -> tuple[dg.DagsterRun, set[int]] | None:
        """The one started evaluation waiting on our lock in its step, and its new waiting backends."""
        waiting = _engine_lock_waiters(self.holder) - known
        started = [
            r
            for r in _alert_runs(self.instance)
            if r.status == DagsterRunStatus.STARTED and r.run_id not in done
        ]
        return (started[0], waiting) if waiting and len(started) == 1 else None

    def finished(self, run_id: str) -> dg.DagsterRun | None:
        run = self.instance.get_run_by_id(run_id)
        return run if run is not None and run.is_finished else None

    def succeeded(self, *but: str) -> dg.DagsterRun | None:
        """An evaluation other than ``but`` that succeeded."""
        ok = [
            r
            for r in _alert_runs(self.instance)
            if r.run_id not in but and r.status == DagsterRunStatus.SUCCESS
        ]
        return ok[0] if ok else None

    def evaluated(self) -> list[datetime]:
        with psycopg.connect(self.pg_url) as conn:
            return [row[0] for row in conn.execute("SELECT evaluated_at FROM automation.alert_evaluations")]

    def assert_evaluated(self, run: dg.DagsterRun) -> None:
        """The run's evaluation is in the database (at its tick, for a scheduled run)."""
        evaluated = self.evaluated()
        tick = run.tags.get(AS_OF_TAG)
        assert evaluated and (tick is None or datetime.fromisoformat(tick) in evaluated), (tick, evaluated)

    def assert_one_evaluation_at_a_time(self) -> None:
        records = [self.instance.get_run_record_by_id(r.run_id) for r in _alert_runs(self.instance)]
        spans = sorted((r.start_time, r.end_time or time.time()) for r in records if r and r.start_time)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), spans

    def assert_one_notice_each(self, *victims: dg.DagsterRun) -> None:
        """Each failed run told in Slack exactly once, checked after the run-failure sensor has looked past
        their last events (a run ended by its max runtime has two: the monitor's, then its worker's)."""
        last_event = max(e.timestamp for v in victims for e in self.instance.all_logs(v.run_id))
        _wait(
            "a run-failure sensor tick after the victims' last events",
            lambda: _sensor_ticked(self.instance, "run_failure_notice", after=last_event),
            self.diagnose,
            90,
        )
        notices = [t for t in self.receiver.texts if "Dagster run failed" in t]
        for victim in victims:
            assert sum(victim.run_id[:8] in t for t in notices) == 1, notices


@pytest.fixture
def world(pg_server: str, pg_url: str, tmp_path: Path, monkeypatch) -> Iterator[World]:
    dagster_db = f"dagster_deadrun_{uuid.uuid4().hex[:8]}"
    ensure_database(pg_server, dagster_db)
    home = _instance_home(tmp_path)
    env_vars = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": urls.dagster_url(pg_server, dagster_db),
        settings.DATABASE_URL_ENV: pg_url,
        "AUTOPILOT_STATE_DIR": str(tmp_path / "state"),
        "PYTHONWARNINGS": "ignore",
    }
    for name, value in env_vars.items():
        monkeypatch.setenv(name, value)
    receiver = Receiver()
    holder = psycopg.connect(pg_url, autocommit=True)
    holder.execute(ENGINE_LOCK)  # every evaluation waits for it inside its step until released
    env = cli_env(**env_vars, SLACK_WEBHOOK_URL=receiver.url)
    log = tmp_path / "daemon.log"
    try:
        with dg.DagsterInstance.get() as instance, _daemon(env, log) as daemon:
            world = World(instance, daemon, holder, receiver, env, log, pg_url)
            _wait(
                "the run-failure sensor's first tick",
                lambda: _sensor_ticked(instance, "run_failure_notice"),
                world.diagnose,
            )
            yield world
    finally:
        holder.close()
        receiver.close()


def test_dead_and_hung_alert_runs_are_failed_and_the_next_evaluation_runs(world: World) -> None:
    _launch_by_hand(world.env)  # besides the minute schedule, so the first victim need not wait for a tick
    diagnose = world.diagnose

    # (1) a worker killed mid-step: the code server that started it reports the death at once
    killed, orphans = _wait(
        "an evaluation blocked in its step", lambda: world.blocked(set(), set()), diagnose
    )
    pid = _wait(
        "the run's worker process",
        lambda: _worker_pid(world.instance, killed.run_id, world.daemon.pid),
        diagnose,
        30,
    )
    os.kill(pid, signal.SIGKILL)
    killed = _wait("the killed run marked failed", lambda: world.finished(killed.run_id), diagnose)
    assert killed.status == DagsterRunStatus.FAILURE, diagnose()
    assert any("terminated by signal 9" in m for m in _messages(world.instance, killed.run_id)), diagnose()

    # (2) a run hung mid-step (its worker alive, waiting forever) holds the alerting lane's only slot
    # until run monitoring ends it at its max runtime; the lock is held all along
    hung, _ = _wait(
        "the next evaluation blocked in its step", lambda: world.blocked(orphans, {killed.run_id}), diagnose
    )
    hung = _wait("the hung run ended", lambda: world.finished(hung.run_id), diagnose, MAX_RUNTIME_S + 60)
    assert hung.status == DagsterRunStatus.FAILURE, diagnose()
    assert any(
        f"maximum runtime of {MAX_RUNTIME_S} seconds" in m for m in _messages(world.instance, hung.run_id)
    ), diagnose()
    record = world.instance.get_run_record_by_id(hung.run_id)
    assert record.end_time - record.start_time >= MAX_RUNTIME_S  # ended by the limit, not before
    world.holder.execute("SELECT pg_advisory_unlock_all()")

    # (3) a later scheduled evaluation runs and succeeds: nothing is left blocking the lane
    later = _wait(
        "a later evaluation succeeded", lambda: world.succeeded(killed.run_id, hung.run_id), diagnose
    )
    world.assert_one_evaluation_at_a_time()
    world.assert_evaluated(later)
    evaluated = world.evaluated()
    for victim in (killed, hung):  # a killed or cancelled evaluation left nothing half-written
        if AS_OF_TAG in victim.tags:
            assert datetime.fromisoformat(victim.tags[AS_OF_TAG]) not in evaluated

    # (4) the run-failure sensor told Slack about each once
    world.assert_one_notice_each(killed, hung)


def test_a_run_whose_worker_and_code_server_died_is_failed_at_its_max_runtime(world: World) -> None:
    """Nobody is left to report the death: the run stays STARTED, holding the lane, until its max runtime."""
    _launch_by_hand(world.env)
    diagnose = world.diagnose
    dead, _ = _wait("an evaluation blocked in its step", lambda: world.blocked(set(), set()), diagnose)
    pid = _wait(
        "the run's worker process",
        lambda: _worker_pid(world.instance, dead.run_id, world.daemon.pid),
        diagnose,
        30,
    )
    server = _parent(pid)
    assert server in descendants(world.daemon.pid), diagnose()  # the code server, not the daemon itself
    os.kill(server, signal.SIGKILL)
    os.kill(pid, signal.SIGKILL)
    world.holder.execute("SELECT pg_advisory_unlock_all()")  # only the dead run's orphaned backend waits

    dead = _wait("the dead run ended", lambda: world.finished(dead.run_id), diagnose, MAX_RUNTIME_S + 60)
    assert dead.status == DagsterRunStatus.FAILURE, diagnose()
    assert any(
        f"maximum runtime of {MAX_RUNTIME_S} seconds" in m for m in _messages(world.instance, dead.run_id)
    ), diagnose()
    record = world.instance.get_run_record_by_id(dead.run_id)
    assert record.end_time - record.start_time >= MAX_RUNTIME_S  # nothing ended it earlier

    later = _wait("a later evaluation succeeded", lambda: world.succeeded(dead.run_id), diagnose)
    world.assert_one_evaluation_at_a_time()
    world.assert_evaluated(later)
    world.assert_one_notice_each(dead)
