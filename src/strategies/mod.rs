//! Loss-weighting strategies. A strategy receives the loss terms a model
//! declares and the model's parameter groups, and leaves gradients ready for
//! the optimizer step; it reports the weights it used. Gradient diagnostics
//! (per-task norms, pairwise cosines, conflict rate) are measured here the
//! same way for every strategy so that conflict can be compared across them.

pub mod equal;

use serde::{Deserialize, Serialize};
use tch::Tensor;
use thiserror::Error;

use crate::models::ParamGroups;
use crate::train::TrainConfig;

#[derive(Debug, Error)]
pub enum StrategyError {
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
    #[error("{0}")]
    Torch(#[from] tch::TchError),
}

/// The strategy registry: every name a grid file may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    Equal,
}

impl StrategyKind {
    pub const ALL: &'static [StrategyKind] = &[StrategyKind::Equal];

    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Equal => "equal",
        }
    }

    pub fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|k| k.name()).collect()
    }
}

/// `[strategies.*]`: one section per strategy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategiesConfig {
    #[serde(default)]
    pub equal: equal::EqualConfig,
}

/// What a strategy did in one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepReport {
    /// The weight applied to each loss term.
    pub weights: Vec<f64>,
}

/// The contract every strategy fulfils.
pub trait Strategy {
    /// Computes gradients of the weighted objective into the parameters'
    /// `.grad` (they are zero on entry) and reports the weights used.
    fn backward(&mut self, losses: &[Tensor], params: &ParamGroups) -> Result<StepReport, StrategyError>;
}

/// Builds the strategy of `kind` for `n_terms` loss terms.
pub fn build(
    kind: StrategyKind,
    cfg: &StrategiesConfig,
    n_terms: usize,
    _train: &TrainConfig,
) -> Result<Box<dyn Strategy>, StrategyError> {
    Ok(match kind {
        StrategyKind::Equal => Box::new(equal::Equal::new(&cfg.equal, n_terms)?),
    })
}

/// Gradients of `loss` with respect to `inputs` (zeros where unused), keeping the graph.
pub fn grads_of(loss: &Tensor, inputs: &[Tensor]) -> Vec<Tensor> {
    let g = Tensor::run_backward(&[loss], inputs, true, false);
    g.into_iter()
        .zip(inputs)
        .map(|(g, x)| if g.defined() { g } else { x.zeros_like() })
        .collect()
}

/// The gradients as one flat vector.
pub fn flatten(grads: &[Tensor]) -> Tensor {
    Tensor::cat(&grads.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0)
}

/// Per-task gradient diagnostics on a parameter set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GradDiagnostics {
    /// ||grad L_t|| per task.
    pub norms: Vec<f64>,
    /// cos(g_i, g_j) for i < j, in row order (0,1), (0,2), ..., (1,2), ...
    pub cosines: Vec<f64>,
    /// Share of task pairs whose gradients conflict (cosine < 0).
    pub conflict_rate: f64,
}

/// Measures per-task gradient norms and pairwise cosines on `params`
/// without touching `.grad` (the graph is kept).
pub fn diagnostics(losses: &[Tensor], params: &[Tensor]) -> GradDiagnostics {
    if params.is_empty() {
        return GradDiagnostics::default();
    }
    let flat: Vec<Tensor> = losses.iter().map(|l| flatten(&grads_of(l, params)).detach()).collect();
    let norms: Vec<f64> = flat.iter().map(|g| g.norm().double_value(&[])).collect();
    let mut cosines = Vec::new();
    let mut conflicts = 0usize;
    for i in 0..flat.len() {
        for j in i + 1..flat.len() {
            let dot = flat[i].dot(&flat[j]).double_value(&[]);
            let denom = norms[i] * norms[j];
            let c = if denom > 0.0 { dot / denom } else { 0.0 };
            if c < 0.0 {
                conflicts += 1;
            }
            cosines.push(c);
        }
    }
    let pairs = cosines.len();
    GradDiagnostics { norms, cosines, conflict_rate: if pairs > 0 { conflicts as f64 / pairs as f64 } else { 0.0 } }
}
