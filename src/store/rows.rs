//! Row types of the store's queries (`sqlx::FromRow`).

use serde::Serialize;

use super::RunStatus;

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SweepRow {
    pub id: String,
    pub name: String,
    pub grid_path: String,
    pub grid_toml: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RunRow {
    pub id: String,
    pub sweep_id: String,
    pub name: String,
    pub model: String,
    pub strategy: String,
    pub seed: i64,
    pub config_hash: String,
    pub cell_key: String,
    pub dataset_name: String,
    pub dataset_digest: String,
    pub config_json: String,
    pub status: RunStatus,
    pub error: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub env_json: Option<String>,
    pub n_params: Option<i64>,
    pub best_epoch: Option<i64>,
    pub epochs_run: Option<i64>,
    pub train_seconds: Option<f64>,
    pub test_seconds: Option<f64>,
    pub predictions_path: Option<String>,
    pub pid: Option<i64>,
    pub host: Option<String>,
    pub data_seconds: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub samples_per_second: Option<f64>,
    /// The token the claiming process's writes are fenced by (not shown).
    #[serde(skip)]
    pub claim_token: Option<String>,
    /// Start time of the claiming process (clock ticks after boot).
    pub pid_start: Option<i64>,
    /// The run that replaced this one, for a superseded run.
    pub superseded_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ParamRow {
    pub run_id: String,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MetricRow {
    pub run_id: String,
    pub split: String,
    pub task: String,
    pub metric: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct CurveRow {
    pub run_id: String,
    pub epoch: i64,
    pub split: String,
    pub task: String,
    pub metric: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct EpochRow {
    pub run_id: String,
    pub epoch: i64,
    pub steps: i64,
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub samples_per_second: f64,
    pub select_value: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TraceRow {
    pub run_id: String,
    pub step: i64,
    pub epoch: i64,
    pub term: String,
    pub weight: f64,
    pub loss: f64,
    pub grad_norm: f64,
}
