//! Optimisers: Adam (fused on CPU, [`fused_adam`]; libtorch's elsewhere)
//! and SGD from libtorch, Adagrad written out here (tch has none), all with
//! weight decay and global-norm gradient clipping.
//!
//! Below both the training loop and the strategies (which step their own
//! learned weights): it imports neither, and each hands it an
//! [`OptimSettings`], not its whole configuration.

pub mod fused_adam;
pub mod grads;

use serde::{Deserialize, Serialize};
use tch::{nn, nn::OptimizerConfig, Tensor};

use fused_adam::{AdamConfig, FusedAdam};
use grads::GradClearer;
pub use grads::GradsOnEntry;

/// The optimiser a grid file names (`train.optimizer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Adagrad,
    Sgd,
}

/// What an optimiser is built from: its kind and hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimSettings {
    pub kind: OptimizerKind,
    pub lr: f64,
    /// Adam's first-moment decay.
    pub beta1: f64,
    /// Adam's second-moment decay.
    pub beta2: f64,
    /// Adam's denominator term.
    pub eps: f64,
    /// L2 weight decay, added to the gradient.
    pub weight_decay: f64,
    /// SGD momentum.
    pub momentum: f64,
}

impl OptimSettings {
    /// Adam at 0.005 with torch's betas and epsilon, no decay: the defaults
    /// of `[train]`.
    pub const DEFAULT: OptimSettings =
        OptimSettings { kind: OptimizerKind::Adam, lr: 0.005, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, momentum: 0.0 };
}

impl Default for OptimSettings {
    fn default() -> Self {
        OptimSettings::DEFAULT
    }
}

/// An optimiser, with the means to reset its parameters' gradients
/// either way a step wants ([`GradsOnEntry`]).
pub struct Optimizer {
    inner: Inner,
    clearer: GradClearer,
}

enum Inner {
    Torch(nn::Optimizer),
    Adagrad(Adagrad),
    FusedAdam(FusedAdam),
}

/// Adagrad (Duchi et al. 2011): sum += g^2; p -= lr * g / (sqrt(sum) + eps).
pub struct Adagrad {
    params: Vec<Tensor>,
    sums: Vec<Tensor>,
    lr: f64,
    eps: f64,
    weight_decay: f64,
}

impl Optimizer {
    /// An optimiser over the trainable variables of `vs`.
    pub fn new(vs: &nn::VarStore, cfg: &OptimSettings) -> Result<Self, tch::TchError> {
        Ok(Optimizer { inner: Inner::new(vs, cfg)?, clearer: GradClearer::new(&vs.trainable_variables())? })
    }

    /// Resets the gradients to the state `to` before a step's backward.
    pub fn reset_grads(&mut self, to: GradsOnEntry) -> Result<(), tch::TchError> {
        match to {
            GradsOnEntry::Undefined => self.clearer.clear(),
            GradsOnEntry::Zeroed => {
                self.zero_grad();
                Ok(())
            }
        }
    }

    /// Zeroes the gradients in place (libtorch's own optimisers undefine them).
    pub fn zero_grad(&mut self) {
        match &mut self.inner {
            Inner::Torch(o) => o.zero_grad(),
            Inner::FusedAdam(a) => a.zero_grad(),
            Inner::Adagrad(a) => grads::zero_in_place(&mut a.params),
        }
    }

    pub fn clip_grad_norm(&mut self, max: f64) {
        match &mut self.inner {
            Inner::Torch(o) => o.clip_grad_norm(max),
            Inner::Adagrad(a) => clip_grad_norm(&a.params, max),
            Inner::FusedAdam(a) => clip_grad_norm(a.params(), max),
        }
    }

    pub fn step(&mut self) {
        match &mut self.inner {
            Inner::Torch(o) => o.step(),
            Inner::Adagrad(a) => a.step(),
            Inner::FusedAdam(a) => a.step(),
        }
    }
}

impl Inner {
    fn new(vs: &nn::VarStore, cfg: &OptimSettings) -> Result<Self, tch::TchError> {
        Ok(match cfg.kind {
            OptimizerKind::Adam if vs.device() == tch::Device::Cpu => Inner::FusedAdam(FusedAdam::new(
                vs,
                AdamConfig { lr: cfg.lr, beta1: cfg.beta1, beta2: cfg.beta2, eps: cfg.eps, weight_decay: cfg.weight_decay },
            )?),
            OptimizerKind::Adam => Inner::Torch(
                nn::Adam { beta1: cfg.beta1, beta2: cfg.beta2, wd: cfg.weight_decay, eps: cfg.eps, amsgrad: false }
                    .build(vs, cfg.lr)?,
            ),
            OptimizerKind::Sgd => Inner::Torch(
                nn::Sgd { momentum: cfg.momentum, dampening: 0.0, wd: cfg.weight_decay, nesterov: false }.build(vs, cfg.lr)?,
            ),
            OptimizerKind::Adagrad => {
                let params = vs.trainable_variables();
                let sums = params.iter().map(|p| p.zeros_like()).collect();
                Inner::Adagrad(Adagrad { params, sums, lr: cfg.lr, eps: 1e-10, weight_decay: cfg.weight_decay })
            }
        })
    }
}

impl Adagrad {
    fn step(&mut self) {
        tch::no_grad(|| {
            for (p, s) in self.params.iter_mut().zip(self.sums.iter_mut()) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let g = if self.weight_decay > 0.0 { &g + &*p * self.weight_decay } else { g };
                let _ = s.addcmul_(&g, &g);
                let upd = &g / (s.sqrt() + self.eps) * self.lr;
                let _ = p.g_sub_(&upd);
            }
        });
    }
}

