"""The demo domain: seeded, realistic data for every table the pipeline reads, with injected incidents as
ground truth (``generator`` and its parts), bulk-loaded by ``store``."""
