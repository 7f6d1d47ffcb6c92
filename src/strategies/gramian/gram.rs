//! The Gramian G = J Jᵀ of T per-term gradients (T × T, f64) and what is
//! read off it. Every Gramian method weighs the terms from this small matrix,
//! and the gradient diagnostics (norms, pairwise cosines, conflict rate) are
//! derived from it here and nowhere else: ||g_i|| = sqrt(G_ii),
//! cos(g_i, g_j) = G_ij / sqrt(G_ii G_jj). Pure f64, no libtorch.

/// Per-task gradient diagnostics on a parameter set, read off its Gramian.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GradDiagnostics {
    /// ||grad L_t|| per task.
    pub norms: Vec<f64>,
    /// cos(g_i, g_j) for i < j, in row order (0,1), (0,2), ..., (1,2), ...
    pub cosines: Vec<f64>,
    /// Share of task pairs whose gradients conflict (cosine < 0).
    pub conflict_rate: f64,
}

/// A symmetric T × T matrix, row-major: the Gramian of T gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct Gram {
    n: usize,
    data: Vec<f64>,
}

impl Gram {
    /// From row-major entries; `None` unless `data` has `n * n` finite
    /// entries. The matrix is symmetrised ((G + Gᵀ) / 2) so that rounding in
    /// whoever computed it cannot make the methods see an asymmetric one.
    pub fn new(n: usize, data: Vec<f64>) -> Option<Gram> {
        if data.len() != n * n || data.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut g = Gram { n, data };
        for i in 0..n {
            for j in i + 1..n {
                let m = 0.5 * (g.get(i, j) + g.get(j, i));
                g.data[i * n + j] = m;
                g.data[j * n + i] = m;
            }
        }
        Some(g)
    }

    /// The Gramian of the rows of J (each row one term's gradient).
    pub fn from_rows(rows: &[Vec<f64>]) -> Gram {
        let n = rows.len();
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            for j in i..n {
                let d: f64 = rows[i].iter().zip(&rows[j]).map(|(a, b)| a * b).sum();
                data[i * n + j] = d;
                data[j * n + i] = d;
            }
        }
        Gram { n, data }
    }

    /// The T × T identity.
    pub fn identity(n: usize) -> Gram {
        let mut data = vec![0.0; n * n];
        for i in 0..n {
            data[i * n + i] = 1.0;
        }
        Gram { n, data }
    }

    /// T, the number of terms.
    pub fn dim(&self) -> usize {
        self.n
    }

    pub fn get(&self, i: usize, j: usize) -> f64 {
        self.data[i * self.n + j]
    }

    /// Row-major entries.
    pub fn data(&self) -> &[f64] {
        &self.data
    }

    /// G v.
    pub fn mul_vec(&self, v: &[f64]) -> Vec<f64> {
        (0..self.n).map(|i| (0..self.n).map(|j| self.get(i, j) * v[j]).sum()).collect()
    }

    /// vᵀ G v = ||Jᵀ v||².
    pub fn quad(&self, v: &[f64]) -> f64 {
        dot(v, &self.mul_vec(v))
    }

    /// The diagonal, ||g_i||².
    pub fn diag(&self) -> Vec<f64> {
        (0..self.n).map(|i| self.get(i, i)).collect()
    }

    /// trace G = ||J||_F².
    pub fn trace(&self) -> f64 {
        self.diag().iter().sum()
    }

    /// ||g_i|| per term.
    pub fn norms(&self) -> Vec<f64> {
        self.diag().iter().map(|d| d.max(0.0).sqrt()).collect()
    }

    /// s G.
    pub fn scaled(&self, s: f64) -> Gram {
        Gram { n: self.n, data: self.data.iter().map(|v| v * s).collect() }
    }

    /// D G D for D = diag(d): the Gramian of the rows d_i g_i.
    pub fn congruent(&self, d: &[f64]) -> Gram {
        let n = self.n;
        let data = (0..n * n).map(|k| self.data[k] * d[k / n] * d[k % n]).collect();
        Gram { n, data }
    }

    /// G + eps I.
    pub fn regularized(&self, eps: f64) -> Gram {
        let mut g = self.clone();
        for i in 0..self.n {
            g.data[i * self.n + i] += eps;
        }
        g
    }

    /// G / trace G (the Gramian of J / ||J||_F); an all-zero G stays zero.
    pub fn trace_normalized(&self) -> Gram {
        let t = self.trace();
        if t > 0.0 {
            self.scaled(1.0 / t)
        } else {
            self.clone()
        }
    }

    /// cos(g_i, g_j); 0 where either gradient is zero.
    pub fn cosine(&self, i: usize, j: usize) -> f64 {
        let denom = (self.get(i, i) * self.get(j, j)).max(0.0).sqrt();
        if denom > 0.0 {
            self.get(i, j) / denom
        } else {
            0.0
        }
    }

    /// Norms, pairwise cosines (row order (0,1), (0,2), ..., (1,2), ...) and
    /// the share of pairs that conflict (cosine < 0). A pair where either
    /// gradient is zero has cosine 0 and does not count as a conflict.
    pub fn diagnostics(&self) -> GradDiagnostics {
        let mut cosines = Vec::new();
        for i in 0..self.n {
            for j in i + 1..self.n {
                cosines.push(self.cosine(i, j));
            }
        }
        let conflicts = cosines.iter().filter(|c| **c < 0.0).count();
        let pairs = cosines.len();
        GradDiagnostics {
            norms: self.norms(),
            conflict_rate: if pairs > 0 { conflicts as f64 / pairs as f64 } else { 0.0 },
            cosines,
        }
    }
}