/// Scales all gradients so that their global L2 norm is at most `max`.
pub fn clip_grad_norm(params: &[Tensor], max: f64) {
    let grads: Vec<Tensor> = params.iter().map(|p| p.grad()).filter(|g| g.defined()).collect();
    if grads.is_empty() {
        return;
    }
    let total: f64 = grads.iter().map(|g| g.square().sum(tch::Kind::Double).double_value(&[])).sum::<f64>().sqrt();
    if total > max {
        let scale = max / (total + 1e-6);
        tch::no_grad(|| {
            for mut g in grads {
                let _ = g.g_mul_scalar_(scale);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    /// Runs `steps` optimizer steps on p (start [1, -2]) for the loss <g, p>
    /// with g = [0.5, 1.0], so each step's raw gradient is g.
    fn run(cfg: &OptimSettings, steps: usize) -> Vec<f64> {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let p = vs.root().var_copy("p", &Tensor::from_slice(&[1.0f32, -2.0]));
        let mut opt = Optimizer::new(&vs, cfg).unwrap();
        let g = Tensor::from_slice(&[0.5f32, 1.0]);
        for _ in 0..steps {
            opt.zero_grad();
            (&p * &g).sum(Kind::Float).backward();
            opt.step();
        }
        Vec::<f64>::try_from(p.to_kind(Kind::Double)).unwrap()
    }

    fn close(got: &[f64], want: &[f64]) {
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    const G: [f64; 2] = [0.5, 1.0];
    const P0: [f64; 2] = [1.0, -2.0];

    #[test]
    fn adagrad_by_hand() {
        // Two steps without decay: sum = g^2, then 2 g^2.
        // Step 1: p -= 0.1 g / |g| = 0.1 -> (0.9, -2.1).
        // Step 2: p -= 0.1 g / (sqrt(2) |g|) -> (0.9 - 0.1/sqrt2, -2.1 - 0.1/sqrt2).
        let cfg = OptimSettings { kind: OptimizerKind::Adagrad, lr: 0.1, ..Default::default() };
        let s = 0.1 / 2f64.sqrt();
        close(&run(&cfg, 2), &[0.9 - s, -2.1 - s]);
        // With weight decay 0.1 the gradient is g + 0.1 p.
        // Step 1: g1 = (0.6, 0.8); sum = (0.36, 0.64); p -= 0.1 g1 / sqrt(sum) -> (0.9, -2.1).
        // Step 2: g2 = (0.59, 0.79); sum = (0.7081, 1.2641).
        let cfg = OptimSettings { weight_decay: 0.1, ..cfg };
        let want = [0.9 - 0.1 * 0.59 / 0.7081f64.sqrt(), -2.1 - 0.1 * 0.79 / 1.2641f64.sqrt()];
        close(&run(&cfg, 2), &want);
    }

    /// Reference Adam (Kingma and Ba, with L2 weight decay added to the gradient).
    fn adam_ref(lr: f64, b1: f64, b2: f64, eps: f64, wd: f64, steps: usize) -> Vec<f64> {
        let mut p = P0.to_vec();
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        for t in 1..=steps as i32 {
            for i in 0..2 {
                let g = G[i] + wd * p[i];
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let mh = m[i] / (1.0 - b1.powi(t));
                let vh = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * mh / (vh.sqrt() + eps);
            }
        }
        p
    }

    #[test]
    fn adam_follows_the_paper_with_its_betas_and_decay() {
        let cfg = OptimSettings { lr: 0.01, beta1: 0.8, beta2: 0.9, eps: 1e-6, weight_decay: 0.2, ..Default::default() };
        close(&run(&cfg, 3), &adam_ref(0.01, 0.8, 0.9, 1e-6, 0.2, 3));
    }

    #[test]
    fn sgd_with_momentum_and_decay() {
        // buf_1 = g_1, buf_t = m buf_{t-1} + g_t; p -= lr buf; g_t = g + wd p.
        let (lr, mom, wd) = (0.1, 0.9, 0.05);
        let mut p = P0.to_vec();
        let mut buf = [0.0; 2];
        for t in 0..3 {
            for i in 0..2 {
                let g = G[i] + wd * p[i];
                buf[i] = if t == 0 { g } else { mom * buf[i] + g };
                p[i] -= lr * buf[i];
            }
        }
        let cfg = OptimSettings { kind: OptimizerKind::Sgd, lr, momentum: mom, weight_decay: wd, ..Default::default() };
        close(&run(&cfg, 3), &p);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let p = vs.root().var_copy("p", &Tensor::from_slice(&[1.0f32, -2.0]));
        let q = vs.root().var_copy("q", &Tensor::from_slice(&[0.5f32]));
        for kind in [OptimizerKind::Adam, OptimizerKind::Adagrad] {
            let mut opt = Optimizer::new(&vs, &OptimSettings { kind, ..Default::default() }).unwrap();
            opt.zero_grad();
            // Gradients (3, 0) and (4): global norm 5, clipped to 1 -> (0.6, 0), (0.8).
            ((&p * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float) + &q * 4.0).sum(Kind::Float).backward();
            opt.clip_grad_norm(1.0);
            let gp = Vec::<f64>::try_from(p.grad().to_kind(Kind::Double)).unwrap();
            let gq = Vec::<f64>::try_from(q.grad().to_kind(Kind::Double)).unwrap();
            close(&gp, &[0.6, 0.0]);
            close(&gq, &[0.8]);
        }
    }
}
