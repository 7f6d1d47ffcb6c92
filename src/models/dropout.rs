//! Inverted dropout (Srivastava et al., "Dropout: A Simple Way to Prevent
//! Neural Networks from Overfitting", JMLR 2014,
//! <https://jmlr.org/papers/v15/srivastava14a.html>) with the mask drawn
//! by a counter-based hash instead of libtorch's `bernoulli_`.
//!
//! Why: on CPU, libtorch's Bernoulli sampling was the most expensive
//! element-wise op of a tower step (about 2 ms per [1024, 512] mask on the
//! project's 2-core machine). Here element `i` keeps its value with
//! probability `1 - p` when `splitmix64(seed, i)` falls below a threshold,
//! split over the intra-op threads; the mask is 0 or `1 / (1 - p)`, and
//! `x * mask` carries the gradient as libtorch's dropout does. The seed of
//! each call is drawn from libtorch's generator, so `tch::manual_seed` still
//! makes a run repeatable, and the masks do not depend on the thread count.
//! Other devices and dtypes use libtorch's dropout.
//!
//! A tower layer's ReLU folds into the same mask ([`relu_dropout`]): the
//! mask is also zero where the pre-activation is not positive, so one
//! product replaces the ReLU, its backward and the dropout product.
//!
//! [`DropoutMasks::Libtorch`] draws the masks with libtorch's own dropout
//! instead: slower on CPU, but the very masks PyTorch's `nn.Dropout` draws
//! from the same generator state, so a run can be replayed step for step
//! against a PyTorch model (`bench-perf --masks libtorch` does).

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Where dropout masks come from (`[models.tower] dropout_masks`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DropoutMasks {
    /// The counter-based hash of this module: one fused, multi-threaded pass.
    #[default]
    Hashed,
    /// libtorch's `dropout` (Bernoulli draws from the global generator),
    /// the same masks as PyTorch's given the same generator state.
    Libtorch,
}

/// Elements per thread below which one thread fills the mask alone.
const PARALLEL_MIN: usize = 1 << 15;

#[inline(always)]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` (elements `start..start + out.len()` of the mask) with 0 or
/// `scale`; an element is kept when the top 32 bits of its hash are below
/// `keep` and, given `gate` (the pre-activations of a ReLU), its gate is
/// positive. The loop is integer hashing the compiler vectorises; on x86-64
/// it runs in a copy compiled for AVX-512 (its 64-bit products) or AVX2
/// where the CPU has them, with the same bits as the plain copy.
fn fill(out: &mut [f32], gate: Option<&[f32]>, start: usize, seed: u64, keep: u64, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512dq") {
            // SAFETY: the CPU has the features the copy is compiled for.
            return unsafe { fill_avx512(out, gate, start, seed, keep, scale) };
        }
        if is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { fill_avx2(out, gate, start, seed, keep, scale) };
        }
    }
    fill_plain(out, gate, start, seed, keep, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
unsafe fn fill_avx512(out: &mut [f32], gate: Option<&[f32]>, start: usize, seed: u64, keep: u64, scale: f32) {
    fill_plain(out, gate, start, seed, keep, scale)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_avx2(out: &mut [f32], gate: Option<&[f32]>, start: usize, seed: u64, keep: u64, scale: f32) {
    fill_plain(out, gate, start, seed, keep, scale)
}

#[inline(always)]
fn fill_plain(out: &mut [f32], gate: Option<&[f32]>, start: usize, seed: u64, keep: u64, scale: f32) {
    let kept = |i: usize| (splitmix64(seed ^ ((start + i) as u64).wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 32) < keep;
    match gate {
        None => out.iter_mut().enumerate().for_each(|(i, o)| *o = if kept(i) { scale } else { 0.0 }),
        // `&`, not `&&`: no branch on the sign of the pre-activation.
        Some(g) => out.iter_mut().zip(g).enumerate().for_each(|(i, (o, &x))| *o = if kept(i) & (x > 0.0) { scale } else { 0.0 }),
    }
}

/// Fills `m` with a dropout mask for drop probability `p` in (0, 1).
pub fn fill_mask(m: &mut [f32], p: f64, seed: u64, threads: usize) {
    fill_split(m, None, p, seed, threads);
}

/// Fills `m` with the mask of ReLU then dropout of `x`: the dropout mask of
/// [`fill_mask`] (the same for the same seed), zero where `x <= 0`, so that
/// `x * m` is `dropout(relu(x))` and carries its gradient.
pub fn fill_relu_mask(m: &mut [f32], x: &[f32], p: f64, seed: u64, threads: usize) {
    assert_eq!(m.len(), x.len(), "one mask element per input element");
    fill_split(m, Some(x), p, seed, threads);
}

fn fill_split(m: &mut [f32], gate: Option<&[f32]>, p: f64, seed: u64, threads: usize) {
    let n = m.len();
    let keep = ((1.0 - p) * 4_294_967_296.0).round() as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let threads = threads.min(n / PARALLEL_MIN).max(1);
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let mut parts = m.chunks_mut(chunk).enumerate();
        let first = parts.next();
        for (k, part) in parts {
            let g = gate.map(|g| &g[k * chunk..k * chunk + part.len()]);
            s.spawn(move || fill(part, g, k * chunk, seed, keep, scale));
        }
        if let Some((_, part)) = first {
            let g = gate.map(|g| &g[..part.len()]);
            fill(part, g, 0, seed, keep, scale);
        }
    });
}

/// Dropout of `x` with drop probability `p` when `train`; the identity otherwise.
pub fn dropout(x: &Tensor, p: f64, train: bool, masks: DropoutMasks) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if !hashed(x, p, masks) {
        return x.dropout(p, train);
    }
    dropout_seeded(x, p, draw_seed())
}

