-- Tracking, version 2: who is training a run (for stale detection and
-- resume), and per-run timings and resources.

ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN data_seconds REAL;
ALTER TABLE runs ADD COLUMN peak_rss_mib REAL;
ALTER TABLE runs ADD COLUMN samples_per_second REAL;

-- At most one run per cell is running or finished: claiming a cell is one
-- INSERT, so two `bench run` on one database never train a cell twice.
DROP INDEX runs_finished_cell;
CREATE UNIQUE INDEX runs_active_cell ON runs(cell_key) WHERE status IN ('running', 'finished');
