//! The small dense solvers the Gramian methods share, on T × T f64 matrices
//! (T is the number of loss terms, a handful): a linear solve, the symmetric
//! eigendecomposition (cyclic Jacobi) and pseudo-inverse, the min-norm point
//! of the convex hull of the gradients (exact by support enumeration, or
//! Frank–Wolfe), the projection onto the probability simplex, the box-
//! constrained QP behind the dual-cone projection (principal pivoting), the
//! fixed point G w = w^(-p) (Nash-MTL, FairGrad) by damped Newton steps on a
//! convex potential, and CAGrad's inner problem by projected gradient.
//! Kept in one place so that each method file only states its formula.

use super::gram::{dot, Gram};

/// Solves A x = b (A row-major n × n) by Gaussian elimination with partial
/// pivoting; `None` when A is singular to working precision.
pub fn solve_linear(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> = (0..n).map(|i| a[i * n..(i + 1) * n].to_vec()).collect();
    let mut x = b.to_vec();
    let scale = a.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    if scale == 0.0 {
        return None;
    }
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| m[i][c].abs().total_cmp(&m[j][c].abs()))?;
        if m[p][c].abs() <= 1e-14 * scale {
            return None;
        }
        m.swap(c, p);
        x.swap(c, p);
        for r in c + 1..n {
            let f = m[r][c] / m[c][c];
            for k in c..n {
                m[r][k] -= f * m[c][k];
            }
            x[r] -= f * x[c];
        }
    }
    for c in (0..n).rev() {
        let s: f64 = (c + 1..n).map(|k| m[c][k] * x[k]).sum();
        x[c] = (x[c] - s) / m[c][c];
    }
    x.iter().all(|v| v.is_finite()).then_some(x)
}

/// Eigenvalues (ascending) and eigenvectors of a symmetric matrix by cyclic
/// Jacobi rotations: `vectors[k]` is the unit eigenvector of `values[k]`.
pub fn sym_eigen(g: &Gram) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = g.dim();
    let mut a: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| g.get(i, j)).collect()).collect();
    let mut v: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    let total: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i][j] * a[i][j]).sum();
        if off <= 1e-30 * total || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[p][q] == 0.0 {
                    continue;
                }
                let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k][p], a[k][q]);
                    a[k][p] = c * akp - s * akq;
                    a[k][q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p][k], a[q][k]);
                    a[p][k] = c * apk - s * aqk;
                    a[q][k] = s * apk + c * aqk;
                }
                for row in v.iter_mut() {
                    let (vkp, vkq) = (row[p], row[q]);
                    row[p] = c * vkp - s * vkq;
                    row[q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[i][i].total_cmp(&a[j][j]));
    let values = order.iter().map(|&k| a[k][k]).collect();
    let vectors = order.iter().map(|&k| (0..n).map(|i| v[i][k]).collect()).collect();
    (values, vectors)
}

/// The pseudo-inverse of a symmetric matrix: eigenvalues with |λ| at most
/// `rtol` max |λ| count as zero (as `torch.linalg.pinv`, whose default
/// `rtol` is T machine epsilons, on the singular values).
pub fn pinv_sym(g: &Gram, rtol: f64) -> Gram {
    let n = g.dim();
    let (values, vectors) = sym_eigen(g);
    let top = values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut data = vec![0.0; n * n];
    for (l, v) in values.iter().zip(&vectors) {
        if l.abs() > rtol * top && *l != 0.0 {
            for i in 0..n {
                for j in 0..n {
                    data[i * n + j] += v[i] * v[j] / l;
                }
            }
        }
    }
    Gram::new(n, data).unwrap_or_else(|| Gram::identity(n).scaled(0.0))
}

/// The largest T for which [`min_norm_exact`] enumerates supports (2^T - 1 of them).
pub const MIN_NORM_EXACT_MAX_T: usize = 12;