/// `dropout(relu(x))`. With hashed masks in training, one mask that is also
/// zero where `x <= 0` and one product: the ReLU's own kernel and its
/// backward kernel are saved, the values and gradients are the same (the
/// gradient of `x * mask` is the mask, 0 where the ReLU is flat, as its
/// backward gives). Elsewhere the two operators, as before.
pub fn relu_dropout(x: &Tensor, p: f64, train: bool, masks: DropoutMasks) -> Tensor {
    if !train || p <= 0.0 || !hashed(x, p, masks) {
        return dropout(&x.relu(), p, train, masks);
    }
    relu_dropout_seeded(x, p, draw_seed())
}

/// Whether the hashed masks of this module serve `x` (else libtorch's dropout).
fn hashed(x: &Tensor, p: f64, masks: DropoutMasks) -> bool {
    masks == DropoutMasks::Hashed && x.device() == Device::Cpu && x.kind() == Kind::Float && p < 1.0
}

/// The seed of one mask, from libtorch's generator (so `tch::manual_seed`
/// makes a run repeatable).
pub(crate) fn draw_seed() -> u64 {
    Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64
}

/// Training-mode dropout of a CPU f32 tensor with the mask of `seed`.
pub fn dropout_seeded(x: &Tensor, p: f64, seed: u64) -> Tensor {
    let mask = Tensor::empty(x.size(), (Kind::Float, Device::Cpu));
    let n = mask.numel();
    // SAFETY: `mask` is a fresh contiguous f32 CPU tensor of n elements that
    // nothing else references until this function returns it inside `x * mask`.
    let m = unsafe { std::slice::from_raw_parts_mut(mask.data_ptr() as *mut f32, n) };
    fill_mask(m, p, seed, tch::get_num_threads().max(1) as usize);
    x * mask
}

