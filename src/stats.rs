//! Pure statistics over seeds: mean, sample standard deviation and friends.
//! No I/O, no torch: easy to check by hand.

/// Summary of a sample of values (e.g. one metric over seeds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator); 0 for n = 1.
    pub std: f64,
}

/// Mean and sample std; `None` for an empty sample.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std = if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    Some(Summary { n, mean, std })
}

impl Summary {
    /// "0.7312 ± 0.0021" (or just the mean for one value).
    pub fn display(&self, digits: usize) -> String {
        if self.n > 1 {
            format!("{:.*} ± {:.*}", digits, self.mean, digits, self.std)
        } else {
            format!("{:.*}", digits, self.mean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_and_sample_std_by_hand() {
        let s = summarize(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.n, 8);
        assert!((s.mean - 5.0).abs() < 1e-12);
        // Sum of squares 32, / 7.
        assert!((s.std - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(summarize(&[3.0]).unwrap().std, 0.0);
        assert!(summarize(&[]).is_none());
        assert_eq!(summarize(&[1.0, 3.0]).unwrap().display(2), "2.00 ± 1.41");
    }
}