/// aᵀ b.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gramian_and_diagnostics_by_hand() {
        // Rows (1, 0), (-1, 1), (0, 1): G = [[1,-1,0],[-1,2,1],[0,1,1]].
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![-1.0, 1.0], vec![0.0, 1.0]]);
        assert_eq!(g.data(), &[1.0, -1.0, 0.0, -1.0, 2.0, 1.0, 0.0, 1.0, 1.0]);
        let d = g.diagnostics();
        assert_eq!(d.norms, vec![1.0, 2f64.sqrt(), 1.0]);
        let s = 0.5f64.sqrt();
        assert!(d.cosines.iter().zip([-s, 0.0, s]).all(|(a, b)| (a - b).abs() < 1e-15), "{:?}", d.cosines);
        assert_eq!(d.conflict_rate, 1.0 / 3.0);
        assert_eq!(g.quad(&[1.0, 1.0, 0.0]), 1.0); // ||(0, 1)||²
        assert_eq!(g.trace_normalized().trace(), 1.0);
    }

    #[test]
    fn zero_gradient_has_no_cosine_and_bad_input_is_refused() {
        let g = Gram::from_rows(&[vec![0.0, 0.0], vec![-1.0, 1.0]]);
        let d = g.diagnostics();
        assert_eq!((d.cosines, d.conflict_rate), (vec![0.0], 0.0));
        assert!(Gram::new(2, vec![1.0, 0.0, 0.0]).is_none());
        assert!(Gram::new(1, vec![f64::NAN]).is_none());
        let s = Gram::new(2, vec![1.0, 0.2, 0.4, 1.0]).unwrap();
        assert_eq!((s.get(0, 1), s.get(1, 0)), (0.30000000000000004, 0.30000000000000004));
    }

    #[test]
    fn congruence_scales_rows() {
        // Rows (1, 0), (1, 1) scaled by (2, 3): (2, 0), (3, 3).
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![1.0, 1.0]]).congruent(&[2.0, 3.0]);
        assert_eq!(g, Gram::from_rows(&[vec![2.0, 0.0], vec![3.0, 3.0]]));
    }
}