/// argmin over the simplex of wᵀ G w: the weights of the min-norm point of
/// the convex hull of the gradients. T = 1, 2 in closed form; otherwise the
/// best over every support S of the affine minimiser on S (the KKT system
/// [G_SS 1; 1ᵀ 0]), keeping only those with non-negative weights. The true
/// minimiser has an affinely independent support (Carathéodory), so it is
/// among the candidates; every candidate is a point of the simplex, so the
/// minimum is exact. Use for T ≤ [`MIN_NORM_EXACT_MAX_T`].
pub fn min_norm_exact(g: &Gram) -> Vec<f64> {
    let n = g.dim();
    match n {
        0 => return vec![],
        1 => return vec![1.0],
        2 => {
            // min over γ of ||γ g1 + (1 - γ) g2||²: γ = (g2·g2 - g1·g2) / ||g1 - g2||².
            let (a, b, c) = (g.get(0, 0), g.get(0, 1), g.get(1, 1));
            let d = a + c - 2.0 * b;
            let gamma = if d > 0.0 { ((c - b) / d).clamp(0.0, 1.0) } else if a <= c { 1.0 } else { 0.0 };
            return vec![gamma, 1.0 - gamma];
        }
        _ => {}
    }
    let mut best: Option<(f64, Vec<f64>)> = None;
    for mask in 1u32..(1u32 << n) {
        let s: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let k = s.len();
        let mut a = vec![0.0; (k + 1) * (k + 1)];
        for (r, &i) in s.iter().enumerate() {
            for (c, &j) in s.iter().enumerate() {
                a[r * (k + 1) + c] = g.get(i, j);
            }
            a[r * (k + 1) + k] = 1.0;
            a[k * (k + 1) + r] = 1.0;
        }
        let mut rhs = vec![0.0; k + 1];
        rhs[k] = 1.0;
        let Some(x) = solve_linear(&a, &rhs) else { continue };
        if x[..k].iter().any(|&v| v < -1e-12) {
            continue;
        }
        let mut w = vec![0.0; n];
        for (r, &i) in s.iter().enumerate() {
            w[i] = x[r].max(0.0);
        }
        let sum: f64 = w.iter().sum();
        if sum <= 0.0 {
            continue;
        }
        w.iter_mut().for_each(|v| *v /= sum);
        let val = g.quad(&w);
        if best.as_ref().is_none_or(|(b, _)| val < *b) {
            best = Some((val, w));
        }
    }
    best.map_or_else(|| vec![1.0 / n as f64; n], |(_, w)| w)
}

/// Frank–Wolfe for the min-norm point (Sener and Koltun, Algorithm 2; the
/// same iteration as torchjd's MGDA): from the uniform weights, step towards
/// the vertex of least (G w)_t with the exact line search, until the step
/// γ falls below `epsilon` or after `max_iters` steps.
pub fn frank_wolfe(g: &Gram, epsilon: f64, max_iters: usize) -> Vec<f64> {
    let n = g.dim();
    let mut w = vec![1.0 / n as f64; n];
    for _ in 0..max_iters {
        let gw = g.mul_vec(&w);
        let t = (0..n).min_by(|&i, &j| gw[i].total_cmp(&gw[j])).unwrap_or(0);
        let a = gw[t];
        let b = dot(&w, &gw);
        let c = g.get(t, t);
        let gamma = if c <= a {
            1.0
        } else if b <= a {
            0.0
        } else {
            (b - a) / (b + c - 2.0 * a)
        };
        for (i, wi) in w.iter_mut().enumerate() {
            *wi = (1.0 - gamma) * *wi + if i == t { gamma } else { 0.0 };
        }
        if gamma < epsilon {
            break;
        }
    }
    w
}

/// Euclidean projection of `y` onto the probability simplex.
pub fn project_simplex(y: &[f64]) -> Vec<f64> {
    let mut s = y.to_vec();
    s.sort_by(|a, b| b.total_cmp(a));
    let mut cum = 0.0;
    let mut theta = (y.iter().sum::<f64>() - 1.0) / y.len() as f64;
    for (i, v) in s.iter().enumerate() {
        cum += v;
        let t = (cum - 1.0) / (i + 1) as f64;
        if s.get(i + 1).is_none_or(|next| t > *next) {
            theta = t;
            break;
        }
    }
    y.iter().map(|v| (v - theta).max(0.0)).collect()
}

