"""The pure analytics core: functions from polars frames to polars frames.

No Dagster, network or database imports here; assets, CLI, tests and benchmarks all call this package.
"""
