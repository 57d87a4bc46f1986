"""``autopilot targets add|list|remove``: the databases this deployment monitors.

Each target is a row of ``automation.targets`` (where its URL lives, never the URL) and a Dagster dynamic
partition of ``targets``, so every per-target asset gets its partitions as soon as it is added.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from autopilot_pipeline.errors import AutopilotError


def register(subparsers: argparse._SubParsersAction) -> None:
    targets = subparsers.add_parser(
        "targets", help="monitored databases: add, list, remove (the configured one is 'default')"
    )
    actions = targets.add_subparsers(dest="targets_command", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add",
        help="monitor another database; its URL is read at run time from a variable or a file",
        description="Add a monitored database. The URL itself is never stored: only the name of the "
        "environment variable (--url-env) or the path of the secrets file (--url-file) that holds it.",
    )
    add.add_argument("name", help="target name: lower-case letters, digits and '_' (e.g. shop_eu)")
    source = add.add_mutually_exclusive_group(required=True)
    source.add_argument("--url-env", metavar="VAR", help="environment variable holding the database URL")
    source.add_argument("--url-file", type=Path, metavar="PATH", help="file holding the database URL")
    add.set_defaults(handler=_add)
    show = actions.add_parser("list", help="targets, where their URL comes from, reachable?, last ingest")
    show.set_defaults(handler=_list)
    remove = actions.add_parser("remove", help="stop monitoring a target (its history stays unless --purge)")
    remove.add_argument("name")
    remove.add_argument("--purge", action="store_true", help="also delete the target's rows from every table")
    remove.set_defaults(handler=_remove)


def _add(args: argparse.Namespace) -> int:
    from autopilot_pipeline import runner
    from autopilot_pipeline.postgres import targets

    targets.validate_name(args.name)  # before starting anything
    if args.url_file is not None and not args.url_file.is_file():
        raise AutopilotError(f"--url-file {args.url_file}: no such file")
    with _database() as (db, conn):
        target = targets.add_target(conn, args.name, args.url_env, args.url_file and str(args.url_file))
        runner.sync_targets(db, [t.name for t in targets.list_targets(conn)])
    note = ""
    try:
        targets.resolve_url(target)
    except AutopilotError as exc:
        note = f" (warning: {exc}; set it where the pipeline runs)"
    print(f"added target {target.name} ({target.source}){note}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from autopilot_pipeline.postgres import targets

    with _database() as (_db, conn):
        rows = targets.list_targets(conn)
        last = targets.last_ingest(conn)
    table = Table(title="Monitored targets")
    for column in ("name", "source", "reachable", "last ingest (hour)"):
        table.add_column(column)
    for target in rows:
        reachable = "yes"
        if target.name != targets.DEFAULT:
            try:
                with targets.connect_target(target):
                    pass
            except AutopilotError as exc:
                reachable = f"no: {str(exc).split(': ', 1)[-1]}"
        at = last.get(target.name)
        table.add_row(
            target.name, target.source, reachable, at.strftime("%Y-%m-%d %H:00 UTC") if at else "never"
        )
    Console(width=160).print(table)
    return 0


def _remove(args: argparse.Namespace) -> int:
    from autopilot_pipeline import runner
    from autopilot_pipeline.postgres import targets

    with _database() as (db, conn):
        deleted = targets.remove_target(conn, args.name, purge=args.purge)
        runner.sync_targets(db, [t.name for t in targets.list_targets(conn)])
    if args.purge:
        print(f"removed target {args.name} and {sum(deleted.values()):,} row(s) of its history")
    else:
        print(f"removed target {args.name} (its history stays; `--purge` deletes it)")
    return 0


class _database:
    """The configured (or embedded) database, migrated, with an autocommit connection."""

    def __enter__(self):  # noqa: ANN204 - a pair
        from autopilot_pipeline.postgres import migrate, server

        self.db = server.resolve()
        try:
            migrate.migrate(self.db.url)
            self.conn = server.connect(self.db.url, autocommit=True)
        except BaseException:
            server.release(self.db)
            raise
        return self.db, self.conn

    def __exit__(self, *exc: object) -> None:
        from autopilot_pipeline.postgres import server

        self.conn.close()
        server.release(self.db)
