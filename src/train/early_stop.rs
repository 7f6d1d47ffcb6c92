//! Early stopping on a validation metric with patience; remembers the best
//! epoch so the loop can restore it before testing.

/// What the loop should do after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// New best: keep a copy of the weights.
    Improved,
    /// No improvement, patience left.
    Continue,
    /// Patience exhausted.
    Stop,
}

#[derive(Debug, Clone)]
pub struct EarlyStopping {
    patience: usize,
    higher_is_better: bool,
    best: Option<(usize, f64)>,
    bad_epochs: usize,
}

impl EarlyStopping {
    pub fn new(patience: usize, higher_is_better: bool) -> Self {
        EarlyStopping { patience, higher_is_better, best: None, bad_epochs: 0 }
    }

    /// Records an epoch's validation value (NaN never improves).
    pub fn update(&mut self, epoch: usize, value: f64) -> Decision {
        let better = match self.best {
            None => value.is_finite(),
            Some((_, b)) => {
                if self.higher_is_better {
                    value > b
                } else {
                    value < b
                }
            }
        };
        if better {
            self.best = Some((epoch, value));
            self.bad_epochs = 0;
            Decision::Improved
        } else {
            self.bad_epochs += 1;
            if self.bad_epochs > self.patience {
                Decision::Stop
            } else {
                Decision::Continue
            }
        }
    }

    /// (epoch, value) of the best epoch so far.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_after_patience_and_keeps_best() {
        let mut es = EarlyStopping::new(1, true);
        assert_eq!(es.update(1, 0.70), Decision::Improved);
        assert_eq!(es.update(2, 0.72), Decision::Improved);
        assert_eq!(es.update(3, 0.71), Decision::Continue);
        assert_eq!(es.update(4, 0.72), Decision::Stop); // equal is not better
        assert_eq!(es.best(), Some((2, 0.72)));
        let mut lo = EarlyStopping::new(0, false);
        assert_eq!(lo.update(1, 0.5), Decision::Improved);
        assert_eq!(lo.update(2, 0.4), Decision::Improved);
        assert_eq!(lo.update(3, 0.45), Decision::Stop);
        let mut nan = EarlyStopping::new(0, true);
        assert_eq!(nan.update(1, f64::NAN), Decision::Stop);
        assert_eq!(nan.best(), None);
    }
}
