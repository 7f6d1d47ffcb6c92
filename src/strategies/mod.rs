//! Loss-weighting strategies. A strategy receives the loss terms a model
//! declares and the model's parameter groups, and leaves gradients ready for
//! the optimizer step; it reports the weights it used. Gradient diagnostics
//! (per-task norms, pairwise cosines, conflict rate) are measured here the
//! same way for every strategy so that conflict can be compared across them.
//!
//! Strategies act on loss terms, not on dataset tasks, so a funnel model
//! (whose terms are e.g. CTR and CTCVR) is weighted like any other model.
//! Formulas: `docs/reference.md` section 5.

pub mod combine;
pub mod dbmtl;
pub mod dwa;
pub mod equal;
pub mod famo;
pub mod gradcraft;
pub mod gradnorm;
pub mod gradvac;
pub mod gramian;
pub mod pcgrad;
mod registry;
pub mod rlw;
pub mod static_weights;
pub mod stch;
pub mod uncertainty;

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};
use thiserror::Error;

pub use gramian::{GradDiagnostics, Gram};
use gramian::gram_of;
pub use registry::{build, check, StrategiesConfig, StrategyKind};
use crate::models::ParamGroups;
use crate::optim::{GradsOnEntry, OptimSettings, Optimizer};

#[derive(Debug, Error)]
pub enum StrategyError {
    #[error("config key `{key}`: {message}")]
    Config { key: String, message: String },
    /// The strategy cannot act on what the model or the step handed it.
    #[error("{strategy}: {message}")]
    Step { strategy: &'static str, message: String },
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

impl StrategyError {
    /// A refused setting of `[strategies.<strategy>]`.
    pub(crate) fn config(strategy: &str, key: &str, message: String) -> Self {
        StrategyError::Config { key: format!("strategies.{strategy}.{key}"), message }
    }
}

/// Which shared parameters a gradient-based strategy acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// The model's last shared layer ([`ParamGroups::last_shared`]).
    LastShared,
    /// Every shared parameter ([`ParamGroups::shared`]), embeddings included.
    AllShared,
}

impl Scope {
    /// The parameters this scope selects.
    pub fn params(self, groups: &ParamGroups) -> &[Tensor] {
        match self {
            Scope::LastShared => &groups.last_shared,
            Scope::AllShared => &groups.shared,
        }
    }
}

/// What a strategy did in one step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepReport {
    /// The weight applied to each loss term.
    pub weights: Vec<f64>,
    /// The Gramian of the loss terms' gradients on the last shared layer,
    /// where the strategy computed it this step (see
    /// [`Strategy::reports_last_shared_gram`]): the trace diagnostics are read
    /// off it instead of a gradient pass of their own.
    pub last_shared_gram: Option<Gram>,
}

impl StepReport {
    /// The weights, no Gramian.
    pub fn new(weights: Vec<f64>) -> Self {
        StepReport { weights, last_shared_gram: None }
    }
}

/// What one step hands a strategy.
#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    /// The loss terms the model declares, in order, each a scalar.
    pub losses: &'a [Tensor],
    /// The model's parameter groups.
    pub params: &'a ParamGroups,
    /// The shared representation of this forward pass (the tensor every
    /// head reads), for representation-level variants; `None` where the
    /// model does not expose one.
    pub representation: Option<&'a Tensor>,
    /// The value of each loss term, where the caller has read them already
    /// (the training step has, to check for divergence); `None`: read from
    /// `losses` when needed.
    pub values: Option<&'a [f64]>,
}

impl<'a> StepInput<'a> {
    /// Losses and parameters, no representation.
    pub fn new(losses: &'a [Tensor], params: &'a ParamGroups) -> Self {
        StepInput { losses, params, representation: None, values: None }
    }

    /// The same with the forward pass's shared representation.
    pub fn with_representation(self, representation: Option<&'a Tensor>) -> Self {
        StepInput { representation, ..self }
    }

    /// The same with the loss terms' values, read by the caller.
    pub fn with_values(self, values: &'a [f64]) -> Self {
        StepInput { values: Some(values), ..self }
    }

    /// The value of each loss term: those given, else read off the tensors.
    pub fn loss_values(&self) -> Result<Vec<f64>, StrategyError> {
        match self.values {
            Some(v) if v.len() == self.losses.len() => Ok(v.to_vec()),
            _ => Ok(self.losses.iter().map(|l| l.f_double_value(&[])).collect::<Result<Vec<f64>, _>>()?),
        }
    }
}

/// The contract every strategy fulfils.
pub trait Strategy {
    /// Computes gradients of the weighted objective into the parameters'
    /// `.grad` (they are zero or undefined on entry) and reports the weights
    /// used. A strategy with state of its own (learned weights) updates it here.
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError>;

