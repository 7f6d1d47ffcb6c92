//! How the parameters' gradients are reset between steps.
//!
//! Two ways, because two kinds of step want different things. A step whose
//! strategy runs one `backward` of a weighted loss wants the gradients
//! *undefined* on entry (PyTorch's `zero_grad(set_to_none=True)`, its
//! default): autograd then hands each parameter the gradient tensor it has
//! just computed, where a defined gradient costs a zeroing pass and an
//! accumulating pass over every parameter per step (on the WeChat-size
//! models, ~3.6M elements of embedding tables and layers). A strategy that
//! combines per-term gradients and adds the result into `.grad` itself
//! wants the buffers kept and *zeroed*, so that it writes in place instead
//! of defining every gradient anew.
//!
//! tch exposes no way to undefine a gradient; libtorch's optimisers do it in
//! their `zero_grad`, so [`GradClearer`] keeps one that never steps (plain
//! SGD over the same tensors) only for that.

use tch::{COptimizer, TchError, Tensor};

/// The state of the parameters' `.grad` a strategy's backward expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradsOnEntry {
    /// Undefined: autograd's fresh gradients become `.grad` as they are.
    #[default]
    Undefined,
    /// Defined and zero: the strategy adds its combined gradient in place.
    Zeroed,
}

/// Undefines the gradients of a fixed set of parameters.
pub struct GradClearer(COptimizer);

impl GradClearer {
    pub fn new(params: &[Tensor]) -> Result<GradClearer, TchError> {
        let mut opt = COptimizer::sgd(0.0, 0.0, 0.0, 0.0, false)?;
        for p in params {
            opt.add_parameters(p, 0)?;
        }
        Ok(GradClearer(opt))
    }

    /// Sets every parameter's `.grad` to undefined (libtorch's
    /// `Optimizer::zero_grad(set_to_none = true)`).
    pub fn clear(&self) -> Result<(), TchError> {
        self.0.zero_grad()
    }
}

/// Zeroes the defined gradients in place, keeping their buffers.
pub fn zero_in_place(params: &mut [Tensor]) {
    for p in params {
        p.zero_grad();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn clearing_undefines_and_zeroing_keeps_the_buffer() {
        let mut p = vec![Tensor::ones([3], (Kind::Float, Device::Cpu)).set_requires_grad(true)];
        (&p[0] * 2.0).sum(Kind::Float).backward();
        let buffer = p[0].grad().data_ptr();
        zero_in_place(&mut p);
        assert_eq!(p[0].grad().data_ptr(), buffer, "zeroing keeps the buffer");
        assert_eq!(Vec::<f32>::try_from(&p[0].grad()).unwrap(), vec![0.0; 3]);
        let c = GradClearer::new(&p).unwrap();
        c.clear().unwrap();
        assert!(!p[0].grad().defined(), "clearing undefines the gradient");
        // The next backward defines it anew with exactly its own gradient.
        (&p[0] * 3.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(&p[0].grad()).unwrap(), vec![3.0; 3]);
    }
}
