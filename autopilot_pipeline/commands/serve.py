"""``autopilot serve [--host 127.0.0.1] [--port 8000]``: the seed's HTTP endpoints on uvicorn.

Routes (see autopilot_pipeline/service/app.py and the README): ``GET /functions/v1/metrics-exporter`` and
``GET /metrics`` (Prometheus exposition), ``POST /functions/v1/ai-ops-analyzer`` (``{"task": ...}``),
``GET /healthz``, ``GET /readyz``. Requests must carry ``AUTOPILOT_SECRET`` as ``x-autopilot-sign`` or
``Authorization: Bearer`` when it is set; without it only a loopback address may be served. The database is
``AUTOPILOT_DATABASE_URL`` (it may be down at start: requests answer 503 until it is back), else the
embedded server. SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import os
from types import FrameType

from autopilot_pipeline import settings
from autopilot_pipeline.commands._ports import check_port_free
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.integrations.openai_chat import LLMSettings
from autopilot_pipeline.postgres import server, urls

DEFAULT_PORT = 8000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve the seed's metrics-exporter and ai-ops-analyzer endpoints over HTTP",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument(
        "--cache-seconds",
        type=float,
        default=2.0,
        help="reuse an exposition or a stored analyzer answer this long (default 2; 0 turns it off)",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.set_defaults(handler=run)


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, minus re-raising the stop signal after the graceful shutdown: SIGTERM is how this
        service is meant to stop, so it then exits 0 like any finished command."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            super().handle_exit(sig, frame)
            getattr(self, "_captured_signals", []).clear()

    return Server


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from autopilot_pipeline.service import auth
    from autopilot_pipeline.service.app import ServiceConfig, create_app

    if not 0 < args.port < 65536:
        raise AutopilotError(f"--port {args.port} is not a TCP port (1-65535)")
    if args.cache_seconds < 0:
        raise AutopilotError("--cache-seconds must be >= 0")
    secret = os.environ.get(auth.SECRET_ENV, "").strip() or None
    try:
        auth.check_bind(args.host, secret)
    except ValueError as exc:
        raise AutopilotError(str(exc)) from None
    check_port_free(args.host, args.port)

    configured = settings.configured_database_url()
    db = None
    if configured:
        url = urls.libpq_url(configured)  # not connected here: a database that is down answers 503 until back
    else:
        db = server.resolve()
        url = db.url
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    llm = LLMSettings.from_env(os.environ)  # read once, at start
    app = create_app(
        ServiceConfig(database_url=url, secret=secret, cache_seconds=args.cache_seconds, llm=llm)
    )
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"autopilot serve: http://{shown}:{args.port}/functions/v1/metrics-exporter and "
        f"/functions/v1/ai-ops-analyzer (database {urls.display(url)}; "
        f"{'secret required' if secret else 'no AUTOPILOT_SECRET: loopback only, no auth'})",
        flush=True,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        access_log=not args.no_access_log,
        log_level="info",
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    try:
        _server_class()(config).run()  # SIGINT/SIGTERM: stop accepting, finish open requests, return
    finally:
        if db is not None:
            server.release(db)
    return 0