    /// The weights, when every step's objective is the same plain weighted
    /// sum of the loss terms, sum_t w_t L_t, so that a model's fused pass
    /// ([`crate::models::fused`]) can compute its gradient instead of
    /// [`Strategy::backward`] (which would change no state of the
    /// strategy). The default, `None`: the strategy learns, draws or
    /// computes its weights, or changes the gradients, in its own backward.
    fn plain_weights(&self) -> Option<Vec<f64>> {
        None
    }

    /// Whether every [`Strategy::backward`] reports the Gramian of the loss
    /// terms' own gradients on the last shared layer
    /// ([`StepReport::last_shared_gram`]), so that a step taking gradient
    /// diagnostics needs no gradient pass of its own. The default: no.
    fn reports_last_shared_gram(&self) -> bool {
        false
    }

    /// How the parameters' `.grad` should be on entry to
    /// [`Strategy::backward`]. The default, undefined, suits a strategy that
    /// runs one `backward` of a weighted loss (autograd's gradients become
    /// `.grad` without a zeroing or an accumulating pass); a strategy that
    /// adds a combined gradient into `.grad` itself asks for zeroed buffers.
    fn grads_on_entry(&self) -> GradsOnEntry {
        GradsOnEntry::Undefined
    }

    /// Called once the optimiser has stepped on this step's gradients, with
    /// `reforward`: it recomputes the loss terms on the same batch, without
    /// gradient, after the step. It costs a forward pass only when called
    /// (FAMO does). The default does nothing.
    fn after_step(&mut self, _reforward: &mut Reforward) -> Result<(), StrategyError> {
        Ok(())
    }

    /// Called at the end of every training epoch (`epoch` from 1) with each
    /// loss term's mean training loss over the epoch's steps (DWA's loss
    /// ratios, STCH's nadir point). The default does nothing.
    fn end_of_epoch(&mut self, _epoch: usize, _mean_losses: &[f64]) -> Result<(), StrategyError> {
        Ok(())
    }
}

/// Recomputes the step's loss terms after the optimiser step (see
/// [`Strategy::after_step`]).
pub type Reforward<'a> = dyn FnMut() -> Result<Vec<f64>, StrategyError> + 'a;

/// Refuses a step or epoch whose number of loss terms is not the strategy's.
pub(crate) fn check_terms(strategy: &'static str, given: usize, expected: usize) -> Result<(), StrategyError> {
    if given != expected {
        return Err(StrategyError::Step { strategy, message: format!("{given} loss terms given, {expected} expected") });
    }
    Ok(())
}

/// scale * softmax(x), computed stably (DWA, RLW and STCH weights).
pub fn scaled_softmax(x: &[f64], scale: f64) -> Vec<f64> {
    let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| scale * v / s).collect()
}

/// What a strategy may need from the run besides its own section.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext {
    /// Number of loss terms the model declares.
    pub n_terms: usize,
    /// The run's optimiser settings (kind and rate for learned weights).
    pub optim: OptimSettings,
    /// The run's seed (PCGrad's task order).
    pub seed: u64,
    /// Where the strategy's own tensors live.
    pub device: Device,
}

/// Gradients of `loss` with respect to `inputs` (zeros where unused), keeping
/// the graph. `.grad` is not touched.
pub fn grads_of(loss: &Tensor, inputs: &[Tensor]) -> Result<Vec<Tensor>, tch::TchError> {
    let g = reached_grads(loss, inputs)?;
    Ok(g.into_iter().zip(inputs).map(|(g, x)| if g.defined() { g } else { x.zeros_like() }).collect())
}

/// Gradients of `loss` with respect to `inputs`, keeping the graph; an
/// undefined tensor (no zeros allocated) where `loss` does not reach the
/// input, as a task-specific parameter of another head. `.grad` is not touched.
pub fn reached_grads(loss: &Tensor, inputs: &[Tensor]) -> Result<Vec<Tensor>, tch::TchError> {
    if inputs.is_empty() {
        return Ok(vec![]);
    }
    Tensor::f_run_backward(&[loss], inputs, true, false)
}

/// Every parameter of `groups`, those of `scope` first: returns the list and
/// how many of its leading entries are in scope. Each parameter appears once.
pub fn scope_first(groups: &ParamGroups, scope: Scope) -> (Vec<Tensor>, usize) {
    let first: Vec<Tensor> = scope.params(groups).iter().map(|t| t.shallow_clone()).collect();
    let n = first.len();
    let seen: std::collections::HashSet<usize> = first.iter().map(|t| t.data_ptr() as usize).collect();
    let rest = groups.shared.iter().chain(&groups.task_specific).filter(|t| !seen.contains(&(t.data_ptr() as usize)));
    (first.into_iter().chain(rest.map(|t| t.shallow_clone())).collect(), n)
}

