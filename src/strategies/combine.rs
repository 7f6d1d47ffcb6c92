//! The weighted sum of per-term gradients, added into the parameters'
//! `.grad` in one pass per parameter.
//!
//! Why: GradNorm (and any strategy that takes one gradient pass per loss
//! term) ends with `grad_k += sum_t w_t g_t[k]` over every parameter,
//! embedding tables included (millions of elements). As tensor ops that is
//! a multiply and an add per term, each allocating and sweeping memory, then
//! one more sweep to add into `.grad`; here every element is read once per
//! term and written once, split over the intra-op threads. The arithmetic
//! is the same sum in the same order (term 0 first), up to float rounding
//! of the fused multiply-adds. Non-f32 or non-CPU tensors take the tensor-op
//! path.

use tch::{Device, Kind, Tensor};

use super::accumulate_grads;

/// Elements below which one thread does the whole sum.
const PARALLEL_MIN: usize = 1 << 16;

/// One parameter's sum: its `.grad` and each term's gradient with its
/// weight (terms that do not reach the parameter left out).
struct Job<'a> {
    out: &'a mut [f32],
    terms: Vec<(&'a [f32], f32)>,
}

fn run(job: Job) {
    let n = job.out.len();
    for &(g, w) in &job.terms {
        let g = &g[..n];
        for (o, x) in job.out.iter_mut().zip(g) {
            *o += w * x;
        }
    }
}

fn fast_path(t: &Tensor) -> bool {
    t.device() == Device::Cpu && t.kind() == Kind::Float
}

/// The same sum as tensor ops, for other devices, kinds and layouts.
fn with_tensor_ops(params: &[Tensor], per_term: &[Vec<Tensor>], weights: &[f64]) -> Result<(), tch::TchError> {
    let combined: Vec<Tensor> = (0..params.len())
        .map(|k| {
            per_term
                .iter()
                .zip(weights)
                .filter_map(|(g, &w)| g.get(k).filter(|g| g.defined()).map(|g| g * w))
                .reduce(|a, b| a + b)
                .unwrap_or_else(|| params[k].zeros_like())
        })
        .collect();
    accumulate_grads(params, &combined)
}

