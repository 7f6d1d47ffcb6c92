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

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `out` (elements `start..start + out.len()` of the mask) with 0 or
/// `scale`; an element is kept when the top 32 bits of its hash are below `keep`.
fn fill(out: &mut [f32], start: usize, seed: u64, keep: u64, scale: f32) {
    for (i, o) in out.iter_mut().enumerate() {
        let h = splitmix64(seed ^ ((start + i) as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
        *o = if (h >> 32) < keep { scale } else { 0.0 };
    }
}

/// Fills `m` with a dropout mask for drop probability `p` in (0, 1).
pub fn fill_mask(m: &mut [f32], p: f64, seed: u64, threads: usize) {
    let n = m.len();
    let keep = ((1.0 - p) * 4_294_967_296.0).round() as u64;
    let scale = (1.0 / (1.0 - p)) as f32;
    let threads = threads.min(n / PARALLEL_MIN).max(1);
    let chunk = n.div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let mut parts = m.chunks_mut(chunk).enumerate();
        let first = parts.next();
        for (k, part) in parts {
            s.spawn(move || fill(part, k * chunk, seed, keep, scale));
        }
        if let Some((_, part)) = first {
            fill(part, 0, seed, keep, scale);
        }
    });
}

/// Dropout of `x` with drop probability `p` when `train`; the identity otherwise.
pub fn dropout(x: &Tensor, p: f64, train: bool, masks: DropoutMasks) -> Tensor {
    if !train || p <= 0.0 {
        return x.shallow_clone();
    }
    if masks == DropoutMasks::Libtorch || x.device() != Device::Cpu || x.kind() != Kind::Float || p >= 1.0 {
        return x.dropout(p, train);
    }
    let seed = Tensor::randint(i64::MAX, [1], (Kind::Int64, Device::Cpu)).int64_value(&[0]) as u64;
    dropout_seeded(x, p, seed)
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