/// One gradient pass per loss term over `params` (graph kept, `.grad` untouched).
///
/// Each pass only traverses what its term reaches (its own head and the
/// shared part), so T passes over every parameter cost about one backward
/// pass of the sum plus (T - 1) passes over the shared part, provided the
/// model computes each term from its own head's output (not from a tensor
/// that stacks all heads: the backward of a stack sends zeros into every
/// head, and each pass then costs a full backward).
pub fn per_term_grads(losses: &[Tensor], params: &[Tensor]) -> Result<Vec<Vec<Tensor>>, tch::TchError> {
    losses.iter().map(|l| grads_of(l, params)).collect()
}

/// The gradients as one flat vector.
pub fn flatten(grads: &[Tensor]) -> Tensor {
    Tensor::cat(&grads.iter().map(|g| g.reshape([-1])).collect::<Vec<_>>(), 0)
}

/// Splits a flat vector back into tensors shaped like `like`.
pub fn unflatten(flat: &Tensor, like: &[Tensor]) -> Vec<Tensor> {
    let mut out = Vec::with_capacity(like.len());
    let mut start = 0i64;
    for p in like {
        let n = p.numel() as i64;
        out.push(flat.narrow(0, start, n).view(p.size().as_slice()));
        start += n;
    }
    out
}

/// Adds `grads` to the parameters' `.grad`, defining it where libtorch has
/// not yet (the first step).
pub fn accumulate_grads(params: &[Tensor], grads: &[Tensor]) -> Result<(), tch::TchError> {
    let mut undefined = Vec::new();
    tch::no_grad(|| -> Result<(), tch::TchError> {
        for (p, g) in params.iter().zip(grads) {
            let mut pg = p.grad();
            if pg.defined() {
                let _ = pg.f_add_(g)?;
            } else {
                undefined.push((p, g));
            }
        }
        Ok(())
    })?;
    if !undefined.is_empty() {
        // d/dp sum(p * g) = g: one tiny backward defines and fills `.grad`.
        let surrogate = undefined
            .iter()
            .map(|(p, g)| (*p * g.detach()).sum(p.kind()))
            .reduce(|a, b| a + b)
            .unwrap_or_else(|| Tensor::from(0.0f32));
        surrogate.f_backward()?;
    }
    Ok(())
}

/// An optimizer for a strategy's own learned weights: the run's optimizer
/// kind with rate `lr` and no weight decay.
pub(crate) fn own_optimizer(vs: &nn::VarStore, run: OptimSettings, lr: f64) -> Result<Optimizer, tch::TchError> {
    Optimizer::new(vs, &OptimSettings { lr, weight_decay: 0.0, ..run })
}

/// A small tensor's values as f64 (on the CPU).
pub(crate) fn to_f64s(t: &Tensor) -> Vec<f64> {
    let flat = t.detach().to_device(Device::Cpu).to_kind(tch::Kind::Double).reshape([-1]);
    (0..flat.size()[0]).map(|i| flat.double_value(&[i])).collect()
}

