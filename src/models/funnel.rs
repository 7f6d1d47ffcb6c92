//! What the funnel models (ESMM, CTnoCVR) share: the named click task y and
//! conversion task z (`[models.funnel]`), the stable logit of a product of
//! probabilities, and loss terms over all rows or over clicked rows only
//! (docs/reference.md section 4). When `[models.funnel]` is set, every model
//! reports the funnel metrics, so funnel and non-funnel models compare.

use serde::{Deserialize, Serialize};
use tch::{Kind, Reduction, Tensor};

use super::ModelError;

/// `[models.funnel]`: the click task and the conversion task (observed only
/// after a click) of the dataset. Required by `esmm` and `ctnocvr`; when set,
/// every model's run also records the funnel metrics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelConfig {
    /// Name of the click-like task y (e.g. "click").
    pub click: String,
    /// Name of the conversion-like task z (e.g. "buy"), observed after y.
    pub conversion: String,
}

/// A funnel resolved against a dataset's tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelSpec {
    pub click: usize,
    pub conversion: usize,
    pub click_task: String,
    pub conversion_task: String,
    /// The extra prediction column that ranks conversions among clicked rows
    /// (a funnel model's pCVR); `None`: the conversion task's own column.
    pub cvr_column: Option<&'static str>,
    /// An extra column with a fusion score for ranking conversions (CTnoCVR).
    pub fusion_column: Option<&'static str>,
}

impl FunnelConfig {
    /// Finds both tasks among the dataset's; an error names the key and the tasks there are.
    pub fn resolve(
        &self,
        tasks: &[String],
        cvr_column: Option<&'static str>,
        fusion_column: Option<&'static str>,
    ) -> Result<FunnelSpec, ModelError> {
        let find = |key: &str, name: &str| {
            tasks.iter().position(|t| t == name).ok_or_else(|| ModelError::Config {
                key: format!("models.funnel.{key}"),
                message: format!("no task `{name}` in the dataset; tasks: {}", tasks.join(", ")),
            })
        };
        let click = find("click", &self.click)?;
        let conversion = find("conversion", &self.conversion)?;
        if click == conversion {
            return Err(ModelError::Config {
                key: "models.funnel.conversion".into(),
                message: format!("must differ from the click task `{}`", self.click),
            });
        }
        Ok(FunnelSpec {
            click,
            conversion,
            click_task: self.click.clone(),
            conversion_task: self.conversion.clone(),
            cvr_column,
            fusion_column,
        })
    }
}

/// The funnel a funnel model needs, or an error naming `[models.funnel]`.
pub fn required(
    cfg: &Option<FunnelConfig>,
    tasks: &[String],
    model: &str,
    cvr_column: Option<&'static str>,
    fusion_column: Option<&'static str>,
) -> Result<FunnelSpec, ModelError> {
    match cfg {
        Some(f) => f.resolve(tasks, cvr_column, fusion_column),
        None => Err(ModelError::Config {
            key: "models.funnel".into(),
            message: format!(
                "{model} needs a click task and a conversion task: add [models.funnel] with click = \"...\" and \
                 conversion = \"...\" (dataset tasks: {})",
                tasks.join(", ")
            ),
        }),
    }
}

/// logit(sigmoid(a) * sigmoid(b)), computed stably: since
/// p / (1 - p) = 1 / (e^-a + e^-b + e^-(a+b)) for p = sigmoid(a) sigmoid(b),
/// the logit is -logsumexp(-a, -b, -a - b). With b = -c it is the logit of
/// sigmoid(a) * (1 - sigmoid(c)).
pub fn logit_of_product(a: &Tensor, b: &Tensor) -> Tensor {
    let na = -a;
    let nb = -b;
    let nab = &na + &nb;
    -Tensor::stack(&[na, nb, nab], -1).logsumexp([-1i64].as_slice(), false)
}

