"""The Postgres edge: server lifecycle, migrations and bulk table I/O. Nothing else talks to the database."""
