//! Funnel metrics for a click task y and a conversion task z observed only
//! after a click (docs/reference.md section 4): CTR AUC on all rows, CVR AUC on
//! clicked rows only, CTCVR AUC on all rows with label y * z. Pure functions
//! on slices, so that every funnel and non-funnel model is scored the same way.

use super::auc::auc;

/// The funnel figures of one split. AUCs are `None` when a class is absent.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelMetrics {
    /// AUC of pCTR against y, all rows.
    pub ctr_auc: Option<f64>,
    /// AUC of the CVR score against z, rows with y = 1 only.
    pub cvr_auc: Option<f64>,
    /// AUC of pCTCVR against y * z, all rows.
    pub ctcvr_auc: Option<f64>,
    /// Rows with y = 1 (what the CVR AUC rests on).
    pub clicked_rows: usize,
    /// Rows with z = 1 and y = 0: zero on a consistent funnel.
    pub conversions_without_click: usize,
}

impl FunnelMetrics {
    /// (metric name, value) pairs for storage; undefined AUCs are left out.
    pub fn rows(&self) -> Vec<(&'static str, f64)> {
        let mut out = Vec::new();
        for (name, v) in [("ctr_auc", self.ctr_auc), ("cvr_auc", self.cvr_auc), ("ctcvr_auc", self.ctcvr_auc)] {
            if let Some(v) = v {
                out.push((name, v));
            }
        }
        out.push(("clicked_rows", self.clicked_rows as f64));
        out.push(("conversions_without_click", self.conversions_without_click as f64));
        out
    }
}

/// AUC of `score` against `conv` on the rows where `click` is positive.
pub fn auc_on_clicked(click: &[f32], conv: &[f32], score: &[f32]) -> Option<f64> {
    assert_eq!(click.len(), conv.len(), "click and conversion labels differ in length");
    assert_eq!(click.len(), score.len(), "labels and scores differ in length");
    let (labels, scores): (Vec<f32>, Vec<f32>) =
        click.iter().zip(conv).zip(score).filter(|((&y, _), _)| y > 0.5).map(|((_, &z), &s)| (z, s)).unzip();
    auc(&labels, &scores)
}

/// The three funnel AUCs. `p_cvr` is the score that ranks conversions among
/// clicked rows (a funnel model's pCVR; for other models their conversion
/// column), `p_ctcvr` the entire-space conversion score.
pub fn funnel_metrics(click: &[f32], conv: &[f32], p_ctr: &[f32], p_cvr: &[f32], p_ctcvr: &[f32]) -> FunnelMetrics {
    assert_eq!(click.len(), p_ctr.len(), "labels and pCTR differ in length");
    assert_eq!(click.len(), p_ctcvr.len(), "labels and pCTCVR differ in length");
    let ctcvr_labels: Vec<f32> = click.iter().zip(conv).map(|(&y, &z)| if y > 0.5 && z > 0.5 { 1.0 } else { 0.0 }).collect();
    FunnelMetrics {
        ctr_auc: auc(click, p_ctr),
        cvr_auc: auc_on_clicked(click, conv, p_cvr),
        ctcvr_auc: auc(&ctcvr_labels, p_ctcvr),
        clicked_rows: click.iter().filter(|&&y| y > 0.5).count(),
        conversions_without_click: click.iter().zip(conv).filter(|(&y, &z)| y < 0.5 && z > 0.5).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_funnel() {
        // Rows:      0    1    2    3    4    5
        let y = [1.0, 1.0, 1.0, 0.0, 0.0, 1.0];
        let z = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0]; // row 4 converts without a click
        let p_ctr = [0.9, 0.8, 0.3, 0.2, 0.7, 0.1];
        let p_cvr = [0.6, 0.7, 0.2, 0.9, 0.9, 0.5];
        let p_ctcvr = [0.5, 0.2, 0.1, 0.05, 0.4, 0.3];
        let m = funnel_metrics(&y, &z, &p_ctr, &p_cvr, &p_ctcvr);
        // CTR: positives {0.9, 0.8, 0.3, 0.1} vs negatives {0.2, 0.7}:
        // 0.9 beats both, 0.8 both, 0.3 beats 0.2, 0.1 none -> 5 / 8.
        assert_eq!(m.ctr_auc, Some(5.0 / 8.0));
        // CVR on clicked rows {0, 1, 2, 5}: positives {0.6, 0.5} vs negatives {0.7, 0.2}:
        // 0.6 beats 0.2, 0.5 beats 0.2 -> 2 / 4. Rows 3 and 4 (unclicked) are ignored.
        assert_eq!(m.cvr_auc, Some(0.5));
        // CTCVR labels y*z = [1, 0, 0, 0, 0, 1]: positives {0.5, 0.3} vs
        // negatives {0.2, 0.1, 0.05, 0.4}: 0.5 beats 4, 0.3 beats 3 -> 7 / 8.
        assert_eq!(m.ctcvr_auc, Some(7.0 / 8.0));
        assert_eq!(m.clicked_rows, 4);
        assert_eq!(m.conversions_without_click, 1);
        let names: Vec<&str> = m.rows().iter().map(|r| r.0).collect();
        assert_eq!(names, ["ctr_auc", "cvr_auc", "ctcvr_auc", "clicked_rows", "conversions_without_click"]);
    }

    #[test]
    fn undefined_cvr_auc_when_no_clicked_conversion() {
        let y = [1.0, 1.0, 0.0];
        let z = [0.0, 0.0, 0.0];
        let m = funnel_metrics(&y, &z, &[0.5, 0.4, 0.3], &[0.1, 0.2, 0.3], &[0.1, 0.1, 0.1]);
        assert_eq!(m.cvr_auc, None);
        assert_eq!(m.ctcvr_auc, None);
        assert!(m.ctr_auc.is_some());
        assert!(!m.rows().iter().any(|r| r.0 == "cvr_auc"));
    }
}
