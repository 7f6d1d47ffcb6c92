//! Gradient Vaccine (Wang, Tsvetkov, Firat and Cao, "Gradient Vaccine:
//! Investigating and Improving Multi-task Optimization in Massively
//! Multilingual Models", ICLR 2021, <https://arxiv.org/abs/2010.05874>;
//! Algorithm 1).
//!
//! Each ordered task pair (i, j) keeps a cosine target phi_hat_ij, an EMA of
//! the cosines seen (init 0, decay beta = 0.01 as in the paper). Per step,
//! for each task i, g'_i starts as g_i; for each other task j in an order
//! shuffled per task and step:
//!
//!   phi = cos(g'_i, g_j);
//!   if phi < phi_hat_ij:
//!     g'_i += ||g'_i|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2))
//!             / (||g_j|| sqrt(1 - phi_hat^2)) g_j
//!   phi_hat_ij = (1 - beta) phi_hat_ij + beta phi.
//!
//! The update raises cos(g'_i, g_j) to exactly phi_hat_ij. The shared
//! gradient is sum_i g'_i. As in the paper the target moves every step;
//! LibMTL's `GradVac.py` moves it only when the target is violated, which
//! lets targets fall but never rise again.
//!
//! Every g'_i is a combination sum_k c_ik g_k of the original gradients, so
//! all of the above is computed from the Gramian G alone: cos(g'_i, g_j) =
//! (c_i G)_j / sqrt(c_i G c_i^T G_jj). The result is the weight vector
//! sum_i c_i on the per-term gradients, which is what the traces record.
//! 1e-8 guards the two denominators as in LibMTL; a zero gradient never
//! moves anything. The orders come from a ChaCha8 stream seeded by the
//! run's seed (its own stream id). Task-specific parameters keep their own
//! terms' gradients (the engine's rule).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::gramian::{Gram, GramContext, GramMethod, GramScope};
use super::StrategyError;

/// Guard added to the cosine's and the step's denominators.
const GUARD: f64 = 1e-8;

fn d_beta() -> f64 {
    0.01
}
fn d_scope() -> GramScope {
    GramScope::AllShared
}

/// `[strategies.gradvac]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradVacConfig {
    /// EMA decay of the cosine targets (paper: 0.01).
    #[serde(default = "d_beta")]
    pub beta: f64,
    /// The gradients compared: `"all-shared"` (default, the paper's whole
    /// model), `"last-shared"` or `"representation"`.
    #[serde(default = "d_scope")]
    pub scope: GramScope,
}

impl Default for GradVacConfig {
    fn default() -> Self {
        GradVacConfig { beta: d_beta(), scope: d_scope() }
    }
}

impl GradVacConfig {
    /// Range checks; the error names the key (without `strategies.gradvac.`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.beta.is_finite() && self.beta > 0.0 && self.beta <= 1.0) {
            return Err(("beta", format!("must lie in (0, 1], got {}", self.beta)));
        }
        Ok(())
    }
}

/// The cosine targets and the order generator.
#[derive(Debug, Clone)]
pub struct GradVacState {
    beta: f64,
    n: usize,
    /// phi_hat, row-major n x n (the diagonal is unused).
    targets: Vec<f64>,
    rng: ChaCha8Rng,
}

/// Stream id of GradVac's order generator.
const ORDER_STREAM: u64 = 0x4752_4144_5641_43; // "GRADVAC"

fn dot_row(c: &[f64], g: &[f64], n: usize, j: usize) -> f64 {
    (0..n).map(|k| c[k] * g[k * n + j]).sum()
}

fn quad(c: &[f64], g: &[f64], n: usize) -> f64 {
    (0..n).map(|j| c[j] * dot_row(c, g, n, j)).sum()
}

impl GradVacState {
    pub fn new(cfg: &GradVacConfig, n_terms: usize, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(ORDER_STREAM);
        GradVacState { beta: cfg.beta, n: n_terms, targets: vec![0.0; n_terms * n_terms], rng }
    }

    /// phi_hat_ij.
    pub fn target(&self, i: usize, j: usize) -> f64 {
        self.targets[i * self.n + j]
    }

    /// One step on the Gramian `g` (row-major n x n) visiting the other tasks
    /// in the orders `orders[i]`; returns the weights sum_i c_i.
    pub fn step_in_order(&mut self, g: &[f64], orders: &[Vec<usize>]) -> Vec<f64> {
        let n = self.n;
        let mut total = vec![0.0; n];
        for (i, order) in orders.iter().enumerate() {
            let mut c = vec![0.0; n];
            c[i] = 1.0;
            for &j in order.iter().filter(|&&j| j != i) {
                let norm_j = g[j * n + j].max(0.0).sqrt();
                let norm_p = quad(&c, g, n).max(0.0).sqrt();
                if norm_j == 0.0 || norm_p == 0.0 {
                    continue;
                }
                let phi = dot_row(&c, g, n, j) / (norm_p * norm_j + GUARD);
                let target = self.targets[i * n + j];
                if phi < target {
                    let s = (1.0 - target * target).max(0.0).sqrt();
                    let w = norm_p * (target * (1.0 - phi * phi).max(0.0).sqrt() - phi * s) / (norm_j * s + GUARD);
                    c[j] += w;
                }
                self.targets[i * n + j] = (1.0 - self.beta) * target + self.beta * phi;
            }
            for (t, ci) in total.iter_mut().zip(&c) {
                *t += ci;
            }
        }
        total
    }

