"""CPU seconds by role (run processes, workers, Redis, Postgres, this driver) from ``/proc``, for the
scale-out benchmark: where the CPU of a backfill goes, not only how much there is.

A role's total at one moment is the CPU of its live processes plus what their exited, waited-for children
used (``cutime``/``cstime``): a Postgres backend or a worker's pool process that ends inside the window
moves from the first term into its parent's second term, so the difference of two snapshots is exact
without sampling in between. The run processes are forked by multiprocessing's fork server (a child of
the driver that reaps them), so they are the tree of the driver's other children.
Linux only (the benchmark's machine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    own_s: float
    children_s: float


def stat(pid: int) -> Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Stat(pid, int(fields[1]), (utime + stime) / TICK, (cutime + cstime) / TICK)


def all_stats() -> list[Stat]:
    return [s for entry in os.listdir("/proc") if entry.isdigit() and (s := stat(int(entry))) is not None]


def tree_cpu_s(roots: list[int], stats: list[Stat] | None = None) -> float:
    """CPU of the processes ``roots`` and every live descendant, with their reaped children."""
    stats = all_stats() if stats is None else stats
    by_parent: dict[int, list[Stat]] = {}
    for s in stats:
        by_parent.setdefault(s.ppid, []).append(s)
    by_pid = {s.pid: s for s in stats}
    total, todo = 0.0, [by_pid[r] for r in roots if r in by_pid]
    while todo:
        s = todo.pop()
        total += s.own_s + s.children_s
        todo.extend(by_parent.get(s.pid, []))
    return total


def children(pid: int, stats: list[Stat] | None = None) -> list[int]:
    """PIDs of the live children of ``pid``."""
    return [s.pid for s in (all_stats() if stats is None else stats) if s.ppid == pid]


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot (every process, ours and others')."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICK


def snapshot(roles: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each role (a list of root PIDs), the driver (this process alone) and the
    machine."""
    stats = all_stats()
    out = {role: tree_cpu_s(pids, stats) for role, pids in roles.items()}
    own = os.times()
    out["driver"] = own.user + own.system
    out["machine"] = machine_busy_s()
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in after if k in before}
