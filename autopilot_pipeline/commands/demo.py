"""``autopilot demo``: the whole pipeline on demo data (embedded Postgres unless a database is configured).

``--target NAME`` runs it for a monitored target instead of ``default``: demo data goes into the target's own
database when its ``health_log`` is empty (else its data is analysed), the target's partitions are
materialized and the summary shows its rows.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from rich.console import Console
from rich.table import Table

from autopilot_pipeline import runner, shutdown
from autopilot_pipeline.aiops.store import read_insights
from autopilot_pipeline.alerting.store import firing_alerts
from autopilot_pipeline.errors import AutopilotError
from autopilot_pipeline.health.store import component_summary, data_span, release_summary
from autopilot_pipeline.postgres import migrate, server, targets, urls
from autopilot_pipeline.profiling.store.recommendations import top_recommendations

console = Console()


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="generate demo data, materialize every asset and print a summary",
        description="Start (or connect to) Postgres, apply migrations, generate demo data, materialize every "
        "asset through Dagster and print a summary. With AUTOPILOT_DATABASE_URL unset an embedded Postgres "
        "is used; with it set and data present, the existing data is analysed instead.",
    )
    demo.add_argument("--days", type=int, default=7, help="days of history to generate (default 7)")
    demo.add_argument("--components", type=int, default=6, help="number of components (default 6)")
    demo.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    demo.add_argument(
        "--target",
        default=targets.DEFAULT,
        help="the monitored target to run it for (default: default, the configured database)",
    )
    demo.set_defaults(handler=run)


@contextmanager
def step(message: str) -> Iterator[None]:
    with console.status(f"[bold]{message}…"):
        yield
    console.print(f"[green]✓[/green] {message}")


def run(args: argparse.Namespace) -> int:
    if args.days < 1 or args.components < 1:
        raise AutopilotError("--days and --components must be at least 1")
    targets.validate_name(args.target)
    shutdown.install()  # SIGTERM and Ctrl-C stop the whole demo and its Postgres, not one job
    db: server.Database | None = None
    try:
        with step("Starting Postgres"), shutdown.deferred():
            db = server.resolve()
        return _run(db, args)
    finally:
        with shutdown.cleaning_up():
            if db is not None:
                server.release(db)


def _run(db: server.Database, args: argparse.Namespace) -> int:
    console.print(f"  database: {urls.display(db.url)}{' (embedded)' if db.embedded else ''}")
    with step("Applying migrations"):
        migrate.migrate(db.url)
    name = args.target
    target = None  # the configured database
    if name != targets.DEFAULT:
        with server.connect(db.url) as conn:
            target = targets.get_target(conn, name)
        console.print(f"  target: {name} ({target.source})")
        with _source(db, target) as source:
            pending = migrate.pending(source)
        if pending:
            raise AutopilotError(
                f"target {name!r}: {len(pending)} migration(s) not applied: run `autopilot db migrate` against it"
            )
    _load_demo_data(db, target, args)
    env = runner.configure_environment(db)
    with _source(db, target) as conn:
        first, last = data_span(conn)
    if first is None or last is None:
        raise AutopilotError("automation.health_log is empty: nothing to analyse")
    runner.quiet_dagster_logs()
    failures = []
    with dg.DagsterInstance.get() as instance:
        for summary in runner.materialize_history(
            instance, first, last, on_step=lambda what: console.print(f"  materializing {what}"), target=name
        ):
            mark = "[green]✓[/green]" if summary.success else "[red]✗[/red]"
            console.print(f"{mark} {summary.job} run {summary.run_id[:8]} over {summary.partitions}")
            if not summary.success:
                failures.append(summary)
    _print_summary(db, name)
    console.print(
        f"\nDagster home: {env['DAGSTER_HOME']} — run [bold]autopilot dev[/bold] to browse runs and lineage."
    )
    if failures:
        raise AutopilotError(f"{len(failures)} job run(s) failed: see `autopilot dev` → Runs for the logs")
    return 0


@contextmanager
def _source(db: server.Database, target: targets.Target | None) -> Iterator[psycopg.Connection]:
    """The monitored database: ``target``'s own (unreachable: one line), or the configured one for None."""
    if target is None:
        with server.connect(db.url) as conn:
            yield conn
    else:
        with targets.connect_target(target) as conn:
            yield conn