/// argmin vᵀ A v subject to v ≥ u, for A symmetric positive definite: the
/// weights of the projection of Jᵀu onto the dual cone of the gradients
/// (Jacobian descent, Proposition 1). Solved as the linear complementarity
/// problem z = v - u ≥ 0, λ = A z + A u ≥ 0, zᵀλ = 0 by principal pivoting
/// with the least-index rule (Murty), finite for positive definite A.
pub fn dual_cone_weights(a: &Gram, u: &[f64]) -> Vec<f64> {
    let n = a.dim();
    let q = a.mul_vec(u);
    let tol = 1e-13 * q.iter().fold(a.trace(), |m, v| m.max(v.abs()));
    let mut free = vec![false; n];
    let mut z = vec![0.0; n];
    for _ in 0..(64 * n * n).max(64) {
        let s: Vec<usize> = (0..n).filter(|&i| free[i]).collect();
        z = vec![0.0; n];
        if !s.is_empty() {
            let k = s.len();
            let sub: Vec<f64> = s.iter().flat_map(|&i| s.iter().map(move |&j| (i, j))).map(|(i, j)| a.get(i, j)).collect();
            let rhs: Vec<f64> = s.iter().map(|&i| -q[i]).collect();
            match solve_linear(&sub, &rhs) {
                Some(x) => s.iter().zip(x).for_each(|(&i, v)| z[i] = v),
                None => {
                    let _ = k;
                    break;
                }
            }
        }
        let lambda: Vec<f64> = (0..n).map(|i| q[i] + (0..n).map(|j| a.get(i, j) * z[j]).sum::<f64>()).collect();
        let bad = (0..n).find(|&i| if free[i] { z[i] < -tol } else { lambda[i] < -tol });
        match bad {
            Some(i) => free[i] = !free[i],
            None => break,
        }
    }
    u.iter().zip(&z).map(|(ui, zi)| ui + zi.max(0.0)).collect()
}

/// The positive solution of G w = w^(-p) (elementwise power), p > 0: the
/// minimiser of the convex potential ½ wᵀ G w + Σ φ(w_i), φ'(w) = -w^(-p),
/// by damped Newton steps (Hessian G + diag(p w^(-p-1))) from `start`,
/// until the residual is below `tol` relative or `max_iters` steps. Terms
/// whose gradient is zero (G_ii = 0) have no finite solution and get 0.
pub fn power_fixed_point(g: &Gram, p: f64, start: &[f64], tol: f64, max_iters: usize) -> Vec<f64> {
    let n = g.dim();
    let live: Vec<usize> = (0..n).filter(|&i| g.get(i, i) > 0.0).collect();
    let k = live.len();
    let sub = Gram::new(k, live.iter().flat_map(|&i| live.iter().map(move |&j| (i, j))).map(|(i, j)| g.get(i, j)).collect());
    let Some(sub) = sub else { return vec![0.0; n] };
    let phi = |w: f64| if (p - 1.0).abs() < 1e-12 { -w.ln() } else { -w.powf(1.0 - p) / (1.0 - p) };
    let potential = |w: &[f64]| 0.5 * sub.quad(w) + w.iter().map(|&x| phi(x)).sum::<f64>();
    let mut w: Vec<f64> = live.iter().map(|&i| if start[i] > 0.0 { start[i] } else { 1.0 }).collect();
    for _ in 0..max_iters {
        let gw = sub.mul_vec(&w);
        let grad: Vec<f64> = (0..k).map(|i| gw[i] - w[i].powf(-p)).collect();
        let scale = (0..k).map(|i| w[i].powf(-p)).fold(0.0f64, f64::max);
        if grad.iter().all(|g| g.abs() <= tol * scale) {
            break;
        }
        let mut h = sub.data().to_vec();
        for i in 0..k {
            h[i * k + i] += p * w[i].powf(-p - 1.0);
        }
        let Some(step) = solve_linear(&h, &grad.iter().map(|g| -g).collect::<Vec<_>>()) else { break };
        let slope = dot(&grad, &step);
        let f0 = potential(&w);
        let mut t = 1.0;
        // Stay positive, then backtrack until the Armijo condition holds.
        while (0..k).any(|i| w[i] + t * step[i] <= 0.0) {
            t *= 0.5;
        }
        let mut next: Vec<f64> = (0..k).map(|i| w[i] + t * step[i]).collect();
        for _ in 0..60 {
            if potential(&next) <= f0 + 1e-4 * t * slope {
                break;
            }
            t *= 0.5;
            next = (0..k).map(|i| w[i] + t * step[i]).collect();
        }
        w = next;
    }
    let mut out = vec![0.0; n];
    for (r, &i) in live.iter().enumerate() {
        out[i] = w[r];
    }
    out
}

