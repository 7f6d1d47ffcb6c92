//! Pareto fronts: which points no other point beats on every coordinate
//! (higher is better on each). The static-weight arm's configurations trace
//! the scalarisation front of a model; the adaptive strategies are drawn
//! against it, one panel per pair of tasks.

use serde::Serialize;

use crate::stats::Summary;

/// Indices (ascending) of the points that no other point dominates. `q`
/// dominates `p` when it is at least as high on every coordinate and higher
/// on one; equal points do not dominate each other, so both stay. Points
/// with a non-finite coordinate are never on the front.
pub fn pareto_front(points: &[Vec<f64>]) -> Vec<usize> {
    let finite = |p: &Vec<f64>| p.iter().all(|x| x.is_finite());
    let dominates = |q: &Vec<f64>, p: &Vec<f64>| {
        q.len() == p.len() && q.iter().zip(p).all(|(a, b)| a >= b) && q.iter().zip(p).any(|(a, b)| a > b)
    };
    (0..points.len())
        .filter(|&i| finite(&points[i]) && !points.iter().any(|q| finite(q) && dominates(q, &points[i])))
        .collect()
}

/// A point of a panel: a configuration's (or arm's) mean ± std over seeds
/// of two tasks' test AUC.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParetoPoint {
    pub label: String,
    pub strategy: String,
    pub x: Summary,
    pub y: Summary,
}

/// One model, one pair of tasks: the static-weight points with their front
/// (indices into `static_points`, by increasing x) and the other arms, each
/// at its configurations selected on validation per seed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParetoPanel {
    pub model: String,
    pub x_task: String,
    pub y_task: String,
    pub static_points: Vec<ParetoPoint>,
    pub front: Vec<usize>,
    pub arms: Vec<ParetoPoint>,
}

/// The front of the static points in this panel's two coordinates, by increasing x.
pub fn panel_front(points: &[ParetoPoint]) -> Vec<usize> {
    let coords: Vec<Vec<f64>> = points.iter().map(|p| vec![p.x.mean, p.y.mean]).collect();
    let mut front = pareto_front(&coords);
    front.sort_by(|&a, &b| points[a].x.mean.total_cmp(&points[b].x.mean));
    front
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_by_hand() {
        // (0.9, 0.1), (0.5, 0.5), (0.1, 0.9) trade off; (0.4, 0.4) is below
        // (0.5, 0.5); (0.5, 0.3) is below (0.5, 0.5) on y alone; (0.1, 0.9)
        // appears twice and both copies stay.
        let pts = vec![
            vec![0.9, 0.1],
            vec![0.4, 0.4],
            vec![0.5, 0.5],
            vec![0.5, 0.3],
            vec![0.1, 0.9],
            vec![0.1, 0.9],
            vec![f64::NAN, 2.0],
        ];
        assert_eq!(pareto_front(&pts), vec![0, 2, 4, 5]);
        // Three coordinates: (1, 1, 0) and (0, 0, 1) both stay, (0.5, 0.5, 0) goes.
        assert_eq!(pareto_front(&[vec![1.0, 1.0, 0.0], vec![0.0, 0.0, 1.0], vec![0.5, 0.5, 0.0]]), vec![0, 1]);
        assert_eq!(pareto_front(&[]), Vec::<usize>::new());
    }

    #[test]
    fn panel_front_runs_by_increasing_x() {
        let s = |m: f64| Summary { n: 3, mean: m, std: 0.01 };
        let p = |x: f64, y: f64| ParetoPoint { label: String::new(), strategy: "static".into(), x: s(x), y: s(y) };
        let pts = [p(0.7, 0.5), p(0.5, 0.7), p(0.6, 0.6), p(0.55, 0.55)];
        assert_eq!(panel_front(&pts), vec![1, 2, 0]);
    }
}