def _load_demo_data(db: server.Database, target: targets.Target | None, args: argparse.Namespace) -> None:
    """Demo data into the monitored database: an embedded server's is replaced, any other's existing rows
    are analysed instead."""
    from autopilot_pipeline.demo.store import load_demo_data

    embedded = target is None and db.embedded is not None
    with _source(db, target) as conn:
        has_data = conn.execute("SELECT EXISTS (SELECT 1 FROM automation.health_log)").fetchone()[0]
    if has_data and not embedded:
        what = "the configured database" if target is None else f"target {target.name}"
        console.print(
            f"[yellow]![/yellow] {what} already has health_log rows: analysing them instead of generating "
            "demo data"
        )
        return
    label = f"Generating {args.days} days of demo data for {args.components} components (seed {args.seed})"
    with step(label):
        summary = load_demo_data(
            db.url if target is None else targets.resolve_url(target),
            days=args.days,
            components=args.components,
            seed=args.seed,
            replace=embedded,
        )
    console.print("  " + ", ".join(f"{table}: {n:,}" for table, n in summary.rows.items()))
    kinds = sorted({incident.kind for incident in summary.incidents})
    console.print(
        f"  injected incidents (ground truth in demo.incidents): {len(summary.incidents)} — {', '.join(kinds)}"
    )


def _fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def _print_summary(db: server.Database, target: str) -> None:
    with server.connect(db.url) as conn:
        components = component_summary(conn, target)
        releases = release_summary(conn, target)
        alerts = firing_alerts(conn, target)
        recommendations = top_recommendations(conn, target=target)
        insights = read_insights(conn, target=target)
    shown = "" if target == targets.DEFAULT else f" of target {target}"
    table = Table(title=f"Health by component{shown} (all materialized hours)")
    for column, justify in (
        ("component", "left"),
        ("uptime", "right"),
        ("errors", "right"),
        ("error rate", "right"),
        ("p95 (median hour)", "right"),
        ("worst p95", "right"),
        ("health score", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in components.iter_rows(named=True):
        score = row["health_score"]
        colour = "green" if score and score >= 90 else "yellow" if score and score >= 70 else "red"
        table.add_row(
            row["component"],
            _fmt(row["uptime_pct"], "{:.2f} %"),
            _fmt(row["errors"], "{:,}"),
            _fmt(row["error_ratio"] and row["error_ratio"] * 100, "{:.2f} %"),
            _fmt(row["median_p95_ms"], "{:,.0f} ms"),
            _fmt(row["worst_p95_ms"], "{:,.0f} ms"),
            f"[{colour}]{_fmt(score, '{:.1f}')}[/{colour}]",
        )
    console.print(table)
    if components.height:
        worst = components.sort("worst_p95_ms", descending=True, nulls_last=True).row(0, named=True)
        overall = components["health_score"].mean()
        console.print(
            f"Worst p95: [bold]{_fmt(worst['worst_p95_ms'], '{:,.0f} ms')}[/bold] on {worst['component']}"
        )
        console.print(f"Overall health score: [bold]{_fmt(overall, '{:.1f}')}[/bold] / 100")
    console.print(
        f"Migrations: {releases['migrations']} ({_fmt(releases['migration_success_pct'], '{:.1f} %')} succeeded, "
        f"{releases['rollbacks']} rolled back); deployments: {releases['deployments']} "
        f"({_fmt(releases['deployment_success_pct'], '{:.1f} %')} succeeded)"
    )
    if alerts:
        console.print(f"\n[bold]Alerts firing now ({len(alerts)}):[/bold]")
        for severity, rule, component, value in alerts[:10]:
            console.print(
                f"  [{'red' if severity == 'critical' else 'yellow'}]{severity}[/] {rule} on {component}"
                f" (value {_fmt(value, '{:,.2f}')})"
            )
    else:
        console.print("\nAlerts firing now: none")
    if recommendations:
        console.print("\n[bold]Top performance recommendations[/bold] (autopilot optimize for all):")
        for priority, kind, description, improvement in recommendations:
            console.print(
                f"  {priority:<6} {kind:<18} {description} (est. saving {_fmt(improvement, '{:.0f} %')})"
            )
    if insights:
        console.print(
            f"\n[bold]AI-ops insights[/bold] (health: {insights.get('health', '–')}): {insights.get('summary', '')}"
        )
        for line in insights.get("recommendations", [])[:5]:
            console.print(f"  • {line}")
