//! The Gramian engine: one strategy type for every method that weighs the
//! loss terms from the Gramian G = J Jᵀ of their gradients (T × T).
//!
//! Per step: one gradient pass per loss term over the scope (the last shared
//! layer, every shared parameter, or the shared representation of the
//! forward pass) and the task-specific parameters; J (T × n, each row a
//! term's flat in-scope gradient) → G in f64 → the method's weights w →
//! every shared parameter gets sum_t w_t g_t (from the per-term passes when
//! the scope is every shared parameter, else from one pass of
//! sum_t w_t L_t, so that the narrow scopes cost T passes through the heads
//! plus one through the shared part), every task-specific parameter its own
//! terms' plain sum (as PCGrad). Methods that need the gradient vectors
//! themselves (not only G) may return an in-scope direction instead.
//!
//! Files: `gram.rs` (the matrix and the diagnostics read off it), `solve.rs`
//! (the dense solver kit), `engine.rs` (the tensor side), one file per method.

pub mod aligned_mtl;
pub mod cagrad;
pub mod config_grad;
pub mod dualproj;
pub mod engine;
pub mod fairgrad;
pub mod gram;
pub mod imtl_g;
pub mod mgda;
pub mod nash_mtl;
#[cfg(test)]
mod oracle_tests;
pub mod solve;
pub mod upgrad;

use serde::{Deserialize, Serialize};
use tch::Tensor;

pub use engine::{gram_of, GramianStrategy};
pub use gram::{GradDiagnostics, Gram};

use super::StrategyError;

/// Which gradients J holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GramScope {
    /// The model's last shared layer.
    LastShared,
    /// Every shared parameter, embeddings included.
    AllShared,
    /// The shared representation of the forward pass (SharedBottom: the
    /// bottom's output; MMOE: the stacked expert outputs; PLE: the last
    /// level's shared experts' outputs; ESMM / CTnoCVR: their backbone's).
    Representation,
}

impl GramScope {
    pub fn name(self) -> &'static str {
        match self {
            GramScope::LastShared => "last-shared",
            GramScope::AllShared => "all-shared",
            GramScope::Representation => "representation",
        }
    }
}

/// What a method sees besides G.
#[derive(Debug, Clone, Copy)]
pub struct GramContext<'a> {
    /// The value of each loss term.
    pub losses: &'a [f64],
}

/// What a method returns.
#[derive(Debug)]
pub enum Aggregate {
    /// The shared gradient is sum_t w_t g_t.
    Weights(Vec<f64>),
    /// The in-scope gradient is `direction` (flat, as the rows of J); the
    /// shared parameters outside the scope get sum_t weights_t g_t.
    Direction { direction: Tensor, weights: Vec<f64> },
}

/// A weighting of the loss terms from their Gramian.
pub trait GramMethod {
    /// The weights w (the shared gradient is Jᵀ w).
    fn weights(&mut self, gram: &Gram, ctx: &GramContext) -> Result<Vec<f64>, StrategyError>;

    /// Methods that need the in-scope gradient vectors themselves override
    /// this; `rows[t]` is term t's flat in-scope gradient. By default, the
    /// weights of [`GramMethod::weights`].
    fn aggregate(&mut self, _rows: &[Tensor], gram: &Gram, ctx: &GramContext) -> Result<Aggregate, StrategyError> {
        Ok(Aggregate::Weights(self.weights(gram, ctx)?))
    }
}

/// A config error on key `strategies.{section}.{key}`.
pub(crate) fn config_err(section: &str, key: &str, message: String) -> StrategyError {
    StrategyError::Config { key: format!("strategies.{section}.{key}"), message }
}

/// `Ok` when `v` is finite and at least `min` (or above it, when `strict`).
pub(crate) fn check_min(section: &str, key: &str, v: f64, min: f64, strict: bool) -> Result<(), StrategyError> {
    let ok = v.is_finite() && if strict { v > min } else { v >= min };
    if ok {
        Ok(())
    } else {
        let rel = if strict { ">" } else { ">=" };
        Err(config_err(section, key, format!("must be a finite number {rel} {min}, got {v}")))
    }
}

/// Uniform weights 1/T.
pub(crate) fn mean_weights(n: usize) -> Vec<f64> {
    vec![1.0 / n as f64; n]
}
