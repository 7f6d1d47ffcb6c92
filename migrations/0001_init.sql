-- mtlbench store, version 1: sweeps, runs and what they recorded.

CREATE TABLE sweeps (
    id          TEXT PRIMARY KEY,          -- hash of the grid's canonical form
    name        TEXT NOT NULL,
    grid_path   TEXT NOT NULL,
    grid_toml   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- The cells a sweep consists of; a finished run is shared by every sweep
-- that contains its cell.
CREATE TABLE sweep_cells (
    sweep_id    TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    cell_key    TEXT NOT NULL,
    position    INTEGER NOT NULL,
    PRIMARY KEY (sweep_id, cell_key)
);

CREATE TABLE runs (
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
    status          TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed', 'killed')),
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
    predictions_path TEXT
);
CREATE UNIQUE INDEX runs_finished_cell ON runs(cell_key) WHERE status = 'finished';
CREATE INDEX runs_cell ON runs(cell_key);
CREATE INDEX runs_sweep ON runs(sweep_id);

CREATE TABLE params (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Final metrics: one row per run, split, task and metric. An undefined
-- metric (e.g. AUC with one class) has no row.
CREATE TABLE metrics (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split   TEXT NOT NULL,
    task    TEXT NOT NULL,
    metric  TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (run_id, split, task, metric)
);

-- Per-epoch curves (split 'train' holds the mean loss of each loss term).
CREATE TABLE curves (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch   INTEGER NOT NULL,
    split   TEXT NOT NULL,
    task    TEXT NOT NULL,
    metric  TEXT NOT NULL,
    value   REAL NOT NULL,
    PRIMARY KEY (run_id, epoch, split, task, metric)
);

CREATE TABLE epochs (
    run_id              TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch               INTEGER NOT NULL,
    steps               INTEGER NOT NULL,
    train_seconds       REAL NOT NULL,
    eval_seconds        REAL NOT NULL,
    samples_per_second  REAL NOT NULL,
    select_value        REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);

-- Strategy traces: per step and loss term, the weight, the loss and the
-- gradient norm on the last shared layer.
CREATE TABLE traces (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step        INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    term        TEXT NOT NULL,
    weight      REAL NOT NULL,
    loss        REAL NOT NULL,
    grad_norm   REAL NOT NULL,
    PRIMARY KEY (run_id, step, term)
);

-- Per traced step: pairwise gradient cosines and the conflict rate.
CREATE TABLE trace_pairs (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step    INTEGER NOT NULL,
    term_a  TEXT NOT NULL,
    term_b  TEXT NOT NULL,
    cosine  REAL NOT NULL,
    PRIMARY KEY (run_id, step, term_a, term_b)
);
CREATE TABLE trace_steps (
    run_id          TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step            INTEGER NOT NULL,
    conflict_rate   REAL NOT NULL,
    PRIMARY KEY (run_id, step)
);