/// Mean BCE-with-logits of `logits` [B] against `target` [B] on the rows where
/// `mask` [B] is 1 (all rows when `None`). A batch with no such row gives 0
/// (still part of the graph, so the backward pass is uniform).
pub fn bce_masked(logits: &Tensor, target: &Tensor, mask: Option<&Tensor>) -> Tensor {
    match mask {
        None => logits.binary_cross_entropy_with_logits::<Tensor>(target, None, None, Reduction::Mean),
        Some(m) => {
            let per_row = logits.binary_cross_entropy_with_logits::<Tensor>(target, None, None, Reduction::None);
            (per_row * m).sum(Kind::Float) / m.sum(Kind::Float).clamp_min(1.0)
        }
    }
}

/// The loss-head layout of a funnel model: the dataset's tasks other than
/// the funnel pair, in order (they keep a plain BCE term each).
pub fn other_tasks(tasks: &[String], f: &FunnelSpec) -> Vec<usize> {
    (0..tasks.len()).filter(|&i| i != f.click && i != f.conversion).collect()
}

/// The loss-term names of a funnel model: its own funnel `terms`, then the
/// other tasks; refused when a task is named like a funnel term.
pub fn term_names(model: &str, terms: &[&str], tasks: &[String], f: &FunnelSpec) -> Result<Vec<String>, ModelError> {
    let mut names: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
    names.extend(other_tasks(tasks, f).into_iter().map(|i| tasks[i].clone()));
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(ModelError::Config {
                key: "data.tasks".into(),
                message: format!("{model} names a loss term `{n}`, which is also a task name; rename the task"),
            });
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    #[test]
    fn logit_of_product_is_the_product_of_probabilities() {
        let a = Tensor::randn([1000], (Kind::Float, Device::Cpu)) * 4.0;
        let b = Tensor::randn([1000], (Kind::Float, Device::Cpu)) * 4.0;
        let p = logit_of_product(&a, &b).sigmoid();
        let want = a.sigmoid() * b.sigmoid();
        assert!((p - want).abs().max().double_value(&[]) < 1e-6);
        // Stable at the extremes: finite and saturated in the right direction.
        let big = logit_of_product(&t(&[60.0, -60.0, 60.0]), &t(&[60.0, 0.0, -60.0]));
        let v: Vec<f32> = Vec::try_from(&big).unwrap();
        assert!(v.iter().all(|x| x.is_finite()), "{v:?}");
        assert!(v[0] > 50.0 && v[1] < -50.0 && v[2] < -50.0, "{v:?}");
    }

    #[test]
    fn masked_bce_by_hand() {
        // p = sigmoid(0) = 0.5 on row 0, sigmoid(ln 3) = 0.75 on row 1, row 2 masked out.
        let logits = t(&[0.0, 3f32.ln(), 5.0]);
        let target = t(&[1.0, 0.0, 0.0]);
        let mask = t(&[1.0, 1.0, 0.0]);
        let l = bce_masked(&logits, &target, Some(&mask)).double_value(&[]);
        let want = -(0.5f64.ln() + 0.25f64.ln()) / 2.0;
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
        let none = bce_masked(&logits, &target, Some(&t(&[0.0, 0.0, 0.0]))).double_value(&[]);
        assert_eq!(none, 0.0);
    }

    #[test]
    fn funnel_names_are_checked() {
        let schema = crate::data::FeatureSchema {
            categorical: vec![],
            multi: vec![],
            dense: vec![],
            tasks: vec!["click".into(), "buy".into()],
            numeric: vec![],
        };
        let schema = &schema.tasks;
        let ok = FunnelConfig { click: "click".into(), conversion: "buy".into() }.resolve(schema, None, None).unwrap();
        assert_eq!((ok.click, ok.conversion), (0, 1));
        let err = FunnelConfig { click: "clik".into(), conversion: "buy".into() }.resolve(schema, None, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("models.funnel.click") && msg.contains("clik") && msg.contains("click, buy"), "{msg}");
        let same = FunnelConfig { click: "buy".into(), conversion: "buy".into() }.resolve(schema, None, None).unwrap_err();
        assert!(same.to_string().contains("models.funnel.conversion"));
        let missing = required(&None, schema, "esmm", None, None).unwrap_err().to_string();
        assert!(missing.contains("models.funnel") && missing.contains("esmm"), "{missing}");
    }
}
