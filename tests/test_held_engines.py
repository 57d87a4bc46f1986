"""Held application-database engines (``resources.hold_engines``), for processes that serve many steps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import dagster as dg
import pytest

from autopilot_pipeline.defs import resources
from autopilot_pipeline.defs.resources import PostgresResource


def _backend_pid(resource: PostgresResource) -> int:
    with resource.connect() as conn:
        return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def _step(url: str) -> int:
    """What one step does with the resource: set up, use, tear down; the server process it talked to."""
    resource = PostgresResource(database_url=url)
    context = dg.build_init_resource_context()
    resource.setup_for_execution(context)
    try:
        return _backend_pid(resource)
    finally:
        resource.teardown_after_execution(context)


def test_by_default_each_run_has_its_own_engine(pg_url: str) -> None:
    assert resources._held_engines is None
    assert _step(pg_url) != _step(pg_url)  # a new connection each time, the old one closed


def test_held_engines_serve_every_step_on_one_connection(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resources, "_held_engines", {})
    try:
        pids = {_step(pg_url) for _ in range(5)}
        assert len(pids) == 1
        assert list(resources._held_engines) == [pg_url]
    finally:
        for engine in resources._held_engines.values():
            engine.dispose()


def test_a_forked_child_opens_its_own_and_leaves_its_parents_alone(pg_url: str) -> None:
    """In a process of its own (``hold_engines`` lasts as long as the process): the child of a process
    holding an engine does not share its connections, nor closes them when it exits."""
    script = textwrap.dedent(
        """
        import os, sys
        import dagster as dg
        from autopilot_pipeline.defs import resources
        from autopilot_pipeline.defs.resources import PostgresResource
        url = sys.argv[1]
        resources.hold_engines()
        def step():
            r = PostgresResource(database_url=url)
            r.setup_for_execution(dg.build_init_resource_context())
            with r.connect() as conn:
                return conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        parent = step()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:
            os.write(write, str((len(resources._held_engines), step())).encode())
            sys.exit(0)  # a normal exit: finalizers run, as in a pool process that ends
        os.waitpid(child, 0)
        held_in_child, child_pid = eval(os.read(read, 100).decode())
        assert held_in_child == 0, held_in_child
        assert child_pid != parent, "the child used its parent's connection"
        assert step() == parent, "the child's exit closed its parent's connection"
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, pg_url], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
