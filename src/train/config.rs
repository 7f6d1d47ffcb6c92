//! `[train]`: optimiser, epochs, early stopping, device and threads.

use serde::{Deserialize, Serialize};

use super::device::DeviceSpec;
use crate::optim::{OptimSettings, OptimizerKind};

/// The validation metric that selects the epoch and drives early stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectMetric {
    /// Mean over tasks of the validation ROC-AUC (higher is better).
    MeanAuc,
    /// Mean over tasks of the validation log loss (lower is better).
    MeanLogloss,
}

fn d_epochs() -> usize {
    10
}
fn d_batch() -> usize {
    1024
}
fn d_eval_batch() -> usize {
    8192
}
fn d_lr() -> f64 {
    OptimSettings::DEFAULT.lr
}
fn d_beta1() -> f64 {
    OptimSettings::DEFAULT.beta1
}
fn d_beta2() -> f64 {
    OptimSettings::DEFAULT.beta2
}
fn d_eps() -> f64 {
    OptimSettings::DEFAULT.eps
}
fn d_patience() -> usize {
    2
}
fn d_trace_every() -> usize {
    50
}
fn d_optimizer() -> OptimizerKind {
    OptimSettings::DEFAULT.kind
}
fn d_select() -> SelectMetric {
    SelectMetric::MeanAuc
}

/// How a training step computes its gradients (`[train] step`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepPath {
    /// The model's fused pass where it has one and the strategy's
    /// objective is a plain weighted sum (an MMOE with one expert layer and
    /// equal or static weights: `crate::models::fused`), autograd elsewhere and on
    /// the steps that take gradient diagnostics.
    #[default]
    Fused,
    /// Every step through libtorch's autograd.
    Autograd,
}

impl StepPath {
    pub fn is_default(&self) -> bool {
        *self == StepPath::default()
    }
}

/// Most libtorch threads a run may ask for.
pub const MAX_THREADS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    #[serde(default = "d_eval_batch")]
    pub eval_batch_size: usize,
    #[serde(default = "d_optimizer")]
    pub optimizer: OptimizerKind,
    /// Learning rate (seed default: Adam 0.005).
    #[serde(default = "d_lr")]
    pub lr: f64,
    #[serde(default = "d_beta1")]
    pub beta1: f64,
    #[serde(default = "d_beta2")]
    pub beta2: f64,
    #[serde(default = "d_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
    /// SGD momentum.
    #[serde(default)]
    pub momentum: f64,
    /// Clip the global gradient norm to this value (none by default).
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Epochs without improvement of the validation metric before stopping.
    #[serde(default = "d_patience")]
    pub patience: usize,
    #[serde(default = "d_select")]
    pub select_metric: SelectMetric,
    /// Stop an epoch after this many steps (quick runs, at least 1); all
    /// batches when unset.
    #[serde(default)]
    pub max_steps_per_epoch: Option<usize>,
    /// "cpu", "cuda" or "cuda:N".
    #[serde(default)]
    pub device: DeviceSpec,
    /// libtorch intra-op threads (at least 1); unset = the number of cores.
    #[serde(default)]
    pub threads: Option<usize>,
    /// Record strategy traces every this many steps.
    #[serde(default = "d_trace_every")]
    pub trace_every: usize,
    /// "fused" (default) or "autograd": see [`StepPath`]. The two paths
    /// compute the same gradients up to float rounding.
    #[serde(default, skip_serializing_if = "StepPath::is_default")]
    pub step: StepPath,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: d_epochs(),
            batch_size: d_batch(),
            eval_batch_size: d_eval_batch(),
            optimizer: d_optimizer(),
            lr: d_lr(),
            beta1: d_beta1(),
            beta2: d_beta2(),
            eps: d_eps(),
            weight_decay: OptimSettings::DEFAULT.weight_decay,
            momentum: OptimSettings::DEFAULT.momentum,
            grad_clip: None,
            patience: d_patience(),
            select_metric: d_select(),
            max_steps_per_epoch: None,
            device: DeviceSpec::Cpu,
            threads: None,
            trace_every: d_trace_every(),
            step: StepPath::default(),
        }
    }
}

impl TrainConfig {
    /// The optimiser settings of the run (the strategies' learned weights
    /// start from them too).
    pub fn optim(&self) -> OptimSettings {
        OptimSettings {
            kind: self.optimizer,
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            momentum: self.momentum,
        }
    }

    /// Range checks; the error names the key (without the `train.` prefix).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.epochs == 0 {
            return Err(("epochs", "must be at least 1".into()));
        }
        if self.batch_size == 0 {
            return Err(("batch_size", "must be at least 1".into()));
        }
        if self.eval_batch_size == 0 {
            return Err(("eval_batch_size", "must be at least 1".into()));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(("lr", format!("must be a positive number, got {}", self.lr)));
        }
        if self.trace_every == 0 {
            return Err(("trace_every", "must be at least 1".into()));
        }
        for (key, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err((key, format!("must lie in [0, 1), got {v}")));
            }
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return Err(("eps", format!("must be a positive number, got {}", self.eps)));
        }
        for (key, v) in [("weight_decay", self.weight_decay), ("momentum", self.momentum)] {
            if !(v >= 0.0 && v.is_finite()) {
                return Err((key, format!("must be a finite number >= 0, got {v}")));
            }
        }
        if let Some(c) = self.grad_clip {
            if !(c > 0.0 && c.is_finite()) {
                return Err(("grad_clip", format!("must be positive, got {c}")));
            }
        }
        if self.max_steps_per_epoch == Some(0) {
            return Err(("max_steps_per_epoch", "must be at least 1 (0 steps would train nothing); leave it unset for every batch".into()));
        }
        if let Some(n) = self.threads {
            if n == 0 || n > MAX_THREADS {
                return Err(("threads", format!("must be between 1 and {MAX_THREADS}, got {n}; leave it unset for one thread per core")));
            }
        }
        Ok(())
    }
}