/// argmin over the simplex of bᵀ w + s sqrt(wᵀ G w) (CAGrad's dual), by
/// projected gradient steps with backtracking, from the uniform weights.
pub fn cagrad_inner(g: &Gram, b: &[f64], s: f64) -> Vec<f64> {
    let n = g.dim();
    let smooth = 1e-24 * g.trace().max(f64::MIN_POSITIVE);
    let f = |w: &[f64]| dot(b, w) + s * (g.quad(w) + smooth).sqrt();
    let mut w = vec![1.0 / n as f64; n];
    let mut step = 1.0 / (g.trace().sqrt() + dot(b, b).sqrt() + f64::MIN_POSITIVE);
    for _ in 0..20_000 {
        let gw = g.mul_vec(&w);
        let norm = (dot(&w, &gw) + smooth).sqrt();
        let grad: Vec<f64> = (0..n).map(|i| b[i] + s * gw[i] / norm).collect();
        let f0 = f(&w);
        let mut next;
        loop {
            next = project_simplex(&w.iter().zip(&grad).map(|(wi, gi)| wi - step * gi).collect::<Vec<_>>());
            let d: Vec<f64> = next.iter().zip(&w).map(|(a, b)| a - b).collect();
            if f(&next) <= f0 + dot(&grad, &d) + dot(&d, &d) / (2.0 * step) || step < 1e-300 {
                break;
            }
            step *= 0.5;
        }
        let moved = next.iter().zip(&w).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        w = next;
        if moved < 1e-15 {
            break;
        }
        step *= 1.5;
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn linear_solve_and_singular() {
        let x = solve_linear(&[2.0, 1.0, 1.0, 3.0], &[3.0, 5.0]).unwrap();
        assert!(close(&x, &[0.8, 1.4], 1e-15), "{x:?}");
        assert!(solve_linear(&[1.0, 2.0, 2.0, 4.0], &[1.0, 1.0]).is_none());
    }

    #[test]
    fn jacobi_eigen_of_a_known_matrix() {
        // [[2,1],[1,2]]: eigenvalues 1, 3 with vectors (1,-1)/√2, (1,1)/√2.
        let (l, v) = sym_eigen(&Gram::new(2, vec![2.0, 1.0, 1.0, 2.0]).unwrap());
        assert!(close(&l, &[1.0, 3.0], 1e-14), "{l:?}");
        let s = 0.5f64.sqrt();
        assert!((v[1][0].abs() - s).abs() < 1e-14 && (v[1][0] - v[1][1]).abs() < 1e-14);
        // Reconstruction of a 4 × 4 Gramian.
        let g = Gram::from_rows(&[vec![1.0, 2.0, 0.0], vec![0.5, -1.0, 3.0], vec![2.0, 0.0, 1.0], vec![1.0, 1.0, 1.0]]);
        let (l, v) = sym_eigen(&g);
        for i in 0..4 {
            for j in 0..4 {
                let r: f64 = (0..4).map(|k| l[k] * v[k][i] * v[k][j]).sum();
                assert!((r - g.get(i, j)).abs() < 1e-12);
            }
        }
        assert!(l[0].abs() < 1e-12, "rank 3: {l:?}");
    }

    #[test]
    fn min_norm_by_hand() {
        // g1 = (1, 0), g2 = (0, 2): γ = 4 / 5, point (0.8, 0.4).
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![0.0, 2.0]]);
        assert!(close(&min_norm_exact(&g), &[0.8, 0.2], 1e-15));
        // g1 = (1, 0), g2 = (2, 0): the nearer vertex g1.
        assert_eq!(min_norm_exact(&Gram::from_rows(&[vec![1.0, 0.0], vec![2.0, 0.0]])), vec![1.0, 0.0]);
        // Three unit vectors at 120°: 0 is their mean.
        let s = 3f64.sqrt() / 2.0;
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![-0.5, s], vec![-0.5, -s]]);
        assert!(close(&min_norm_exact(&g), &[1.0 / 3.0; 3], 1e-12));
        // (1, 0), (0, 1), (5, 5): the third is dominated, answer (1/2, 1/2, 0).
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![0.0, 1.0], vec![5.0, 5.0]]);
        assert!(close(&min_norm_exact(&g), &[0.5, 0.5, 0.0], 1e-12));
        // Frank–Wolfe approaches the same point.
        assert!(close(&frank_wolfe(&g, 1e-12, 10_000), &[0.5, 0.5, 0.0], 1e-3));
    }

    #[test]
    fn simplex_projection() {
        assert!(close(&project_simplex(&[0.5, 0.5]), &[0.5, 0.5], 0.0));
        assert!(close(&project_simplex(&[2.0, 0.0]), &[1.0, 0.0], 0.0));
        assert!(close(&project_simplex(&[0.4, 0.3, -1.0]), &[0.55, 0.45, 0.0], 1e-15));
    }

    #[test]
    fn dual_cone_projection_by_hand() {
        // A = I: v = max(u, 0) componentwise... with u ≥ constraint, v = u where A u ≥ 0.
        let v = dual_cone_weights(&Gram::identity(2), &[0.5, -0.25]);
        assert!(close(&v, &[0.5, 0.0], 1e-15), "{v:?}");
        // g1 = (1, 0), g2 = (-1, 1), u = e1: projecting g1 onto {x: g1·x ≥ 0, g2·x ≥ 0}
        // gives (1/2, 1/2) = 1·g1 + (1/2)·g2: v = (1, 1/2).
        let g = Gram::from_rows(&[vec![1.0, 0.0], vec![-1.0, 1.0]]);
        let v = dual_cone_weights(&g, &[1.0, 0.0]);
        assert!(close(&v, &[1.0, 0.5], 1e-14), "{v:?}");
    }

    #[test]
    fn power_fixed_point_solves_the_equation() {
        // Diagonal G = diag(4, 1), p = 1: w_i² G_ii = 1 -> w = (1/2, 1).
        let g = Gram::new(2, vec![4.0, 0.0, 0.0, 1.0]).unwrap();
        assert!(close(&power_fixed_point(&g, 1.0, &[1.0, 1.0], 1e-14, 100), &[0.5, 1.0], 1e-12));
        let g = Gram::from_rows(&[vec![1.0, 0.2, 0.0], vec![-0.3, 1.0, 0.5], vec![0.1, 0.1, 2.0]]);
        for p in [0.5, 1.0, 2.0] {
            let w = power_fixed_point(&g, p, &[1.0; 3], 1e-14, 200);
            let gw = g.mul_vec(&w);
            assert!(gw.iter().zip(&w).all(|(a, x)| (a - x.powf(-p)).abs() < 1e-10), "p {p}: {w:?}");
        }
        // A zero gradient gets weight 0, the rest are solved alone.
        let g = Gram::new(2, vec![0.0, 0.0, 0.0, 4.0]).unwrap();
        assert!(close(&power_fixed_point(&g, 1.0, &[1.0, 1.0], 1e-14, 100), &[0.0, 0.5], 1e-12));
    }

    #[test]
    fn pseudo_inverse_of_a_rank_one_matrix() {
        // G = v vᵀ with v = (1, 2): G⁺ = G / ||v||⁴ = G / 25.
        let g = Gram::from_rows(&[vec![1.0], vec![2.0]]);
        let p = pinv_sym(&g, 2.0 * f64::EPSILON);
        assert!(close(p.data(), &[1.0 / 25.0, 2.0 / 25.0, 2.0 / 25.0, 4.0 / 25.0], 1e-15), "{:?}", p.data());
    }
}
