-- mtlbench store on PostgreSQL: the schema SQLite reaches after its
-- migrations 0001 to 0004 (sweeps, runs and what they recorded, tracking,
-- gates, claims), in one step. The column names, constraints and indexes
-- are the same, so that one SQL text serves both databases; the types are
-- PostgreSQL's own (BIGINT for INTEGER, DOUBLE PRECISION for REAL). Times
-- are RFC 3339 UTC text, as on SQLite: such strings order as their times.

CREATE TABLE sweeps (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    grid_path   TEXT NOT NULL,
    grid_toml   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

CREATE TABLE sweep_cells (
    sweep_id    TEXT NOT NULL REFERENCES sweeps(id) ON DELETE CASCADE,
    cell_key    TEXT NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (sweep_id, cell_key)
);

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    sweep_id        TEXT NOT NULL REFERENCES sweeps(id),
    name            TEXT NOT NULL,
    model           TEXT NOT NULL,
    strategy        TEXT NOT NULL,
    seed            BIGINT NOT NULL,
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
    n_params        BIGINT,
    best_epoch      BIGINT,
    epochs_run      BIGINT,
    train_seconds   DOUBLE PRECISION,
    test_seconds    DOUBLE PRECISION,
    predictions_path TEXT,
    pid             BIGINT,
    host            TEXT,
    data_seconds    DOUBLE PRECISION,
    peak_rss_mib    DOUBLE PRECISION,
    samples_per_second DOUBLE PRECISION,
    claim_token     TEXT,
    pid_start       BIGINT,
    superseded_by   TEXT
);
CREATE INDEX runs_cell ON runs(cell_key);
CREATE INDEX runs_sweep ON runs(sweep_id);
-- One run per cell trains at a time, one finished run per cell is its result.
CREATE UNIQUE INDEX runs_running_cell ON runs(cell_key) WHERE status = 'running';
CREATE UNIQUE INDEX runs_finished_cell ON runs(cell_key) WHERE status = 'finished';

CREATE TABLE params (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE metrics (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split   TEXT NOT NULL,
    task    TEXT NOT NULL,
    metric  TEXT NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, split, task, metric)
);

CREATE TABLE curves (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch   BIGINT NOT NULL,
    split   TEXT NOT NULL,
    task    TEXT NOT NULL,
    metric  TEXT NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, epoch, split, task, metric)
);

CREATE TABLE epochs (
    run_id              TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch               BIGINT NOT NULL,
    steps               BIGINT NOT NULL,
    train_seconds       DOUBLE PRECISION NOT NULL,
    eval_seconds        DOUBLE PRECISION NOT NULL,
    samples_per_second  DOUBLE PRECISION NOT NULL,
    select_value        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, epoch)
);

CREATE TABLE traces (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step        BIGINT NOT NULL,
    epoch       BIGINT NOT NULL,
    term        TEXT NOT NULL,
    weight      DOUBLE PRECISION NOT NULL,
    loss        DOUBLE PRECISION NOT NULL,
    grad_norm   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, step, term)
);

CREATE TABLE trace_pairs (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step    BIGINT NOT NULL,
    term_a  TEXT NOT NULL,
    term_b  TEXT NOT NULL,
    cosine  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, step, term_a, term_b)
);

CREATE TABLE trace_steps (
    run_id          TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step            BIGINT NOT NULL,
    conflict_rate   DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, step)
);

CREATE TABLE gates (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split   TEXT NOT NULL,
    gate    TEXT NOT NULL,
    expert  BIGINT NOT NULL,
    label   TEXT NOT NULL,
    weight  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, split, gate, expert)
);

-- Test predictions live in the database: workers on other machines and
-- every reader reach them through the same URL. One row per run, the bytes
-- of the predictions file format (store::artifacts), under the name
-- runs.predictions_path gives.
CREATE TABLE predictions (
    name    TEXT PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    bytes   BYTEA NOT NULL
);
