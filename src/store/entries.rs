//! What the store is given to record, in its own types: a new run's
//! identity, an epoch, a strategy trace point, and a finished run's
//! outcome. Callers (the runner, fusion) convert their records into these,
//! so the store depends on nothing of the training loop and another store
//! behind the same types would need no change on their side.

/// The split a stored value was measured on (the `split` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training (curves only: the mean loss of each loss term).
    Train,
    Valid,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

/// One named value of a task (or of a whole split) on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue {
    pub split: Split,
    /// A task, a loss term, or a split-level name such as `funnel`.
    pub task: String,
    pub metric: String,
    pub value: f64,
}

/// A new run's identity and configuration.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub id: &'a str,
    pub sweep_id: &'a str,
    pub name: &'a str,
    pub model: &'a str,
    pub strategy: &'a str,
    pub seed: u64,
    pub config_hash: &'a str,
    pub cell_key: &'a str,
    pub dataset_name: &'a str,
    pub dataset_digest: &'a str,
    pub config_json: &'a str,
    pub env_json: &'a str,
    pub params: &'a [(String, String)],
    pub pid: u32,
    /// Start time of process `pid` (field 22 of /proc/PID/stat), when known.
    pub pid_start: Option<u64>,
    pub host: &'a str,
    pub data_seconds: f64,
}

/// One epoch: its curve points and timings.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEpoch {
    pub epoch: usize,
    pub steps: usize,
    /// Curve points of this epoch (training losses, validation metrics).
    pub curves: Vec<MetricValue>,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub samples_per_second: f64,
    /// The selection metric's value on validation.
    pub select_value: f64,
}

/// One strategy trace point: per loss term its weight, loss and gradient
/// norm; per pair of terms their gradient cosine.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrace {
    pub step: usize,
    pub epoch: usize,
    pub terms: Vec<String>,
    pub weights: Vec<f64>,
    pub losses: Vec<f64>,
    pub grad_norms: Vec<f64>,
    /// cos(g_a, g_b) for a < b, in row order (0,1), (0,2), ..., (1,2), ...
    pub cosines: Vec<f64>,
    pub conflict_rate: f64,
}

/// The mean weight one gate gives each of its experts on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct GateWeights {
    pub split: Split,
    pub gate: String,
    pub labels: Vec<String>,
    pub weights: Vec<f64>,
}

/// What a finished run leaves: final metrics, gate weights, sizes, timings
/// and resources.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOutcome {
    /// Final metrics (one row per split, task and metric; a later value of
    /// the same key replaces an earlier one).
    pub metrics: Vec<MetricValue>,
    pub gates: Vec<GateWeights>,
    pub n_params: i64,
    pub best_epoch: usize,
    pub epochs_run: usize,
    pub train_seconds: f64,
    pub test_seconds: f64,
    pub peak_rss_mib: Option<f64>,
    pub samples_per_second: Option<f64>,
}
