//! Adam on CPU as one fused pass per element (Kingma and Ba, "Adam: A Method
//! for Stochastic Optimization", ICLR 2015, <https://arxiv.org/abs/1412.6980>).
//!
//! libtorch's Adam runs about eight element-wise kernels per parameter (two
//! moment updates, square root, bias corrections, the division, the step),
//! each a pass over memory; here the gradient, both moments and the
//! parameter are read and written once, split over the intra-op threads.
//! The arithmetic is torch's (L2 weight decay added to the gradient, the
//! bias-corrected step `lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`), so the
//! training is the same up to float rounding. Only for contiguous f32
//! parameters on the CPU; other devices use libtorch's Adam
//! ([`super::Optimizer::new`] decides, once).

use tch::{nn, Device, Kind, Tensor};

/// Elements below which splitting the pass over threads costs more than it saves.
const PARALLEL_MIN: usize = 1 << 16;

/// The hyper-parameters of torch.optim.Adam (amsgrad off).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Adam with its moment buffers in plain memory.
pub struct FusedAdam {
    params: Vec<Tensor>,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    steps: i32,
    cfg: AdamConfig,
}

/// One parameter's slice of the work.
struct Job<'a> {
    p: &'a mut [f32],
    g: &'a [f32],
    m: &'a mut [f32],
    v: &'a mut [f32],
}

/// The per-step constants of the update.
#[derive(Clone, Copy)]
struct Coef {
    b1: f32,
    b2: f32,
    wd: f32,
    step_size: f32,
    inv_bc2_sqrt: f32,
    eps: f32,
}

