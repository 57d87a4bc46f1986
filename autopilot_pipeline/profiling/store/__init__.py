"""Performance profiling at the database edge: statistics, plans, hypothetical indexes and remediation.

The seed's functions, in Python, one module each:

- :mod:`.statements` — ``automation.query_performance`` (app-logged, parser fingerprints) and
  ``pg_stat_statements`` (cumulative counters, snapshotted and diffed per run);
- :mod:`.catalog` — table health from ``pg_stat_user_tables``, ``pg_statio_user_tables`` and sizes,
  snapshotted into ``automation.table_statistics``; existing indexes; EXPLAIN;
- :mod:`.slow_queries` — EXPLAIN the heaviest fingerprints and ask the planner whether an index helps
  (HypoPG hypothetical indexes; a labelled heuristic without HypoPG);
- :mod:`.recommendations` — index, vacuum, analyze, wraparound, cache and connection advice into
  ``automation.performance_recommendations`` under stable keys, and the seed's ``optimize_system`` JSON;
- :mod:`.remediation` — opt-in: build high-priority, planner-verified indexes with CREATE INDEX CONCURRENTLY.

Query texts from the log are EXPLAINed only after pglast has parsed them as exactly one SELECT, UPDATE or
DELETE; they run through the extended protocol (which refuses a second statement) in a read-only
transaction with a statement timeout. EXPLAIN without ANALYZE never executes the query.
"""
