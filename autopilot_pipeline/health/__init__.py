"""The health domain: the application's health checks, metric samples and releases, validated, and the hourly
and daily health tables (uptime, errors, response times, health score). SQL, including the reads of the
application's source tables, in ``store``."""
