-- Model outputs, version 3: the mean gate distribution of mixture-of-experts
-- models (MMOE, PLE, and the funnel models on those backbones) on a split:
-- one row per run, split, gate and expert; the weights of one gate sum to 1
-- over its experts. (Funnel metrics are metric rows with task "funnel".)
CREATE TABLE gates (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    split   TEXT NOT NULL,
    gate    TEXT NOT NULL,      -- e.g. "mmoe/click", "ple.l1/shared"
    expert  INTEGER NOT NULL,   -- position in the gate's softmax
    label   TEXT NOT NULL,      -- e.g. "e3", "own.e0", "shared.e7"
    weight  REAL NOT NULL,      -- mean over the split's rows
    PRIMARY KEY (run_id, split, gate, expert)
);
