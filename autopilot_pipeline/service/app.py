"""The routes: the seed's two edge functions under their own paths, a plain ``/metrics`` and the probes.

``GET /functions/v1/metrics-exporter`` and ``GET /metrics``: the ``autopilot_*`` exposition
(:mod:`.exposition`). ``POST /functions/v1/ai-ops-analyzer`` with ``{"task": ..., "fresh": false}``: the
task's answer as the AI-ops assets stored it (``asOf`` is that analysis time), or computed now with
``"fresh": true``. ``GET /healthz``: the process answers. ``GET /readyz``: the database answers and the
tables are materialized. Every route but ``/healthz`` takes ``?target=NAME``, the monitored target whose rows
it describes (default ``default``, the configured database); an unknown target is a 404. A scrape of another
target labels its series ``target="NAME"`` (Prometheus's multi-target pattern: ``params: {target: [NAME]}``).

Every failure is a one-line JSON ``{"error": ...}``: 400 bad input, 401 (no detail), 404 unknown target, 405,
413 over 64 KiB,
503 with ``Retry-After`` while the database is down, nothing is materialized yet or another fresh
computation runs (one at a time), 500 for a bug (logged as one line with the exception's type, never a
traceback or a secret).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autopilot_pipeline import tasks
from autopilot_pipeline.aiops.insights import json_safe
from autopilot_pipeline.aiops.pipeline import resolve_as_of
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.integrations.openai_chat import LLMSettings
from autopilot_pipeline.metrics.exposition import MetricsSnapshot
from autopilot_pipeline.metrics.store import read_metrics_snapshot, read_target_snapshot
from autopilot_pipeline.postgres import migrate, targets
from autopilot_pipeline.service import auth
from autopilot_pipeline.service.exposition import Exposition
from autopilot_pipeline.service.pool import ConnectionPool, DatabaseUnavailable

__all__ = ["MAX_BODY_BYTES", "ServiceConfig", "create_app"]

MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_S = 30
log = logging.getLogger("autopilot.service")


@dataclass(frozen=True)
class ServiceConfig:
    database_url: str
    secret: str | None = None
    cache_seconds: float = 2.0  # how long an exposition or a stored answer is reused
    pool_size: int = 4
    llm: LLMSettings = field(default_factory=LLMSettings)  # the narrative of a fresh generate_insights


class BadRequest(Exception):
    """400 with this one-line reason."""


class TooLarge(Exception):
    """413."""


class UnknownTarget(Exception):
    """404 with this one-line reason."""


class NotReady(Exception):
    """503 with this one-line reason (nothing materialized, schema behind)."""


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _unavailable(message: str) -> JSONResponse:
    return _error(503, message, {"Retry-After": str(RETRY_AFTER_S)})


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def parse_request(body: bytes) -> tuple[str, bool]:
    """(task, fresh) from the analyzer's JSON body (any or no Content-Type), or :class:`BadRequest`."""
    if not body.strip():
        raise BadRequest('empty body: send {"task": "detect_anomalies"} (or another task)')
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise BadRequest(f"body is not valid JSON: {reason}") from None
    if not isinstance(payload, dict):
        raise BadRequest('body must be a JSON object such as {"task": "detect_anomalies"}')
    task = payload.get("task")
    if task not in tasks.TASKS:
        shown = json.dumps(task)[:60] if task is not None else "missing"
        raise BadRequest(f"unknown task {shown}: expected one of {', '.join(tasks.TASKS)}")
    fresh = payload.get("fresh", False)
    if not isinstance(fresh, bool):
        raise BadRequest('"fresh" must be true or false')
    return task, fresh


def request_target(request: Request) -> str:
    """The ``target`` query parameter (default ``default``), a well-formed name or :class:`BadRequest`."""
    values = request.query_params.getlist("target")
    if len(values) > 1:
        raise BadRequest("give one target")
    try:
        return targets.validate_name(values[0] if values else targets.DEFAULT)
    except AutopilotError as exc:
        raise BadRequest(str(exc)) from None


def _require_target(conn: psycopg.Connection, name: str) -> targets.Target | None:
    """The monitored target ``name`` (None for ``default``, the configured database), or :class:`UnknownTarget`."""
    if name == targets.DEFAULT:
        return None
    try:
        return targets.get_target(conn, name)
    except AutopilotError as exc:
        raise UnknownTarget(str(exc)) from None


