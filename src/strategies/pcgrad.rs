//! PCGrad (Yu, Kumar, Gupta, Levine, Hausman and Finn, "Gradient Surgery
//! for Multi-Task Learning", NeurIPS 2020, <https://arxiv.org/abs/2001.06782>).
//!
//! g_t = grad of L_t over the shared parameters in scope. For each task t,
//! g'_t starts as g_t; for every other task j, in an order shuffled once per
//! step, if g'_t . g_j < 0 then g'_t -= (g'_t . g_j / ||g_j||^2) g_j. The
//! projection is always on the ORIGINAL g_j, as in the paper's algorithm and
//! code. The shared gradient is sum_t g'_t. Task-specific parameters keep
//! their own task's gradient (the plain sum over terms, which for a tower
//! reached by one term is that term's gradient); shared parameters outside
//! the scope get the plain sum too.
//!
//! The order comes from a ChaCha8 stream seeded by the run's seed, so a run
//! is reproducible. Cost: one gradient pass per loss term over every
//! parameter (each through its own head and the shared part), whatever the
//! scope; the scope only decides what is projected.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::combine::accumulate_weighted;
use super::gramian::Rows;
use crate::optim::GradsOnEntry;
use super::{
    accumulate_grads, reached_grads, scope_first, unflatten, BuildContext, Scope, StepInput, StepReport, Strategy, StrategyError,
};

fn d_scope() -> Scope {
    Scope::AllShared
}

/// `[strategies.pcgrad]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcGradConfig {
    /// `"all-shared"` (default, the paper's choice) or `"last-shared"`.
    #[serde(default = "d_scope")]
    pub scope: Scope,
}

impl Default for PcGradConfig {
    fn default() -> Self {
        PcGradConfig { scope: d_scope() }
    }
}

/// Stream id of PCGrad's order generator (independent of other seeded streams).
const ORDER_STREAM: u64 = 0x5043_4752_4144; // "PCGRAD"

pub struct PcGrad {
    scope: Scope,
    n_terms: usize,
    rng: ChaCha8Rng,
}

impl PcGrad {
    pub fn new(cfg: &PcGradConfig, ctx: BuildContext) -> Result<Self, StrategyError> {
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        rng.set_stream(ORDER_STREAM);
        Ok(PcGrad { scope: cfg.scope, n_terms: ctx.n_terms, rng })
    }

    fn order(&mut self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.n_terms).collect();
        order.shuffle(&mut self.rng);
        order
    }
}

/// The projected gradients g'_t of flat per-task gradients, visiting the
/// other tasks in `order`. A zero g_j never projects anything.
pub fn project(grads: &[Tensor], order: &[usize]) -> Vec<Tensor> {
    // Branch-free: coef = min(g'_t . g_j, 0) / ||g_j||^2 (0 when there is no
    // conflict, so g'_t is left bit-for-bit unchanged).
    let sq: Vec<Tensor> = grads.iter().map(|g| g.dot(g).clamp_min(f32::MIN_POSITIVE as f64)).collect();
    (0..grads.len())
        .map(|t| {
            let mut p = grads[t].shallow_clone();
            for &j in order.iter().filter(|&&j| j != t) {
                let coef = p.dot(&grads[j]).clamp_max(0.0) / &sq[j];
                // Not `-=`: tch's `-=` is in place and would overwrite g_t,
                // which later projections need in its original form.
                #[allow(clippy::assign_op_pattern)]
                {
                    p = p - coef * &grads[j];
                }
            }
            p
        })
        .collect()
}

/// sum_t g'_t of flat per-task gradients.
pub fn projected_sum(grads: &[Tensor], order: &[usize]) -> Tensor {
    project(grads, order).into_iter().reduce(|a, b| a + b).unwrap_or_else(|| Tensor::from(0.0f32))
}

impl Strategy for PcGrad {
    /// The combined gradient is added into `.grad` (`accumulate_weighted`).
    fn grads_on_entry(&self) -> GradsOnEntry {
        GradsOnEntry::Zeroed
    }