/// Measures per-task gradient norms and pairwise cosines on `params`
/// without touching `.grad` (the graph is kept): the Gramian of the per-term
/// gradients, read off by [`gramian::Gram::diagnostics`].
pub fn diagnostics(losses: &[Tensor], params: &[Tensor]) -> Result<GradDiagnostics, tch::TchError> {
    if params.is_empty() {
        return Ok(GradDiagnostics::default());
    }
    let per_term = losses.iter().map(|l| reached_grads(l, params)).collect::<Result<Vec<_>, _>>()?;
    Ok(gram_of(&per_term.iter().map(Vec::as_slice).collect::<Vec<_>>())?.diagnostics())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Tiny hand-checkable problems for the strategy tests.
    use tch::{Kind, Tensor};

    use crate::models::ParamGroups;

    /// A leaf parameter with the given values.
    pub fn param(v: &[f32]) -> Tensor {
        Tensor::from_slice(v).set_requires_grad(true)
    }

    /// A [n] f32 constant.
    pub fn vec_t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    /// <a, x> as a scalar loss.
    pub fn lin(a: &[f32], x: &Tensor) -> Tensor {
        (vec_t(a) * x).sum(Kind::Float)
    }

    pub fn groups(shared: &[&Tensor], last: &[&Tensor], task: &[&Tensor]) -> ParamGroups {
        let c = |v: &[&Tensor]| v.iter().map(|t| t.shallow_clone()).collect();
        ParamGroups { shared: c(shared), last_shared: c(last), task_specific: c(task) }
    }

    pub fn grad_vec(p: &Tensor) -> Vec<f64> {
        let g = p.grad();
        assert!(g.defined(), "no gradient");
        Vec::<f64>::try_from(g.to_kind(Kind::Double).reshape([-1])).expect("gradient to vec")
    }

    pub fn assert_close(got: &[f64], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= tol, "got {got:?}, want {want:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn diagnostics_by_hand() {
        // L1 = <(1,0), x> + <(2,0), y>, L2 = <(-1,1), x>, L3 = <(0,1), x>.
        let x = param(&[0.3, -0.2]);
        let y = param(&[1.0, 1.0]);
        let losses = [lin(&[1.0, 0.0], &x) + lin(&[2.0, 0.0], &y), lin(&[-1.0, 1.0], &x), lin(&[0.0, 1.0], &x)];
        let d = diagnostics(&losses, &[x.shallow_clone()]).unwrap();
        assert_close(&d.norms, &[1.0, 2f64.sqrt(), 1.0], 1e-9);
        // cos(1,2) = -1/sqrt2, cos(1,3) = 0, cos(2,3) = 1/sqrt2.
        assert_close(&d.cosines, &[-(0.5f64.sqrt()), 0.0, 0.5f64.sqrt()], 1e-7);
        assert!((d.conflict_rate - 1.0 / 3.0).abs() < 1e-12);
        // On (x, y) the first gradient is (1, 0, 2, 0): norm sqrt5; y unused by L2, L3 -> zeros.
        let d = diagnostics(&losses, &[x.shallow_clone(), y.shallow_clone()]).unwrap();
        assert_close(&d.norms, &[5f64.sqrt(), 2f64.sqrt(), 1.0], 1e-9);
        assert!(!x.grad().defined(), "diagnostics must not touch .grad");
    }

    #[test]
    fn accumulate_defines_then_adds() {
        let p = param(&[1.0, 2.0, 3.0, 4.0]).view([2, 2]).detach().set_requires_grad(true);
        let g = Tensor::from_slice(&[0.5f32, -1.0, 0.0, 2.0]).view([2, 2]);
        accumulate_grads(&[p.shallow_clone()], &[g.shallow_clone()]).unwrap();
        assert_close(&grad_vec(&p), &[0.5, -1.0, 0.0, 2.0], 0.0);
        accumulate_grads(&[p.shallow_clone()], &[g]).unwrap();
        assert_close(&grad_vec(&p), &[1.0, -2.0, 0.0, 4.0], 0.0);
    }

    #[test]
    fn scope_first_orders_without_duplicates() {
        let (a, b, c, h) = (param(&[1.0]), param(&[2.0]), param(&[3.0]), param(&[4.0]));
        let g = groups(&[&a, &b, &c], &[&c], &[&h]);
        let (all, n) = scope_first(&g, Scope::LastShared);
        let vals: Vec<f64> = all.iter().map(|t| t.double_value(&[0])).collect();
        assert_eq!((vals, n), (vec![3.0, 1.0, 2.0, 4.0], 1));
        let (all, n) = scope_first(&g, Scope::AllShared);
        let vals: Vec<f64> = all.iter().map(|t| t.double_value(&[0])).collect();
        assert_eq!((vals, n), (vec![1.0, 2.0, 3.0, 4.0], 3));
    }

    #[test]
    fn flatten_round_trip() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
        let b = Tensor::from_slice(&[7.0f32]);
        let flat = flatten(&[a.shallow_clone(), b.shallow_clone()]);
        assert_eq!(flat.size(), vec![7]);
        let back = unflatten(&flat, &[a.shallow_clone(), b.shallow_clone()]);
        assert!(back[0].equal(&a) && back[1].equal(&b));
    }

    #[test]
    fn names_parse_from_toml() {
        #[derive(Deserialize)]
        struct G {
            s: Vec<StrategyKind>,
        }
        let all = [
            "equal", "uncertainty", "gradnorm", "pcgrad", "static", "dwa", "rlw", "famo", "stch", "mgda", "mgda-ub", "cagrad",
            "nash-mtl", "imtl-g", "aligned-mtl", "upgrad", "dualproj", "config", "fairgrad", "db-mtl", "gradvac", "gradcraft",
        ];
        let g: G = toml::from_str(&format!("s = {all:?}")).unwrap();
        assert_eq!(g.s, StrategyKind::ALL);
        assert_eq!(StrategyKind::names(), all.to_vec());
        assert!(toml::from_str::<G>(r#"s = ["grad-norm"]"#).is_err());
    }
}
