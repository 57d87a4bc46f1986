"""CLI subcommands, one module each, discovered by :mod:`autopilot_pipeline.cli`."""