class _Answers:
    """Stored answers, reused while the task's latest analysis time is unchanged and for at most
    ``ttl_s`` (a re-run of the same hour replaces rows under the same time)."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[Any, float, bytes]] = {}

    def get(self, task: tuple[str, str], as_of: Any) -> bytes | None:
        with self._lock:
            hit = self._cache.get(task)
        if hit and hit[0] == as_of and time.monotonic() - hit[1] < self._ttl_s:
            return hit[2]
        return None

    def put(self, task: tuple[str, str], as_of: Any, body: bytes) -> None:
        with self._lock:
            self._cache[task] = (as_of, time.monotonic(), body)


def _answer_body(answer: tasks.TaskResult, fresh: bool, target: str) -> bytes:
    payload = {
        "task": answer.task,
        "asOf": answer.as_of.isoformat() if answer.as_of else None,
        "fresh": fresh,
        "result": answer.result,
    }
    if target != targets.DEFAULT:
        payload["target"] = target  # the seed's shape unchanged for the default target
    return json.dumps(json_safe(payload), allow_nan=False).encode()


def create_app(config: ServiceConfig, pool: ConnectionPool | None = None) -> Starlette:
    pool = pool or ConnectionPool(config.database_url, size=config.pool_size)

    def read_snapshot(target: str) -> MetricsSnapshot:
        """The push's snapshot of ``target``; another target's release gauges come from its own database
        and are left out (with a logged line) while it is unreachable, as in the push."""

        def work(conn: psycopg.Connection) -> MetricsSnapshot:
            now = datetime.now(UTC)
            found = _require_target(conn, target)
            if found is None:
                return read_metrics_snapshot(conn, now)
            snapshot, reason = read_target_snapshot(conn, now, found)
            if reason:
                log.warning("%s: its release gauges are left out of the exposition", reason)
            return snapshot

        return pool.run(work)

    exposition = Exposition(read_snapshot, ttl_s=config.cache_seconds)
    answers = _Answers(config.cache_seconds)
    fresh_slot = threading.Lock()

    def guarded(
        endpoint: Callable[[Request], Awaitable[Response]], protected: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            if protected and not auth.authorized(request.headers, config.secret):
                return _error(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
            try:
                return await endpoint(request)
            except BadRequest as exc:
                return _error(400, str(exc))
            except TooLarge:
                return _error(413, f"body over {MAX_BODY_BYTES // 1024} KiB")
            except UnknownTarget as exc:
                return _error(404, str(exc))
            except DatabaseUnavailable:
                log.warning("%s %s: database unreachable", request.method, request.url.path)
                return _unavailable("database unreachable")
            except NotReady as exc:
                return _unavailable(str(exc))
            except psycopg.errors.UndefinedTable:
                return _unavailable("database schema is not migrated: run `autopilot db migrate`")
            except (
                Exception
            ) as exc:  # a bug: one line in the log, no traceback, nothing internal to the client
                log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
                return _error(500, "internal error")

        return handle

    async def metrics(request: Request) -> Response:
        target = request_target(request)
        body, content_type = await run_in_threadpool(exposition.render, request.headers.get("accept"), target)
        return Response(body, media_type=content_type)

    def _analyze(task: str, fresh: bool, target: str) -> bytes:
        def work(conn: psycopg.Connection) -> bytes:
            found = _require_target(conn, target)
            if fresh:
                return _fresh(conn, task, target, found)
            as_of = tasks.latest_times(conn, target=target)[task]
            if as_of is None:
                of = "" if target == targets.DEFAULT else f" for target {target}"
                raise NotReady(
                    f"{task} has no materialization{of} yet: run the aiops_job (autopilot demo does) "
                    'or send "fresh": true'
                )
            cached = answers.get((target, task), as_of)
            if cached is not None:
                return cached
            body = _answer_body(tasks.stored(conn, task, as_of, target), fresh=False, target=target)
            answers.put((target, task), as_of, body)
            return body

        if not fresh:
            return pool.run(work)
        # A fresh answer takes seconds of CPU: one at a time, so callers cannot starve the stored answers.
        if not fresh_slot.acquire(blocking=False):
            raise NotReady(
                'another fresh computation is running: retry, or omit "fresh" for the stored answer'
            )
        try:
            return pool.run(work)
        finally:
            fresh_slot.release()

    def _fresh(conn: psycopg.Connection, task: str, target: str, found: targets.Target | None) -> bytes:
        """Computed now; the insights read another target's (``found``) release logs in its own database."""
        as_of = resolve_as_of(conn, target=target)
        if found is None or task != "generate_insights":
            answer = tasks.compute(conn, task, as_of, llm=config.llm, target=target)
        else:
            try:
                with targets.connect_target(found) as source:
                    answer = tasks.compute(conn, task, as_of, llm=config.llm, target=target, source=source)
            except AutopilotError as exc:  # the target is down or its URL is missing: say so, in one line
                raise NotReady(str(exc)) from None
        return _answer_body(answer, fresh=True, target=target)

    async def analyzer(request: Request) -> Response:
        target = request_target(request)
        task, fresh = parse_request(await _read_body(request))
        body = await run_in_threadpool(_analyze, task, fresh, target)
        return Response(body, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _readiness(conn: psycopg.Connection, target: str) -> None:
        pending = migrate.pending(conn)
        if pending:
            raise NotReady(f"{len(pending)} migration(s) pending: run `autopilot db migrate`")
        _require_target(conn, target)
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM analytics.uptime_hourly WHERE target = %s)", (target,)
        ).fetchone()
        if not row or not row[0]:
            raise NotReady("health tables not materialized yet")
        missing = [task for task, at in tasks.latest_times(conn, target=target).items() if at is None]
        if missing:
            raise NotReady(f"AI-ops tables not materialized yet ({', '.join(missing)})")

    async def readyz(request: Request) -> Response:
        target = request_target(request)
        await run_in_threadpool(pool.run, lambda conn: _readiness(conn, target))
        return JSONResponse({"status": "ready"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail, exc.headers)

    routes = [
        Route("/functions/v1/metrics-exporter", guarded(metrics), methods=["GET"]),
        Route("/metrics", guarded(metrics), methods=["GET"]),
        Route("/functions/v1/ai-ops-analyzer", guarded(analyzer), methods=["POST"]),
        Route("/healthz", guarded(healthz, protected=False), methods=["GET"]),
        Route("/readyz", guarded(readyz, protected=False), methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        pool.close()

    return Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