    fn backward(&mut self, input: &StepInput) -> Result<StepReport, StrategyError> {
        let losses = input.losses;
        let params = input.params;
        if losses.len() != self.n_terms {
            return Err(StrategyError::Step {
                strategy: "pcgrad",
                message: format!("{} loss terms given, {} expected", losses.len(), self.n_terms),
            });
        }
        if self.scope.params(params).is_empty() {
            return Err(StrategyError::Step {
                strategy: "pcgrad",
                message: format!(
                    "the model declares no {} parameters to project (strategies.pcgrad.scope)",
                    match self.scope {
                        Scope::LastShared => "last-shared",
                        Scope::AllShared => "shared",
                    }
                ),
            });
        }
        let order = self.order();
        // One pass per term over every parameter: the in-scope part is
        // projected and summed, everything else is summed as is.
        // A term's gradient stays undefined where it does not reach a
        // parameter (another head's): no zeros are allocated for it.
        let (all, n_scope) = scope_first(params, self.scope);
        let per_term = losses.iter().map(|l| reached_grads(l, &all)).collect::<Result<Vec<_>, _>>()?;
        let flat = Rows::new(per_term.iter().map(|g| &g[..n_scope]).collect(), &all[..n_scope]).flat();
        accumulate_grads(&all[..n_scope], &unflatten(&projected_sum(&flat, &order), &all[..n_scope]))?;
        let rest: Vec<Vec<Tensor>> = per_term.iter().map(|g| g[n_scope..].iter().map(|t| t.shallow_clone()).collect()).collect();
        accumulate_weighted(&all[n_scope..], &rest, &vec![1.0; losses.len()])?;
        Ok(StepReport::new(vec![1.0; losses.len()]))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use crate::optim::OptimSettings;
    use tch::Kind;

    fn build(scope: Scope, n: usize, seed: u64) -> PcGrad {
        let ctx = BuildContext { n_terms: n, optim: OptimSettings::default(), seed, device: tch::Device::Cpu };
        PcGrad::new(&PcGradConfig { scope }, ctx).unwrap()
    }

    #[test]
    fn textbook_projection_of_two_conflicting_gradients() {
        // g1 = (1, 0), g2 = (-1, 1): g1.g2 = -1 < 0.
        // g1' = g1 - (-1 / 2) g2 = (0.5, 0.5); g2' = g2 - (-1 / 1) g1 = (0, 1).
        // Shared gradient (0.5, 1.5); the heads keep their own gradients 2 and 3.
        for scope in [Scope::AllShared, Scope::LastShared] {
            let x = param(&[0.2, -0.7]);
            let (h1, h2) = (param(&[1.0]), param(&[1.0]));
            let losses = [lin(&[1.0, 0.0], &x) + lin(&[2.0], &h1), lin(&[-1.0, 1.0], &x) + lin(&[3.0], &h2)];
            let r = build(scope, 2, 1).backward(&StepInput::new(&losses, &groups(&[&x], &[&x], &[&h1, &h2]))).unwrap();
            assert_close(&grad_vec(&x), &[0.5, 1.5], 1e-7);
            assert_close(&grad_vec(&h1), &[2.0], 0.0);
            assert_close(&grad_vec(&h2), &[3.0], 0.0);
            assert_eq!(r.weights, vec![1.0, 1.0]);
        }
        let p = project(&[vec_t(&[1.0, 0.0]), vec_t(&[-1.0, 1.0])], &[1, 0]);
        assert_close(&Vec::<f64>::try_from(p[0].to_kind(Kind::Double)).unwrap(), &[0.5, 0.5], 1e-7);
        assert_close(&Vec::<f64>::try_from(p[1].to_kind(Kind::Double)).unwrap(), &[0.0, 1.0], 1e-7);
    }

    #[test]
    fn no_conflict_is_exactly_the_plain_sum() {
        let plain = {
            let x = param(&[0.2, -0.7]);
            (lin(&[1.0, 0.3], &x) + lin(&[0.5, 2.0], &x)).backward();
            grad_vec(&x)
        };
        for scope in [Scope::AllShared, Scope::LastShared] {
            let x = param(&[0.2, -0.7]);
            let losses = [lin(&[1.0, 0.3], &x), lin(&[0.5, 2.0], &x)];
            build(scope, 2, 3).backward(&StepInput::new(&losses, &groups(&[&x], &[&x], &[]))).unwrap();
            assert_close(&grad_vec(&x), &plain, 0.0);
        }
    }

    #[test]
    fn scope_decides_what_is_projected() {
        // Shared (a, b), last shared = b. L1 = <(1,0), a> + <(1,1), b>,
        // L2 = <(-1,1), a> + <(1,-2), b>.
        // last-shared: a gets the plain sum (0, 1); on b, h1.h2 = -1:
        //   h1' = (1,1) + (1/5)(1,-2) = (1.2, 0.6), h2' = (1,-2) + (1/2)(1,1) = (1.5, -1.5),
        //   sum (2.7, -0.9).
        // all-shared: v1 = (1,0,1,1), v2 = (-1,1,1,-2), v1.v2 = -2, |v1|^2 = 3, |v2|^2 = 7:
        //   v1' = v1 + (2/7) v2, v2' = v2 + (2/3) v1, sum = (8/21, 9/7, 62/21, -19/21).
        let run = |scope| {
            let a = param(&[0.0, 0.0]);
            let b = param(&[0.0, 0.0]);
            let losses = [lin(&[1.0, 0.0], &a) + lin(&[1.0, 1.0], &b), lin(&[-1.0, 1.0], &a) + lin(&[1.0, -2.0], &b)];
            build(scope, 2, 1).backward(&StepInput::new(&losses, &groups(&[&a, &b], &[&b], &[]))).unwrap();
            (grad_vec(&a), grad_vec(&b))
        };
        let (a, b) = run(Scope::LastShared);
        assert_close(&a, &[0.0, 1.0], 1e-7);
        assert_close(&b, &[2.7, -0.9], 1e-6);
        let (a, b) = run(Scope::AllShared);
        assert_close(&a, &[8.0 / 21.0, 9.0 / 7.0], 1e-6);
        assert_close(&b, &[62.0 / 21.0, -19.0 / 21.0], 1e-6);
    }

    /// Independent f64 implementation of the paper's algorithm.
    fn reference(g: &[Vec<f64>], order: &[usize]) -> Vec<f64> {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut total = vec![0.0; g[0].len()];
        for t in 0..g.len() {
            let mut p = g[t].clone();
            for &j in order {
                if j == t {
                    continue;
                }
                let d = dot(&p, &g[j]);
                if d < 0.0 {
                    let c = d / dot(&g[j], &g[j]);
                    for (pi, gj) in p.iter_mut().zip(&g[j]) {
                        *pi -= c * gj;
                    }
                }
            }
            for (s, pi) in total.iter_mut().zip(&p) {
                *s += pi;
            }
        }
        total
    }

    #[test]
    fn three_tasks_match_reference_in_every_order() {
        let g = vec![vec![1.0, 0.5, -0.2], vec![-0.8, 0.4, 0.3], vec![0.1, -1.0, 0.6]];
        let t: Vec<Tensor> = g.iter().map(|v| vec_t(&v.iter().map(|&x| x as f32).collect::<Vec<_>>())).collect();
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let mut distinct = vec![];
        for o in orders {
            let got = Vec::<f64>::try_from(projected_sum(&t, &o).to_kind(Kind::Double)).unwrap();
            let want = reference(&g, &o);
            assert_close(&got, &want, 1e-6);
            if !distinct.iter().any(|d: &Vec<f64>| d.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9)) {
                distinct.push(want);
            }
        }
        assert!(distinct.len() > 1, "the order should matter for these gradients");
    }

    #[test]
    fn order_is_shuffled_per_step_and_reproducible() {
        let mut a = build(Scope::AllShared, 4, 42);
        let mut b = build(Scope::AllShared, 4, 42);
        let sa: Vec<Vec<usize>> = (0..20).map(|_| a.order()).collect();
        let sb: Vec<Vec<usize>> = (0..20).map(|_| b.order()).collect();
        assert_eq!(sa, sb);
        assert!(sa.iter().any(|o| o != &sa[0]), "the order must change between steps");
        let mut c = build(Scope::AllShared, 4, 43);
        assert_ne!(sa, (0..20).map(|_| c.order()).collect::<Vec<_>>());
    }
}