/// Training-mode `dropout(relu(x))` of a CPU f32 tensor with the mask of `seed`.
pub fn relu_dropout_seeded(x: &Tensor, p: f64, seed: u64) -> Tensor {
    let xc = x.contiguous();
    let mask = Tensor::empty(x.size(), (Kind::Float, Device::Cpu));
    let n = mask.numel();
    // SAFETY: `mask` is a fresh contiguous f32 CPU tensor of n elements that
    // nothing else references until this function returns it inside
    // `x * mask`; `xc` is a contiguous f32 CPU tensor of the same n elements,
    // alive until the end of this function and only read.
    let (m, xs) = unsafe {
        (
            std::slice::from_raw_parts_mut(mask.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts(xc.data_ptr() as *const f32, n),
        )
    };
    fill_relu_mask(m, xs, p, seed, tch::get_num_threads().max(1) as usize);
    x * mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_expected_share_and_scales_it() {
        let n = 400_000;
        for p in [0.1, 0.5] {
            let mut m = vec![0.0f32; n];
            fill_mask(&mut m, p, 42, 3);
            let kept = m.iter().filter(|&&x| x != 0.0).count() as f64 / n as f64;
            // Binomial standard error at n = 400k is below 0.001.
            assert!((kept - (1.0 - p)).abs() < 0.004, "p={p}: kept {kept}");
            assert!(m.iter().all(|&x| x == 0.0 || (x - (1.0 / (1.0 - p)) as f32).abs() < 1e-6));
            let mean = m.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
            assert!((mean - 1.0).abs() < 0.01, "inverted dropout keeps the mean: {mean}");
        }
    }

    #[test]
    fn masks_depend_on_the_seed_not_on_the_threads() {
        let mask = |seed, threads| {
            let mut m = vec![0.0f32; 100_000];
            fill_mask(&mut m, 0.1, seed, threads);
            m
        };
        let a = mask(7, 1);
        assert_eq!(a, mask(7, 4));
        assert_ne!(a, mask(8, 1));
        // Neighbouring elements are not correlated: runs of drops look like chance.
        let pairs = a.windows(2).filter(|w| w[0] == 0.0 && w[1] == 0.0).count() as f64 / (a.len() - 1) as f64;
        assert!((pairs - 0.01).abs() < 0.003, "{pairs}");
    }

    #[test]
    fn the_cpus_copy_of_the_fill_gives_the_plain_copys_bits() {
        let x: Vec<f32> = (0..10_007).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
        for (start, seed) in [(0, 1), (13, 99), (1 << 20, u64::MAX)] {
            for gate in [None, Some(&x[..])] {
                let (mut a, mut b) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
                fill(&mut a, gate, start, seed, 3_000_000_000, 1.25);
                fill_plain(&mut b, gate, start, seed, 3_000_000_000, 1.25);
                assert_eq!(a, b, "start {start}, seed {seed}, gated {}", gate.is_some());
            }
        }
        // One element by hand: splitmix64 of seed ^ (index * the odd constant).
        let mut one = [0.0f32; 1];
        let h = splitmix64(5 ^ 7u64.wrapping_mul(0xD1B5_4A32_D192_ED03)) >> 32;
        fill(&mut one, None, 7, 5, h + 1, 2.0);
        assert_eq!(one[0], 2.0);
        fill(&mut one, None, 7, 5, h, 2.0);
        assert_eq!(one[0], 0.0);
    }

    #[test]
    fn relu_then_dropout_in_one_mask_is_the_two_operators() {
        tch::manual_seed(3);
        // Values around zero (exact zeros too), 3 threads' worth of elements.
        let x0 = (Tensor::randn([1024, 100], (Kind::Float, Device::Cpu)) * 2.0).round() / 4.0;
        for threads in [1, 3] {
            let x = x0.copy().set_requires_grad(true);
            let y = x0.copy().set_requires_grad(true);
            let mut m = vec![0.0f32; 102_400];
            let xs = Vec::<f32>::try_from(x0.flatten(0, -1)).unwrap();
            fill_relu_mask(&mut m, &xs, 0.3, 11, threads);
            let fused = &x * Tensor::from_slice(&m).view([1024, 100]);
            let plain = dropout_seeded(&y.relu(), 0.3, 11);
            assert!(fused.equal(&plain), "the same values");
            let w = Tensor::randn([1024, 100], (Kind::Float, Device::Cpu));
            (&fused * &w).sum(Kind::Float).backward();
            (&plain * &w).sum(Kind::Float).backward();
            assert!(x.grad().equal(&y.grad()), "the same gradients, zero where x <= 0");
            assert_eq!(x.grad().eq(0.0).logical_and(&x0.le(0.0)).sum(Kind::Int64).int64_value(&[]), x0.le(0.0).sum(Kind::Int64).int64_value(&[]));
        }
        let x = x0.copy().set_requires_grad(true);
        assert!(relu_dropout_seeded(&x, 0.3, 11).equal(&dropout_seeded(&x0.relu(), 0.3, 11)));
        assert!(relu_dropout(&x, 0.3, false, DropoutMasks::Hashed).equal(&x0.relu()), "eval: the ReLU alone");
    }

    #[test]
    fn dropout_is_identity_in_eval_and_masks_gradients_in_training() {
        let x = Tensor::ones([64, 32], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        assert!(dropout(&x, 0.3, false, DropoutMasks::Hashed).equal(&x));
        assert!(dropout(&x, 0.3, false, DropoutMasks::Libtorch).equal(&x));
        let y = dropout_seeded(&x, 0.3, 5);
        y.sum(Kind::Float).backward();
        // The gradient is the mask itself: 0 where dropped, 1/(1-p) where kept, like y.
        assert!(x.grad().equal(&y.detach()));
        assert!(dropout_seeded(&x, 0.3, 5).equal(&y), "the same seed gives the same mask");
        let kept = y.ne(0.0).sum(Kind::Int64).int64_value(&[]);
        assert!((1300..1560).contains(&kept), "{kept} of 2048 kept at p = 0.3");
    }
}
