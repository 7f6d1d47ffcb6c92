-- Model outputs, version 3: what a model reveals about itself on a split,
-- beyond the per-task metrics.

-- Mean gate distribution of mixture-of-experts models (MMOE, PLE, and the
-- funnel models on those backbones): one row per run, split, gate and
-- expert; the weights of one gate sum to 1 over its experts.
CREATE TABLE gates (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split   TEXT NOT NULL,
    gate    TEXT NOT NULL,      -- e.g. "mmoe/click", "ple.l1/shared"
    expert  INTEGER NOT NULL,   -- position in the gate's softmax
    label   TEXT NOT NULL,      -- e.g. "e3", "task.e0", "shared.e7"
    weight  REAL NOT NULL,      -- mean over the split's rows
    PRIMARY KEY (run_id, split, gate, expert)
);

-- Funnel metrics of a run whose grid names a click task and a conversion
-- task ([models.funnel]): CTR AUC on all rows, CVR AUC on clicked rows only,
-- CTCVR AUC on all rows with label click * conversion (REFERENCE.md 4), and
-- counts that say how much data the figures rest on. An undefined metric
-- (one class absent) has no row.
CREATE TABLE funnel_metrics (
    run_id      TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split       TEXT NOT NULL,
    click_task  TEXT NOT NULL,
    conv_task   TEXT NOT NULL,
    metric      TEXT NOT NULL,
    value       REAL NOT NULL,
    PRIMARY KEY (run_id, split, metric)
);
