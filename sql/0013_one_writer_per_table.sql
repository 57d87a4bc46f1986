-- Racing runs of one partition (docs/RELIABILITY.md): writers of a table now take a transaction-scoped
-- advisory lock first (postgres/io.py: serialize_writes), so a second run waits and then replaces the first
-- run's rows. The quarantine also gets its natural key, so a source row is quarantined once, whatever runs:
-- earlier duplicates (from races before this migration) keep their latest copy.
DELETE FROM analytics.quarantine q
USING analytics.quarantine newer
WHERE q.source_table = newer.source_table AND q.source_id = newer.source_id AND q.id < newer.id;

CREATE UNIQUE INDEX IF NOT EXISTS quarantine_source_row_key ON analytics.quarantine (source_table, source_id);