    /// One step with orders shuffled from the run's seed.
    pub fn step(&mut self, g: &[f64]) -> Vec<f64> {
        let orders: Vec<Vec<usize>> = (0..self.n)
            .map(|i| {
                let mut o: Vec<usize> = (0..self.n).filter(|&j| j != i).collect();
                o.shuffle(&mut self.rng);
                o
            })
            .collect();
        self.step_in_order(g, &orders)
    }
}

/// GradVac on the Gramian engine.
pub struct GradVac {
    state: GradVacState,
}

impl GradVac {
    pub fn new(cfg: &GradVacConfig, n_terms: usize, seed: u64) -> Self {
        GradVac { state: GradVacState::new(cfg, n_terms, seed) }
    }
}

impl GramMethod for GradVac {
    fn weights(&mut self, gram: &Gram, _ctx: &GramContext) -> Result<Vec<f64>, StrategyError> {
        Ok(self.state.step(gram.data()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::assert_close;
    use super::*;

    fn gram(rows: &[Vec<f64>]) -> Vec<f64> {
        let n = rows.len();
        let mut g = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum();
            }
        }
        g
    }

    /// The paper's algorithm on explicit vectors (independent of the Gramian form).
    fn reference(rows: &[Vec<f64>], targets: &mut [Vec<f64>], beta: f64, orders: &[Vec<usize>]) -> Vec<f64> {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let mut total = vec![0.0; rows[0].len()];
        for (i, order) in orders.iter().enumerate() {
            let mut p = rows[i].clone();
            for &j in order {
                let (np, nj) = (dot(&p, &p).sqrt(), dot(&rows[j], &rows[j]).sqrt());
                let phi = dot(&p, &rows[j]) / (np * nj + GUARD);
                let t = targets[i][j];
                if phi < t {
                    let w = np * (t * (1.0 - phi * phi).sqrt() - phi * (1.0 - t * t).sqrt()) / (nj * (1.0 - t * t).sqrt() + GUARD);
                    for (pk, gk) in p.iter_mut().zip(&rows[j]) {
                        *pk += w * gk;
                    }
                }
                targets[i][j] = (1.0 - beta) * t + beta * phi;
            }
            for (s, pk) in total.iter_mut().zip(&p) {
                *s += pk;
            }
        }
        total
    }

    #[test]
    fn two_conflicting_gradients_by_hand() {
        // g1 = (1, 0), g2 = (-1, 1): cos = -1/sqrt2 < 0 = target, for both orders.
        // With target 0 the update is w = ||g'|| (0 - phi) / ||g_j|| (it makes them orthogonal):
        // g1' = g1 + (1 * (1/sqrt2) / sqrt2) g2 = g1 + g2 / 2 = (0.5, 0.5);
        // g2' = g2 + (sqrt2 * (1/sqrt2) / 1) g1 = g2 + g1 = (0, 1).
        // Weights on (g1, g2): (1 + 1, 1/2 + 1) = (2, 1.5). Targets: beta * phi = -0.01/sqrt2.
        let mut s = GradVacState::new(&GradVacConfig::default(), 2, 1);
        let g = gram(&[vec![1.0, 0.0], vec![-1.0, 1.0]]);
        let w = s.step_in_order(&g, &[vec![1], vec![0]]);
        assert_close(&w, &[2.0, 1.5], 1e-7);
        assert_close(&[s.target(0, 1), s.target(1, 0)], &[-0.01 / 2f64.sqrt(), -0.01 / 2f64.sqrt()], 1e-9);
        // The combined gradient 2 g1 + 1.5 g2 = (0.5, 1.5) = g1' + g2'; each g'_i is orthogonal to g_j.
    }

    #[test]
    fn raises_the_cosine_to_a_positive_target() {
        // Target 0.5 for (0, 1), aligned-but-not-enough gradients g1 = (1, 0), g2 = (1, 1)/sqrt2 * 2
        // (cos = 1/sqrt2 > 0.5: no change), then g2 = (0, 1) (cos 0 < 0.5: raised to exactly 0.5).
        let mut s = GradVacState::new(&GradVacConfig { beta: 1.0, ..Default::default() }, 2, 1);
        s.targets[1] = 0.5;
        let w = s.step_in_order(&gram(&[vec![1.0, 0.0], vec![2f64.sqrt(), 2f64.sqrt()]]), &[vec![1], vec![]]);
        assert_close(&w, &[1.0, 1.0], 0.0);
        // beta = 1: the target became the cosine seen, 1/sqrt2.
        assert!((s.target(0, 1) - 0.5f64.sqrt()).abs() < 1e-7);
        s.targets[1] = 0.5;
        let w = s.step_in_order(&gram(&[vec![1.0, 0.0], vec![0.0, 1.0]]), &[vec![1], vec![]]);
        // w = 1 * (0.5 * 1 - 0) / (1 * sqrt(0.75)) = 1/sqrt3; cos((1, 1/sqrt3), (0, 1)) = 0.5.
        assert_close(&w, &[1.0, 1.0 + 1.0 / 3f64.sqrt()], 1e-7);
        let (a, b) = (1.0, 1.0 / 3f64.sqrt());
        assert!((b / (a * a + b * b).sqrt() - 0.5).abs() < 1e-7);
    }

    #[test]
    fn matches_the_vector_algorithm_over_many_steps() {
        let rows = vec![vec![1.0, 0.5, -0.2, 0.3], vec![-0.8, 0.4, 0.3, -0.1], vec![0.1, 1.0, 0.6, 0.2]];
        let orders = vec![vec![2, 1], vec![0, 2], vec![1, 0]];
        let mut s = GradVacState::new(&GradVacConfig { beta: 0.3, ..Default::default() }, 3, 1);
        let mut targets = vec![vec![0.0; 3]; 3];
        for step in 0..5 {
            // Scale the gradients a little every step so the targets see varied cosines.
            let r: Vec<Vec<f64>> = rows.iter().enumerate().map(|(i, v)| v.iter().map(|x| x * (1.0 + 0.1 * (i + step) as f64)).collect()).collect();
            let r = if step % 2 == 1 { vec![r[0].clone(), r[2].clone(), r[1].clone()] } else { r };
            let want = reference(&r, &mut targets, 0.3, &orders);
            let w = s.step_in_order(&gram(&r), &orders);
            let got: Vec<f64> = (0..4).map(|k| (0..3).map(|t| w[t] * r[t][k]).sum()).collect();
            assert_close(&got, &want, 1e-9);
            for i in 0..3 {
                for j in 0..3 {
                    if i != j {
                        assert!((s.target(i, j) - targets[i][j]).abs() < 1e-12);
                    }
                }
            }
        }
        assert!(targets.iter().flatten().any(|t| *t > 0.0) && targets.iter().flatten().any(|t| *t < 0.0));
    }

    #[test]
    fn zero_gradients_move_nothing_and_orders_are_seeded() {
        let mut s = GradVacState::new(&GradVacConfig::default(), 2, 1);
        assert_eq!(s.step_in_order(&gram(&[vec![0.0, 0.0], vec![-1.0, 1.0]]), &[vec![1], vec![0]]), vec![1.0, 1.0]);
        let g = gram(&[vec![1.0, 0.0, 0.0], vec![-1.0, 1.0, 0.0], vec![0.5, -1.0, 0.2]]);
        let (mut a, mut b) = (GradVacState::new(&GradVacConfig::default(), 3, 4), GradVacState::new(&GradVacConfig::default(), 3, 4));
        for _ in 0..5 {
            assert_eq!(a.step(&g), b.step(&g));
        }
        assert!(GradVacConfig { beta: 0.0, ..Default::default() }.validate().is_err());
        assert!(GradVacConfig { beta: 1.5, ..Default::default() }.validate().is_err());
        assert!(GradVacConfig::default().validate().is_ok());
    }

    #[test]
    fn through_the_engine_shared_get_the_vaccinated_sum_and_heads_their_own() {
        use super::super::gramian::GramianStrategy;
        use super::super::testing::*;
        use super::super::StepInput;
        use crate::strategies::Strategy;
        // The hand case above on a shared x, with heads: x.grad = 2 g1 + 1.5 g2 = (0.5, 1.5).
        let x = param(&[0.2, -0.7]);
        let (h1, h2) = (param(&[1.0]), param(&[1.0]));
        let losses = [lin(&[1.0, 0.0], &x) + lin(&[2.0], &h1), lin(&[-1.0, 1.0], &x) + lin(&[3.0], &h2)];
        let g = groups(&[&x], &[&x], &[&h1, &h2]);
        let cfg = GradVacConfig::default();
        let mut s = GramianStrategy::new("gradvac", cfg.scope, 2, Box::new(GradVac::new(&cfg, 2, 1)));
        let r = s.backward(&StepInput::new(&losses, &g)).unwrap();
        assert_close(&r.weights, &[2.0, 1.5], 1e-6);
        assert_close(&grad_vec(&x), &[0.5, 1.5], 1e-6);
        assert_close(&grad_vec(&h1), &[2.0], 0.0);
        assert_close(&grad_vec(&h2), &[3.0], 0.0);
    }
}
