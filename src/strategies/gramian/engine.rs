//! The tensor side of the Gramian engine: per-term gradients on the scope,
//! G = J Jᵀ in f64, and the method's weights applied to the parameters'
//! `.grad` (shared: the weighted sum, task-specific: their own terms' sum).

use tch::{Device, Kind, Tensor};

use crate::optim::GradsOnEntry;
use super::{Aggregate, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::combine::accumulate_weighted;
use crate::strategies::equal::weighted_sum;
use crate::strategies::{
    accumulate_grads, flatten, grads_of, reached_grads, scope_first, unflatten, Scope, StepInput, StepReport, Strategy, StrategyError,
};

/// G = J Jᵀ, computed in f64, where row t of J is term t's gradients
/// `per_term[t]` (one tensor per parameter, an undefined tensor counting as
/// zero) laid end to end. Each entry is summed parameter by parameter
/// straight from the gradients: nothing is flattened, stacked or converted,
/// which for the every-shared-parameter scope (embedding tables included)
/// was most of the cost of G.
pub fn gram_of(per_term: &[&[Tensor]]) -> Result<Gram, tch::TchError> {
    let n = per_term.len();
    let mut data = vec![0.0; n * n];
    for i in 0..n {
        for j in i..n {
            let mut d = 0.0;
            for (a, b) in per_term[i].iter().zip(per_term[j]) {
                if a.defined() && b.defined() {
                    d += dot_of(a, b)?;
                }
            }
            data[i * n + j] = d;
            data[j * n + i] = d;
        }
    }
    // Non-finite entries (a diverged gradient) are kept as NaN for the caller to refuse.
    Ok(Gram::new(n, data).unwrap_or_else(|| Gram::identity(n).scaled(f64::NAN)))
}

/// <a, b> over every element, in f64.
fn dot_of(a: &Tensor, b: &Tensor) -> Result<f64, tch::TchError> {
    let fast = |t: &Tensor| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous();
    if fast(a) && fast(b) && a.numel() == b.numel() {
        // SAFETY: both are contiguous f32 CPU tensors of `numel` elements,
        // borrowed (so alive) for the whole call, and only read.
        let (x, y) = unsafe {
            (
                std::slice::from_raw_parts(a.data_ptr() as *const f32, a.numel()),
                std::slice::from_raw_parts(b.data_ptr() as *const f32, b.numel()),
            )
        };
        return Ok(dot_f64(x, y));
    }
    let (a, b) = (a.f_to_kind(Kind::Double)?.f_reshape([-1])?, b.f_to_kind(Kind::Double)?.f_reshape([-1])?);
    a.f_dot(&b)?.f_double_value(&[])
}

/// <x, y> with f64 products and sums, in eight interleaved partial sums (so
/// that the loop vectorises; the order is fixed, so the result is repeatable).
fn dot_f64(x: &[f32], y: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f64 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
    for (a, b) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] += f64::from(a[l]) * f64::from(b[l]);
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The rows of J, flattened only when a method asks for them (most need G
/// alone): term t's in-scope gradients end to end, zeros where it does not
/// reach a parameter.
pub struct Rows<'a> {
    parts: Vec<&'a [Tensor]>,
    like: &'a [Tensor],
}

impl<'a> Rows<'a> {
    /// `parts[t]`: term t's gradient of each tensor of `like` (undefined = zero).
    pub fn new(parts: Vec<&'a [Tensor]>, like: &'a [Tensor]) -> Self {
        Rows { parts, like }
    }

    /// T, the number of rows.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Each row as one flat tensor.
    pub fn flat(&self) -> Vec<Tensor> {
        self.parts
            .iter()
            .map(|g| {
                let full: Vec<Tensor> =
                    g.iter().zip(self.like).map(|(g, x)| if g.defined() { g.shallow_clone() } else { x.zeros_like() }).collect();
                flatten(&full)
            })
            .collect()
    }

    /// G of these rows.
    pub fn gram(&self) -> Result<Gram, tch::TchError> {
        gram_of(&self.parts)
    }
}

/// A Gramian method on a scope: the [`Strategy`] every Gramian method is.
pub struct GramianStrategy {
    name: &'static str,
    scope: GramScope,
    n_terms: usize,
    method: Box<dyn GramMethod>,
}

impl GramianStrategy {
    /// `name` is the strategy's name (its config section and error label).
    pub fn new(name: &'static str, scope: GramScope, n_terms: usize, method: Box<dyn GramMethod>) -> Self {
        GramianStrategy { name, scope, n_terms, method }
    }

    fn err(&self, message: String) -> StrategyError {
        StrategyError::Step { strategy: self.name, message }
    }
}

impl Strategy for GramianStrategy {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let losses = input.losses;
        if losses.len() != self.n_terms {
            return Err(self.err(format!("{} loss terms given, {} expected", losses.len(), self.n_terms)));
        }
        let param_scope = if self.scope == GramScope::LastShared { Scope::LastShared } else { Scope::AllShared };
        // params: the scope's parameters first (all shared ones for every
        // scope but the last shared layer), then the other shared ones, then
        // the task-specific ones.
        let (params, n_scope) = scope_first(input.params, param_scope);
        let n_shared = input.params.shared.len();
        let rep = self.representation(input, n_scope)?;
        // J's rows: the representation's gradient, or that of the first `k` parameters.
        let k = if rep.is_some() { 0 } else { n_scope };
        // One pass per term over J's tensors and the task-specific parameters
        // (a term reaches only its own head's: the others stay undefined).
        let inputs: Vec<Tensor> = rep.iter().copied().chain(&params[..k]).chain(&params[n_shared..]).map(|t| t.shallow_clone()).collect();
        let mut per_term = losses.iter().map(|l| reached_grads(l, &inputs)).collect::<Result<Vec<_>, _>>()?;
        if rep.is_some() {
            // The representation may be a view (MMOE's batch-last layout), and
            // so its gradient: one contiguous copy per term keeps the dot
            // products of the Gramian on their fast path.
            for g in per_term.iter_mut().filter(|g| g[0].defined()) {
                g[0] = g[0].contiguous();
            }
        }
        let j_len = if rep.is_some() { 1 } else { k };
        let rows = Rows::new(per_term.iter().map(|g| &g[..j_len]).collect(), &inputs[..j_len]);
        let gram = rows.gram()?;
        if gram.data().iter().any(|v| !v.is_finite()) {
            return Err(self.err("the per-term gradients are not finite".into()));
        }
        let values = input.loss_values()?;
        let weights = match self.method.aggregate(&rows, &gram, &GramContext { losses: &values })? {
            Aggregate::Weights(w) => {
                self.check(&w)?;
                // The scope's parameters: sum_t w_t g_t from the passes above.
                if rep.is_none() {
                    accumulate_weighted(&params[..k], &slice(&per_term, 0..k), &w)?;
                }
                w
            }
            Aggregate::Direction { direction, weights } if rep.is_none() => {
                self.check(&weights)?;
                accumulate_grads(&params[..k], &unflatten(&direction, &params[..k]))?;
                weights
            }
            Aggregate::Direction { .. } => {
                return Err(self.err("a direction needs a parameter scope, not the representation".into()))
            }
        };
        // The shared parameters outside the scope (below the last shared
        // layer, or under the representation): one pass of sum_t w_t L_t.
        if k < n_shared {
            let g = grads_of(&weighted_sum(losses, &weights), &params[k..n_shared])?;
            accumulate_grads(&params[k..n_shared], &g)?;
        }
        // Task-specific parameters: their own terms' plain sum.
        let task = j_len..inputs.len();
        accumulate_weighted(&params[n_shared..], &slice(&per_term, task), &vec![1.0; self.n_terms])?;
        let last_shared_gram = match self.scope {
            GramScope::LastShared => Some(gram),
            // The last shared layer is a block of J's columns: its G is the
            // same sum over fewer parameters.
            GramScope::AllShared => Some(last_shared_block(&per_term, &params[..k], &input.params.last_shared)?),
            GramScope::Representation => None,
        };
        Ok(StepReport { last_shared_gram, ..StepReport::new(weights) })
    }

    fn reports_last_shared_gram(&self) -> bool {
        self.scope != GramScope::Representation
    }

    /// The combined gradient is added into `.grad` (`accumulate_weighted`).
    fn grads_on_entry(&self) -> GradsOnEntry {
        GradsOnEntry::Zeroed
    }
}