fn update(j: Job, c: Coef) {
    let n = j.p.len();
    let (p, g, m, v) = (&mut j.p[..n], &j.g[..n], &mut j.m[..n], &mut j.v[..n]);
    for i in 0..n {
        let gi = g[i] + c.wd * p[i];
        let mi = c.b1 * m[i] + (1.0 - c.b1) * gi;
        let vi = c.b2 * v[i] + (1.0 - c.b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= c.step_size * mi / (vi.sqrt() * c.inv_bc2_sqrt + c.eps);
    }
}

/// Cuts the concatenated elements of `jobs` into `threads` shares of equal
/// size (the last may be shorter), splitting jobs where a share ends.
fn split(jobs: Vec<Job>, threads: usize) -> Vec<Vec<Job>> {
    let threads = threads.max(1);
    let total: usize = jobs.iter().map(|j| j.p.len()).sum();
    let share = total.div_ceil(threads).max(1);
    let mut parts: Vec<Vec<Job>> = (0..threads).map(|_| Vec::new()).collect();
    let (mut part, mut room) = (0, share);
    for mut j in jobs {
        while !j.p.is_empty() {
            let k = j.p.len().min(room);
            let (p0, p1) = std::mem::take(&mut j.p).split_at_mut(k);
            let (g0, g1) = j.g.split_at(k);
            let (m0, m1) = std::mem::take(&mut j.m).split_at_mut(k);
            let (v0, v1) = std::mem::take(&mut j.v).split_at_mut(k);
            parts[part].push(Job { p: p0, g: g0, m: m0, v: v0 });
            j = Job { p: p1, g: g1, m: m1, v: v1 };
            room -= k;
            if room == 0 && part + 1 < threads {
                part += 1;
                room = share;
            }
        }
    }
    parts
}

impl FusedAdam {
    /// Adam over the trainable variables of `vs`, which must be CPU f32 and contiguous.
    pub fn new(vs: &nn::VarStore, cfg: AdamConfig) -> Result<FusedAdam, tch::TchError> {
        let params = vs.trainable_variables();
        for p in &params {
            if p.device() != Device::Cpu || p.kind() != Kind::Float || !p.is_contiguous() {
                return Err(tch::TchError::Kind(format!(
                    "fused Adam needs contiguous f32 CPU parameters, got {:?} {:?} (contiguous: {})",
                    p.kind(),
                    p.device(),
                    p.is_contiguous()
                )));
            }
        }
        let m = params.iter().map(|p| vec![0.0; p.numel()]).collect();
        let v = params.iter().map(|p| vec![0.0; p.numel()]).collect();
        Ok(FusedAdam { params, m, v, steps: 0, cfg })
    }

    /// The parameters it updates (for gradient clipping).
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    pub fn zero_grad(&mut self) {
        super::grads::zero_in_place(&mut self.params);
    }

    /// One Adam step on the current gradients; parameters without a
    /// gradient are left alone (and their moments too), as torch does.
    pub fn step(&mut self) {
        self.steps += 1;
        let t = self.steps;
        let c = self.cfg;
        let coef = Coef {
            b1: c.beta1 as f32,
            b2: c.beta2 as f32,
            wd: c.weight_decay as f32,
            step_size: (c.lr / (1.0 - c.beta1.powi(t))) as f32,
            inv_bc2_sqrt: (1.0 / (1.0 - c.beta2.powi(t)).sqrt()) as f32,
            eps: c.eps as f32,
        };
        // Gradients as contiguous f32 (a no-op for the usual layout-following gradient).
        let grads: Vec<Option<Tensor>> = self
            .params
            .iter()
            .map(|p| {
                let g = p.grad();
                g.defined().then(|| g.to_kind(Kind::Float).contiguous())
            })
            .collect();
        let mut jobs: Vec<Job> = Vec::with_capacity(self.params.len());
        for (((p, g), m), v) in self.params.iter().zip(&grads).zip(self.m.iter_mut()).zip(self.v.iter_mut()) {
            let Some(g) = g else { continue };
            let n = p.numel();
            // SAFETY: `p` is a contiguous f32 CPU tensor of n elements (checked in
            // `new`; parameters keep their storage) that nothing else reads or
            // writes during the step; `g` is a contiguous f32 tensor of the same
            // size, alive until the end of this function, and only read.
            let (ps, gs) = unsafe {
                (
                    std::slice::from_raw_parts_mut(p.data_ptr() as *mut f32, n),
                    std::slice::from_raw_parts(g.data_ptr() as *const f32, n),
                )
            };
            jobs.push(Job { p: ps, g: gs, m: m.as_mut_slice(), v: v.as_mut_slice() });
        }
        let total: usize = jobs.iter().map(|j| j.p.len()).sum();
        let threads = (tch::get_num_threads().max(1) as usize).min(total / PARALLEL_MIN).max(1);
        let mut parts = split(jobs, threads).into_iter();
        std::thread::scope(|s| {
            let mine = parts.next();
            for work in parts {
                s.spawn(move || work.into_iter().for_each(|j| update(j, coef)));
            }
            if let Some(work) = mine {
                work.into_iter().for_each(|j| update(j, coef));
            }
        });
        drop(grads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::OptimizerConfig;

    /// Same random problem through libtorch's Adam and the fused one.
    #[test]
    fn matches_libtorch_adam_over_steps() {
        let cfg = AdamConfig { lr: 0.01, beta1: 0.8, beta2: 0.95, eps: 1e-6, weight_decay: 0.05 };
        let make = || {
            tch::manual_seed(7);
            let vs = nn::VarStore::new(Device::Cpu);
            // Big enough to be split over threads, plus a small one and one left without gradient.
            let a = vs.root().randn("a", &[300, 700], 0.0, 1.0);
            let b = vs.root().randn("b", &[5], 0.0, 1.0);
            let unused = vs.root().randn("unused", &[3], 0.0, 1.0);
            (vs, a, b, unused)
        };
        let (vs1, a1, b1, u1) = make();
        let (mut vs2, a2, b2, u2) = make();
        // The same start even if another test drew from the generator in between.
        vs2.copy(&vs1).unwrap();
        let a0 = a2.detach().copy();
        let mut torch_adam =
            nn::Adam { beta1: cfg.beta1, beta2: cfg.beta2, wd: cfg.weight_decay, eps: cfg.eps, amsgrad: false }.build(&vs1, cfg.lr).unwrap();
        let mut fused = FusedAdam::new(&vs2, cfg).unwrap();
        let target = Tensor::randn([300, 700], (Kind::Float, Device::Cpu));
        for _ in 0..5 {
            torch_adam.zero_grad();
            ((&a1 - &target).square().sum(Kind::Float) + b1.pow_tensor_scalar(3).sum(Kind::Float)).backward();
            torch_adam.step();
            fused.zero_grad();
            ((&a2 - &target).square().sum(Kind::Float) + b2.pow_tensor_scalar(3).sum(Kind::Float)).backward();
            fused.step();
        }
        let diff = |x: &Tensor, y: &Tensor| (x - y).abs().max().double_value(&[]);
        assert!(diff(&a1, &a2) < 1e-5, "{}", diff(&a1, &a2));
        assert!(diff(&b1, &b2) < 1e-5, "{}", diff(&b1, &b2));
        assert!(u1.equal(&u2), "a parameter without gradient must not move");
        // And it moved at all.
        assert!(diff(&a2, &a0) > 1e-3);
    }

    #[test]
    fn shares_cover_every_element_once() {
        let mut p: Vec<Vec<f32>> = vec![vec![0.0; 7], vec![0.0; 1], vec![0.0; 12]];
        let g: Vec<Vec<f32>> = p.iter().map(|x| vec![1.0; x.len()]).collect();
        let mut m = p.clone();
        let mut v = p.clone();
        let jobs: Vec<Job> = p
            .iter_mut()
            .zip(&g)
            .zip(m.iter_mut())
            .zip(v.iter_mut())
            .map(|(((p, g), m), v)| Job { p: p.as_mut_slice(), g: g.as_slice(), m: m.as_mut_slice(), v: v.as_mut_slice() })
            .collect();
        let parts = split(jobs, 3);
        let sizes: Vec<usize> = parts.iter().map(|part| part.iter().map(|j| j.p.len()).sum()).collect();
        assert_eq!(sizes, [7, 7, 6]);
        let coef = Coef { b1: 0.0, b2: 0.0, wd: 0.0, step_size: 1.0, inv_bc2_sqrt: 1.0, eps: 0.0 };
        for part in parts {
            for j in part {
                update(j, coef);
            }
        }
        // With b1 = b2 = 0 each element moves by exactly g / |g| = 1, once.
        assert!(p.iter().flatten().all(|&x| x == -1.0), "{p:?}");
    }

    #[test]
    fn refuses_non_f32_parameters() {
        let mut vs = nn::VarStore::new(Device::Cpu);
        let _ = vs.root().zeros("x", &[2]);
        vs.double();
        let cfg = AdamConfig { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        assert!(FusedAdam::new(&vs, cfg).is_err());
    }
}
