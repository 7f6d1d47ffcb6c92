//! The tensor side of the Gramian engine: per-term gradients on the scope,
//! G = J Jᵀ in f64, and the method's weights applied to the parameters'
//! `.grad` (shared: the weighted sum, task-specific: their own terms' sum).

use tch::{Kind, Tensor};

use super::{Aggregate, Gram, GramContext, GramMethod, GramScope};
use crate::strategies::combine::accumulate_weighted;
use crate::strategies::equal::weighted_sum;
use crate::strategies::{
    accumulate_grads, flatten, grads_of, per_term_grads, scope_first, unflatten, Scope, StepInput, StepReport, Strategy, StrategyError,
};

/// G = J Jᵀ of flat gradients (one row each), computed in f64.
pub fn gram_of(rows: &[Tensor]) -> Result<Gram, tch::TchError> {
    let n = rows.len();
    if n == 0 {
        return Ok(Gram::identity(0));
    }
    let j = Tensor::f_stack(&rows.iter().map(|r| r.detach().reshape([-1]).to_kind(Kind::Double)).collect::<Vec<_>>(), 0)?;
    let g = j.f_mm(&j.tr())?.to_device(tch::Device::Cpu).reshape([-1]);
    let data = Vec::<f64>::try_from(&g)?;
    // Non-finite entries (a diverged gradient) are kept as NaN for the caller to refuse.
    Ok(Gram::new(n, data).unwrap_or_else(|| Gram::identity(n).scaled(f64::NAN)))
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

/// Entries `range` of every term's gradient list.
fn slice(per_term: &[Vec<Tensor>], range: std::ops::Range<usize>) -> Vec<Vec<Tensor>> {
    per_term.iter().map(|g| g[range.clone()].iter().map(|t| t.shallow_clone()).collect()).collect()
}

impl Strategy for GramianStrategy {
    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let losses = input.losses;
        if losses.len() != self.n_terms {
            return Err(self.err(format!("{} loss terms given, {} expected", losses.len(), self.n_terms)));
        }
        let param_scope = if self.scope == GramScope::LastShared { Scope::LastShared } else { Scope::AllShared };
        let (params, n_scope) = scope_first(input.params, param_scope);
        let n_shared = input.params.shared.len();
        let n_task = params.len() - n_shared;
        let rep = self.representation(input, n_scope)?;
        // Rows of J: the representation's gradient, or that of the first `k` parameters.
        let k = if rep.is_some() { 0 } else { n_scope };
        // All shared: one pass per term over every parameter. Otherwise the
        // per-term passes cover the scope and the task-specific parameters
        // (through the heads only), and the shared part gets one weighted pass.
        let full = self.scope == GramScope::AllShared;
        let tail = if full { k } else { n_shared };
        let inputs: Vec<Tensor> =
            rep.iter().copied().chain(&params[..k]).chain(&params[tail..]).map(|t| t.shallow_clone()).collect();
        let per_term = per_term_grads(losses, &inputs)?;
        let offset = usize::from(rep.is_some());
        let rows: Vec<Tensor> = match rep {
            Some(_) => per_term.iter().map(|g| g[0].reshape([-1])).collect(),
            None => per_term.iter().map(|g| flatten(&g[..k])).collect(),
        };
        let gram = gram_of(&rows)?;
        if gram.data().iter().any(|v| !v.is_finite()) {
            return Err(self.err("the per-term gradients are not finite".into()));
        }
        let values: Vec<f64> = losses.iter().map(|l| l.double_value(&[])).collect();
        let (weights, direction) = match self.method.aggregate(&rows, &gram, &GramContext { losses: &values })? {
            Aggregate::Weights(w) => (w, None),
            Aggregate::Direction { direction, weights } if rep.is_none() => (weights, Some(direction)),
            Aggregate::Direction { .. } => {
                return Err(self.err("a direction needs a parameter scope, not the representation".into()))
            }
        };
        self.check(&weights)?;
        // Per term: the gradients of params[..k] ++ params[tail..].
        let grads = slice(&per_term, offset..offset + k + (params.len() - tail));
        let from = if direction.is_some() { k } else { 0 };
        if let Some(d) = direction {
            accumulate_grads(&params[..k], &unflatten(&d, &params[..k]))?;
        }
        if full {
            accumulate_weighted(&params[from..n_shared], &slice(&grads, from..n_shared), &weights)?;
        } else {
            let g = grads_of(&weighted_sum(losses, &weights), &params[from..n_shared])?;
            accumulate_grads(&params[from..n_shared], &g)?;
        }
        let last = grads.first().map_or(0, |g| g.len());
        accumulate_weighted(&params[n_shared..], &slice(&grads, last - n_task..last), &vec![1.0; self.n_terms])?;
        Ok(StepReport { weights })
    }
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
        let g = gram_of(&rows).unwrap();
        assert_eq!(g.data(), &[5.0, 0.0, 0.0, 10.25]);
    }
}
