//! Optimisers: Adam and SGD from libtorch, Adagrad written out here (tch has
//! none), all with weight decay and global-norm gradient clipping.

use tch::{nn, nn::OptimizerConfig, Tensor};

use super::config::{OptimizerKind, TrainConfig};

pub enum Optimizer {
    Torch(nn::Optimizer),
    Adagrad(Adagrad),
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
    pub fn new(vs: &nn::VarStore, cfg: &TrainConfig) -> Result<Self, tch::TchError> {
        Ok(match cfg.optimizer {
            OptimizerKind::Adam => Optimizer::Torch(
                nn::Adam { beta1: cfg.beta1, beta2: cfg.beta2, wd: cfg.weight_decay, eps: cfg.eps, amsgrad: false }
                    .build(vs, cfg.lr)?,
            ),
            OptimizerKind::Sgd => Optimizer::Torch(
                nn::Sgd { momentum: cfg.momentum, dampening: 0.0, wd: cfg.weight_decay, nesterov: false }.build(vs, cfg.lr)?,
            ),
            OptimizerKind::Adagrad => {
                let params = vs.trainable_variables();
                let sums = params.iter().map(|p| p.zeros_like()).collect();
                Optimizer::Adagrad(Adagrad { params, sums, lr: cfg.lr, eps: 1e-10, weight_decay: cfg.weight_decay })
            }
        })
    }

    pub fn zero_grad(&mut self) {
        match self {
            Optimizer::Torch(o) => o.zero_grad(),
            Optimizer::Adagrad(a) => {
                for p in &mut a.params {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
            }
        }
    }

    pub fn clip_grad_norm(&mut self, max: f64) {
        match self {
            Optimizer::Torch(o) => o.clip_grad_norm(max),
            Optimizer::Adagrad(a) => clip_grad_norm(&a.params, max),
        }
    }

    pub fn step(&mut self) {
        match self {
            Optimizer::Torch(o) => o.step(),
            Optimizer::Adagrad(a) => a.step(),
        }
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