/// Adds `sum_t weights[t] * per_term[t][k]` to `params[k].grad` for every
/// `k`, defining `.grad` (as zeros, then the sum) where libtorch has not yet.
/// An undefined gradient (a term that does not reach the parameter) counts as zero.
pub fn accumulate_weighted(params: &[Tensor], per_term: &[Vec<Tensor>], weights: &[f64]) -> Result<(), tch::TchError> {
    let fast = params.iter().all(fast_path) && per_term.iter().flatten().filter(|t| t.defined()).all(fast_path);
    if !fast || per_term.iter().any(|g| g.len() != params.len()) {
        return with_tensor_ops(params, per_term, weights);
    }
    // The first step: give every parameter a `.grad` to add into.
    let undefined: Vec<Tensor> = params.iter().filter(|p| !p.grad().defined()).map(|p| p.shallow_clone()).collect();
    if !undefined.is_empty() {
        let zeros: Vec<Tensor> = undefined.iter().map(|p| p.zeros_like()).collect();
        accumulate_grads(&undefined, &zeros)?;
    }
    let outs: Vec<Tensor> = params.iter().map(|p| p.grad()).collect();
    if outs.iter().any(|g| !g.is_contiguous() || !fast_path(g)) {
        // An unusual gradient layout: the tensor ops are right for it.
        return with_tensor_ops(params, per_term, weights);
    }
    let terms: Vec<Vec<Tensor>> =
        per_term.iter().map(|g| g.iter().map(|t| if t.defined() { t.contiguous() } else { t.shallow_clone() }).collect()).collect();
    let w: Vec<f32> = weights.iter().map(|&w| w as f32).collect();
    let mut jobs: Vec<(usize, Job)> = Vec::with_capacity(params.len());
    for (k, out) in outs.iter().enumerate() {
        let n = out.numel();
        // SAFETY: `out` is the contiguous f32 CPU `.grad` of parameter k
        // (checked above), n elements, written only by this job during the
        // call; every term's gradient for k is a contiguous f32 CPU tensor
        // of the same shape, alive in `terms` until the function returns,
        // and only read.
        let (o, ts) = unsafe {
            (
                std::slice::from_raw_parts_mut(out.data_ptr() as *mut f32, n),
                terms
                    .iter()
                    .zip(&w)
                    .filter(|(g, _)| g[k].defined())
                    .map(|(g, &w)| (std::slice::from_raw_parts(g[k].data_ptr() as *const f32, n), w))
                    .collect(),
            )
        };
        jobs.push((n, Job { out: o, terms: ts }));
    }
    let total: usize = jobs.iter().map(|j| j.0).sum();
    let threads = (tch::get_num_threads().max(1) as usize).min(total / PARALLEL_MIN).max(1);
    // Largest first into the lightest share: shares within one parameter of each other.
    jobs.sort_by(|a, b| b.0.cmp(&a.0));
    let mut shares: Vec<(usize, Vec<Job>)> = (0..threads).map(|_| (0, Vec::new())).collect();
    for (n, job) in jobs {
        if let Some(s) = shares.iter_mut().min_by_key(|s| s.0) {
            s.0 += n;
            s.1.push(job);
        }
    }
    std::thread::scope(|s| {
        let mut it = shares.into_iter();
        let mine = it.next();
        for (_, work) in it {
            s.spawn(move || work.into_iter().for_each(run));
        }
        if let Some((_, work)) = mine {
            work.into_iter().for_each(run);
        }
    });
    drop(terms);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_weighted_sum_into_grad_as_tensor_ops_would() {
        tch::manual_seed(3);
        let big = Tensor::randn([300, 400], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let small = Tensor::randn([7], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let params = vec![big.shallow_clone(), small.shallow_clone()];
        let per_term: Vec<Vec<Tensor>> =
            (0..3).map(|_| params.iter().map(|p| Tensor::randn_like(p)).collect()).collect();
        let w = [0.5, 1.25, 2.0];
        // First step: `.grad` undefined, so the result is the sum itself.
        accumulate_weighted(&params, &per_term, &w).unwrap();
        let want = |k: usize| (0..3).map(|t| &per_term[t][k] * w[t]).fold(params[k].zeros_like(), |a, b| a + b);
        for k in 0..2 {
            let d = (params[k].grad() - want(k)).abs().max().double_value(&[]);
            assert!(d < 1e-5, "parameter {k}: {d}");
        }
        // Second call adds on top.
        accumulate_weighted(&params, &per_term, &w).unwrap();
        for k in 0..2 {
            let d = (params[k].grad() - want(k) * 2.0).abs().max().double_value(&[]);
            assert!(d < 1e-5, "parameter {k}: {d}");
        }
    }

    #[test]
    fn an_undefined_gradient_counts_as_zero() {
        // Term 1 does not reach `a` (undefined), term 0 does not reach `b`.
        let a = Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let b = Tensor::ones([2], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let per_term = vec![
            vec![Tensor::from_slice(&[1.0f32, 2.0, 3.0]), Tensor::new()],
            vec![Tensor::new(), Tensor::from_slice(&[4.0f32, 5.0])],
        ];
        accumulate_weighted(&[a.shallow_clone(), b.shallow_clone()], &per_term, &[2.0, 0.5]).unwrap();
        assert_eq!(Vec::<f32>::try_from(&a.grad()).unwrap(), vec![2.0, 4.0, 6.0]);
        assert_eq!(Vec::<f32>::try_from(&b.grad()).unwrap(), vec![2.0, 2.5]);
        // The same on the tensor-op path (f64).
        let c = Tensor::ones([2], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let per_term = vec![vec![Tensor::new()], vec![Tensor::from_slice(&[1.0f64, -1.0])]];
        accumulate_weighted(&[c.shallow_clone()], &per_term, &[2.0, 3.0]).unwrap();
        assert_eq!(Vec::<f64>::try_from(&c.grad()).unwrap(), vec![3.0, -3.0]);
    }

    #[test]
    fn other_kinds_take_the_tensor_path() {
        let p = Tensor::ones([4], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        let g = vec![vec![Tensor::ones([4], (Kind::Double, Device::Cpu))], vec![Tensor::ones([4], (Kind::Double, Device::Cpu)) * 3.0]];
        accumulate_weighted(&[p.shallow_clone()], &g, &[2.0, 1.0]).unwrap();
        assert_eq!(Vec::<f64>::try_from(&p.grad()).unwrap(), vec![5.0; 4]);
    }
}
