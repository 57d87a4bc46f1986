"""``autopilot db migrate|status``: apply and inspect the SQL migrations."""

from __future__ import annotations

import argparse

from autopilot_pipeline.postgres import migrate, server, urls


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser("db", help="database schema: migrate, status")
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    actions.add_parser("migrate", help="apply pending migrations (idempotent)").set_defaults(handler=_migrate)
    actions.add_parser("status", help="list migrations and whether each is applied").set_defaults(
        handler=_status
    )


def _migrate(args: argparse.Namespace) -> int:
    db = server.resolve()
    try:
        done = migrate.migrate(db.url)
    finally:
        server.release(db)  # an embedded server this command started stops again
    where = urls.display(db.url)
    print(
        f"applied {len(done)} migration(s) to {where}: {', '.join(done)}"
        if done
        else f"{where} is up to date"
    )
    return 0


def _status(args: argparse.Namespace) -> int:
    with server.session() as conn:
        done = migrate.applied(conn)
    for m in migrate.available():
        print(f"{'applied' if m.version in done else 'pending'}  {m.version}")
    return 0
