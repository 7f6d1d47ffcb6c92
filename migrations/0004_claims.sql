-- Claims, version 4: every write of a run is fenced by its claim, and a
-- forced rerun trains while the cell's finished run stays its result.
--
-- * claim_token: a random token drawn when a process claims the run; every
--   later write of the run checks it (with status = 'running') in the same
--   statement or transaction.
-- * pid_start: the start time of the claiming process (field 22 of
--   /proc/PID/stat), so that a pid reused by another program is not taken
--   for the live run.
-- * superseded_by: for status 'superseded', the run that replaced this one
--   (a forced rerun that finished, or the run that took a lost claim over).
-- * status 'superseded': an attempt that is kept but is not the cell's
--   result.
--
-- SQLite cannot change a CHECK constraint in place: the table is rebuilt
-- (create, copy, drop, rename). The store runs migrations with foreign keys
-- off so that dropping the old table does not cascade to the tables that
-- reference it, and checks the foreign keys afterwards.

CREATE TABLE runs_v4 (
    id              TEXT PRIMARY KEY,
    sweep_id        TEXT NOT NULL REFERENCES sweeps(id),
    name            TEXT NOT NULL,
    model           TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    seed            INTEGER NOT NULL,
    config_hash     TEXT NOT NULL,
    cell_key        TEXT NOT NULL,
    dataset_name    TEXT NOT NULL,
    dataset_digest  TEXT NOT NULL,
    config_json     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed', 'killed', 'superseded')),
    error           TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    heartbeat_at    TEXT,
    env_json        TEXT,
    n_params        INTEGER,
    best_epoch      INTEGER,
    epochs_run      INTEGER,
    train_seconds   REAL,
    test_seconds    REAL,
    predictions_path TEXT,
    pid             INTEGER,
    host            TEXT,
    data_seconds    REAL,
    peak_rss_mib    REAL,
    samples_per_second REAL,
    claim_token     TEXT,
    pid_start       INTEGER,
    superseded_by   TEXT
);

INSERT INTO runs_v4 (id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name, dataset_digest,
    config_json, status, error, created_at, started_at, finished_at, heartbeat_at, env_json, n_params, best_epoch,
    epochs_run, train_seconds, test_seconds, predictions_path, pid, host, data_seconds, peak_rss_mib, samples_per_second)
SELECT id, sweep_id, name, model, strategy, seed, config_hash, cell_key, dataset_name, dataset_digest,
    config_json,
    CASE WHEN status = 'killed' AND error = 'superseded by a forced rerun' THEN 'superseded' ELSE status END,
    error, created_at, started_at, finished_at, heartbeat_at, env_json, n_params, best_epoch,
    epochs_run, train_seconds, test_seconds, predictions_path, pid, host, data_seconds, peak_rss_mib, samples_per_second
FROM runs;

DROP TABLE runs;
ALTER TABLE runs_v4 RENAME TO runs;

CREATE INDEX runs_cell ON runs(cell_key);
CREATE INDEX runs_sweep ON runs(sweep_id);
-- One run per cell trains at a time: claiming a cell is one INSERT, so two
-- processes never train a cell at once.
CREATE UNIQUE INDEX runs_running_cell ON runs(cell_key) WHERE status = 'running';
-- One finished run per cell: the cell's result. A forced rerun may be
-- running beside it; when the rerun finishes, the old run becomes
-- 'superseded' in the same transaction.
CREATE UNIQUE INDEX runs_finished_cell ON runs(cell_key) WHERE status = 'finished';
