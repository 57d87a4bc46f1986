"""The profiling domain (seed Phase 5, performance): query fingerprints and statistics, index advice verified
by the planner, maintenance findings and the ``optimize_system`` report. Pure modules here, the database edge
(statistics, EXPLAIN, HypoPG, remediation) in the ``store`` package."""