/// G on the `last` parameters, from per-term gradients of `params` (a
/// superset of `last`, in the same leading positions of every term's list).
fn last_shared_block(per_term: &[Vec<Tensor>], params: &[Tensor], last: &[Tensor]) -> Result<Gram, tch::TchError> {
    let wanted: std::collections::HashSet<usize> = last.iter().map(|t| t.data_ptr() as usize).collect();
    let at: Vec<usize> = params.iter().enumerate().filter(|(_, p)| wanted.contains(&(p.data_ptr() as usize))).map(|(i, _)| i).collect();
    let picked: Vec<Vec<Tensor>> = per_term.iter().map(|g| at.iter().map(|&i| g[i].shallow_clone()).collect()).collect();
    gram_of(&picked.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// Entries `range` of every term's gradient list.
fn slice(per_term: &[Vec<Tensor>], range: std::ops::Range<usize>) -> Vec<Vec<Tensor>> {
    per_term.iter().map(|g| g[range.clone()].iter().map(|t| t.shallow_clone()).collect()).collect()
}

impl GramianStrategy {
    /// The forward's representation when the scope is it; an error when the
    /// model exposes none, or when a parameter scope is empty.
    fn representation<'a>(&self, input: &StepInput<'a>, n_scope: usize) -> Result<Option<&'a Tensor>, StrategyError> {
        match self.scope {
            GramScope::Representation => input.representation.map(Some).ok_or_else(|| {
                self.err(format!("the model exposes no shared representation (strategies.{}.scope)", self.name))
            }),
            _ if n_scope == 0 => Err(self.err(format!(
                "the model declares no {} parameters (strategies.{}.scope)",
                self.scope.name(),
                self.name
            ))),
            _ => Ok(None),
        }
    }

    fn check(&self, w: &[f64]) -> Result<(), StrategyError> {
        if w.len() != self.n_terms || w.iter().any(|v| !v.is_finite()) {
            return Err(self.err(format!("the method returned weights {w:?} for {} loss terms", self.n_terms)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategies::gramian::mgda::{Mgda, MgdaConfig};
    use crate::strategies::testing::*;

    fn mgda(scope: GramScope) -> GramianStrategy {
        GramianStrategy::new("mgda", scope, 2, Box::new(Mgda::new(&MgdaConfig::default(), "mgda", 2).unwrap()))
    }

    #[test]
    fn shared_get_the_weighted_sum_and_heads_their_own_gradient() {
        // Shared x; L1 = <(1,0), x> + 2 h1, L2 = <(0,2), x> + 3 h2. On x:
        // g1 = (1, 0), g2 = (0, 2): MGDA weights (4/5, 1/5), shared gradient (0.8, 0.4).
        for scope in [GramScope::AllShared, GramScope::LastShared] {
            let x = param(&[0.3, -0.1]);
            let (h1, h2) = (param(&[1.0]), param(&[1.0]));
            let losses = [lin(&[1.0, 0.0], &x) + lin(&[2.0], &h1), lin(&[0.0, 2.0], &x) + lin(&[3.0], &h2)];
            let g = groups(&[&x], &[&x], &[&h1, &h2]);
            let r = mgda(scope).backward(&StepInput::new(&losses, &g)).unwrap();
            assert_close(&r.weights, &[0.8, 0.2], 1e-12);
            assert_close(&grad_vec(&x), &[0.8, 0.4], 1e-7);
            assert_close(&grad_vec(&h1), &[2.0], 0.0);
            assert_close(&grad_vec(&h2), &[3.0], 0.0);
        }
    }

    #[test]
    fn the_reported_last_shared_gramian_is_the_traces() {
        // Shared x (not the last layer) and y (the last); heads h1, h2.
        // L1 = <(1,2), x> + <(3,-1), y> + 2 h1, L2 = <(0,1), x> + <(1,1), y> + 3 h2.
        for scope in [GramScope::AllShared, GramScope::LastShared] {
            let (x, y) = (param(&[0.3, -0.1]), param(&[1.0, 2.0]));
            let (h1, h2) = (param(&[1.0]), param(&[1.0]));
            let losses = [
                lin(&[1.0, 2.0], &x) + lin(&[3.0, -1.0], &y) + lin(&[2.0], &h1),
                lin(&[0.0, 1.0], &x) + lin(&[1.0, 1.0], &y) + lin(&[3.0], &h2),
            ];
            let g = groups(&[&x, &y], &[&y], &[&h1, &h2]);
            let want = crate::strategies::diagnostics(&losses, &g.last_shared).unwrap();
            let mut s = mgda(scope);
            assert!(s.reports_last_shared_gram());
            let r = s.backward(&StepInput::new(&losses, &g)).unwrap();
            let gram = r.last_shared_gram.expect("a last-shared Gramian");
            // On y: g1 = (3, -1), g2 = (1, 1): G = [[10, 2], [2, 2]].
            assert_eq!(gram.data(), &[10.0, 2.0, 2.0, 2.0]);
            assert_eq!(gram.diagnostics(), want);
        }
        assert!(!mgda(GramScope::Representation).reports_last_shared_gram());
    }

    #[test]
    fn representation_scope_weighs_from_the_representation_gradients() {
        // z = x * 1 (the representation); L1 = <(1,0), z>, L2 = <(0,2), z> + <(5,5), y>
        // with y shared but not under z. On z the weights are (4/5, 1/5); y gets
        // 1/5 (5, 5) = (1, 1).
        let x = param(&[0.3, -0.1]);
        let y = param(&[0.0, 0.0]);
        let z = &x * 1.0;
        let losses = [lin(&[1.0, 0.0], &z), lin(&[0.0, 2.0], &z) + lin(&[5.0, 5.0], &y)];
        let g = groups(&[&x, &y], &[&x], &[]);
        let mut s = mgda(GramScope::Representation);
        let e = s.backward(&StepInput::new(&losses, &g)).err().unwrap().to_string();
        assert!(e.contains("no shared representation") && e.contains("strategies.mgda.scope"), "{e}");
        let r = s.backward(&StepInput::new(&losses, &g).with_representation(Some(&z))).unwrap();
        assert_close(&r.weights, &[0.8, 0.2], 1e-12);
        assert_close(&grad_vec(&x), &[0.8, 0.4], 1e-7);
        assert_close(&grad_vec(&y), &[1.0, 1.0], 1e-7);
    }

    #[test]
    fn gramian_in_f64_matches_the_rows() {
        let rows = [vec_t(&[1.0, 2.0, 0.0]), vec_t(&[-1.0, 0.5, 3.0])];
        let g = gram_of(&[&rows[..1], &rows[1..]]).unwrap();
        assert_eq!(g.data(), &[5.0, 0.0, 0.0, 10.25]);
        // Split over parameters, with a term that does not reach one (undefined)
        // and an f64 gradient: rows (1, 2, 0 | 4, 0.5 ...) and (-1, 0.5, 3 | 0 ...).
        let long: Vec<f32> = (0..21).map(|i| i as f32 * 0.25 - 2.0).collect();
        let a = [vec_t(&[1.0, 2.0, 0.0]), vec_t(&long), Tensor::from_slice(&[2.0f64])];
        let b = [vec_t(&[-1.0, 0.5, 3.0]), Tensor::new(), Tensor::from_slice(&[-3.0f64])];
        let g = gram_of(&[&a[..], &b[..]]).unwrap();
        let ll: f64 = long.iter().map(|v| f64::from(*v) * f64::from(*v)).sum();
        assert_eq!(g.data(), &[5.0 + ll + 4.0, -6.0, -6.0, 10.25 + 9.0]);
    }
}
