//! Numeric encodings: quantile bins, piecewise-linear encoding (PLE) and
//! periodic inputs (Gorishniy et al., NeurIPS 2022, "On Embeddings for
//! Numerical Features in Tabular Deep Learning",
//! <https://arxiv.org/abs/2203.05556>). A neural ranker given a continuous
//! column as one scalar trails gradient-boosted trees; these encodings let
//! the input layer learn a non-linear embedding per column instead.
//!
//! This module is the one place where encodings are computed. A source
//! delivers its numeric columns as dense columns (NaN = missing); [`apply`]
//! fits the bin edges and statistics on the train split only, stores them
//! in the schema as [`NumericField`]s, and moves the columns out of the dense
//! block into per-row (bin id, value) pairs. [`block`] turns those pairs into
//! the tensor layout the input layer reads, once per split.

use serde::{Deserialize, Serialize};

use super::cache;
use super::schema::{FeatureSchema, SplitData};

/// Bins when a grid file gives none.
pub const DEFAULT_BINS: usize = 32;
/// Standard deviation of the periodic frequencies' initialisation.
pub const DEFAULT_SIGMA: f64 = 0.1;
/// Frequencies per periodic column.
pub const DEFAULT_FREQUENCIES: usize = 16;

/// The encodings a numeric column can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncodingKind {
    /// Train-quantile bins, each bin an embedding.
    Quantile,
    /// The paper's PLE on train-quantile edges, then a linear map.
    PiecewiseLinear,
    /// [sin(2π c x), cos(2π c x)] with learned c ~ N(0, σ²), then a linear map.
    Periodic,
}

impl EncodingKind {
    pub fn name(self) -> &'static str {
        match self {
            EncodingKind::Quantile => "quantile",
            EncodingKind::PiecewiseLinear => "piecewise-linear",
            EncodingKind::Periodic => "periodic",
        }
    }
}

/// What follows the linear map of a piecewise-linear or periodic encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    #[default]
    None,
    Relu,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
        }
    }
}

/// An encoding with its settings resolved (defaults filled in, checked).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Encoding {
    Quantile { bins: usize },
    PiecewiseLinear { bins: usize, activation: Activation },
    Periodic { sigma: f64, frequencies: usize, activation: Activation },
}

impl Encoding {
    pub fn kind(&self) -> EncodingKind {
        match self {
            Encoding::Quantile { .. } => EncodingKind::Quantile,
            Encoding::PiecewiseLinear { .. } => EncodingKind::PiecewiseLinear,
            Encoding::Periodic { .. } => EncodingKind::Periodic,
        }
    }
}

/// The encoding settings as a grid file writes them (unset = default).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Settings {
    pub bins: Option<usize>,
    pub activation: Option<Activation>,
    pub sigma: Option<f64>,
    pub frequencies: Option<usize>,
    pub keep_dense: bool,
}

/// A setting that is refused: the settings key (`bins`, `sigma`, ...) and why.
pub type SettingError = (&'static str, String);

/// Resolves the settings of `kind`; a setting the encoding does not use, or
/// a value out of range, is refused.
pub fn resolve(kind: EncodingKind, s: &Settings) -> Result<Encoding, SettingError> {
    let name = kind.name();
    let unused = |key: &'static str, used_by: &str| Err((key, format!("`transform = \"{name}\"` does not use `{key}` ({used_by} only)")));
    let binned = matches!(kind, EncodingKind::Quantile | EncodingKind::PiecewiseLinear);
    if !binned && s.bins.is_some() {
        return unused("bins", "quantile and piecewise-linear");
    }
    if kind != EncodingKind::Periodic {
        if s.sigma.is_some() {
            return unused("sigma", "periodic");
        }
        if s.frequencies.is_some() {
            return unused("frequencies", "periodic");
        }
    }
    if kind == EncodingKind::Quantile && s.activation.is_some() {
        return unused("activation", "piecewise-linear and periodic; a quantile bin is an embedding lookup");
    }
    let bins = s.bins.unwrap_or(DEFAULT_BINS);
    if bins < 2 {
        return Err(("bins", format!("needs at least 2 bins, got {bins}")));
    }
    let activation = s.activation.unwrap_or_default();
    Ok(match kind {
        EncodingKind::Quantile => Encoding::Quantile { bins },
        EncodingKind::PiecewiseLinear => Encoding::PiecewiseLinear { bins, activation },
        EncodingKind::Periodic => {
            let sigma = s.sigma.unwrap_or(DEFAULT_SIGMA);
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(("sigma", format!("must be a positive number, got {sigma}")));
            }
            let frequencies = s.frequencies.unwrap_or(DEFAULT_FREQUENCIES);
            if frequencies == 0 {
                return Err(("frequencies", "needs at least 1 frequency".into()));
            }
            Encoding::Periodic { sigma, frequencies, activation }
        }
    })
}

/// Refuses encoding settings on a column whose transform is a plain scalar
/// one (`none`, `log1p`, `standardize`).
pub fn refuse_on_scalar(transform: &str, s: &Settings) -> Result<(), SettingError> {
    let set: [(&'static str, bool); 5] = [
        ("bins", s.bins.is_some()),
        ("activation", s.activation.is_some()),
        ("sigma", s.sigma.is_some()),
        ("frequencies", s.frequencies.is_some()),
        ("keep_dense", s.keep_dense),
    ];
    match set.iter().find(|(_, on)| *on) {
        Some((key, _)) => {
            Err((key, format!("`transform = \"{transform}\"` does not use `{key}` (quantile, piecewise-linear and periodic do)")))
        }
        None => Ok(()),
    }
}

fn default_emb() -> i64 {
    4
}

/// `[data] dense = { transform = "quantile", ... }` of the WeChat sources:
/// one encoding for every dense feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseEncoding {
    pub transform: EncodingKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation: Option<Activation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequencies: Option<usize>,
    /// Keep the standardized scalar beside its embedding.
    #[serde(default)]
    pub keep_dense: bool,
    /// Embedding width of every encoded feature (default 4).
    #[serde(default = "default_emb")]
    pub emb_dim: i64,
}

impl DenseEncoding {
    /// The resolved request for every dense feature, or the refused setting.
    pub fn request(&self) -> Result<Request, SettingError> {
        let s = Settings {
            bins: self.bins,
            activation: self.activation,
            sigma: self.sigma,
            frequencies: self.frequencies,
            keep_dense: self.keep_dense,
        };
        let encoding = resolve(self.transform, &s)?;
        if self.emb_dim < 1 {
            return Err(("emb_dim", format!("must be a positive width, got {}", self.emb_dim)));
        }
        Ok(Request { encoding, emb_dim: self.emb_dim, keep_dense: self.keep_dense })
    }
}

/// What [`apply`] does with one dense column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    pub encoding: Encoding,
    pub emb_dim: i64,
    pub keep_dense: bool,
}

/// An encoded numeric column of the schema: its encoding and what was
/// fitted on the train split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericField {
    pub name: String,
    pub emb_dim: i64,
    pub encoding: Encoding,
    /// Train-split quantile edges, ascending and distinct (duplicates
    /// merged); empty for periodic.
    pub edges: Vec<f64>,
    /// Mean and population standard deviation of the train split's values
    /// (1 when constant): the periodic input and the kept scalar.
    pub mean: f64,
    pub sd: f64,
}

impl NumericField {
    /// Bins of a value that is present (bin ids 1..=bins; 0 is missing).
    pub fn bins(&self) -> usize {
        self.edges.len().saturating_sub(1).max(1)
    }

    /// Values per row in the batch block of this field (see [`block`]).
    pub fn width(&self) -> usize {
        match self.encoding {
            Encoding::Quantile { .. } => 1,
            Encoding::PiecewiseLinear { .. } => self.edges.len().saturating_sub(1) + 1,
            Encoding::Periodic { .. } => 2,
        }
    }

    /// The standardized value (train mean and std); missing -> 0.
    pub fn standardize(&self, x: f32) -> f32 {
        if x.is_nan() {
            0.0
        } else {
            ((x as f64 - self.mean) / self.sd) as f32
        }
    }

    /// (bin id, value) of one input. Bin `t` (1-based) holds
    /// [b_{t-1}, b_t); values below the first edge fall in bin 1, values at
    /// or above the last in the last bin; missing (NaN) is bin 0. The value
    /// is the position inside the bin, (x - b_{t-1}) / (b_t - b_{t-1}),
    /// below 0 or above 1 in the open-ended first and last bins (binned
    /// encodings), or the standardized input (periodic).
    pub fn encode(&self, x: f32) -> (i64, f32) {
        if x.is_nan() {
            return (0, 0.0);
        }
        if let Encoding::Periodic { .. } = self.encoding {
            return (1, self.standardize(x));
        }
        let e = &self.edges;
        if e.len() < 2 {
            return (1, 0.0);
        }
        let x = x as f64;
        let bin = 1 + e[1..e.len() - 1].partition_point(|&b| b <= x);
        let (lo, hi) = (e[bin - 1], e[bin]);
        (bin as i64, ((x - lo) / (hi - lo)) as f32)
    }
}

/// Edges at the quantiles 0, 1/bins, ..., 1 of `sorted` (linear
/// interpolation between order statistics, numpy's default), duplicates
/// merged. Empty for no values.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let n = sorted.len();
    let mut edges: Vec<f64> = Vec::with_capacity(bins + 1);
    if n == 0 {
        return edges;
    }
    for t in 0..=bins {
        let pos = t as f64 / bins as f64 * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let v = sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo]);
        if edges.last() != Some(&v) {
            edges.push(v);
        }
    }
    edges
}

/// Fits `req` on a column's train values (NaN = missing).
pub fn fit(name: &str, train: &[f32], req: &Request) -> NumericField {
    let mut v: Vec<f64> = train.iter().filter(|x| !x.is_nan()).map(|&x| x as f64).collect();
    v.sort_by(f64::total_cmp);
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let edges = match req.encoding {
        Encoding::Quantile { bins } | Encoding::PiecewiseLinear { bins, .. } => quantile_edges(&v, bins),
        Encoding::Periodic { .. } => Vec::new(),
    };
    NumericField { name: name.to_string(), emb_dim: req.emb_dim, encoding: req.encoding, edges, mean, sd: if sd > 0.0 { sd } else { 1.0 } }
}

/// Encodes the dense columns with a request (`requests[j]` for
/// `schema.dense[j]`; at most as long as the dense list): fits them on the
/// train split, adds them to `schema.numeric`, and replaces each split's
/// dense block by the remaining columns (plus the standardized scalar of a
/// `keep_dense` column, in its place) and the encoded (bin id, value) pairs.
pub fn apply(schema: &mut FeatureSchema, splits: [&mut SplitData; 3], requests: &[Option<Request>]) {
    if requests.iter().all(Option::is_none) {
        return;
    }
    let nd = schema.dense.len();
    let [train, valid, test] = splits;
    let mut fields: Vec<Option<NumericField>> = vec![None; nd];
    for (j, req) in requests.iter().enumerate().take(nd) {
        if let Some(req) = req {
            let column: Vec<f32> = (0..train.rows).map(|r| train.dense[r * nd + j]).collect();
            fields[j] = Some(fit(&schema.dense[j], &column, req));
        }
    }
    let keeps = |j: usize| requests.get(j).copied().flatten().is_none_or(|r| r.keep_dense);
    let nf = fields.iter().flatten().count();
    for split in [train, valid, test] {
        let mut dense = Vec::with_capacity(split.rows * (0..nd).filter(|&j| keeps(j)).count());
        let mut ids = Vec::with_capacity(split.rows * nf);
        let mut values = Vec::with_capacity(split.rows * nf);
        for row in split.dense.chunks(nd.max(1)).take(split.rows) {
            for (j, &x) in row.iter().enumerate() {
                match &fields[j] {
                    None => dense.push(x),
                    Some(f) => {
                        let (id, v) = f.encode(x);
                        ids.push(id);
                        values.push(v);
                        if keeps(j) {
                            dense.push(f.standardize(x));
                        }
                    }
                }
            }
        }
        split.dense = dense;
        split.numeric_ids = ids;
        split.numeric_values = values;
    }
    schema.dense = (0..nd).filter(|&j| keeps(j)).map(|j| schema.dense[j].clone()).collect();
    schema.numeric = fields.into_iter().flatten().collect();
}

/// The dataset digest with the fitted encodings mixed in (unchanged when
/// there are none), so that cell keys change when edges change.
pub fn digest_with(digest: String, fields: &[NumericField]) -> String {
    if fields.is_empty() {
        return digest;
    }
    let json = serde_json::to_string(fields).unwrap_or_default();
    cache::key_of(&["numeric-v1", &digest, &json])[..16].to_string()
}

/// A field's batch block: bin ids (quantile) or values (the others).
pub enum Block {
    Ids(Vec<i64>),
    Values(Vec<f32>),
}

/// The batch block of field `f` (column `i` of the split's encoded pairs),
/// row-major with [`NumericField::width`] values per row:
/// - quantile: the bin id (0 = missing), as `i64`;
/// - piecewise-linear: components 1..=T, then a missing flag, where
///   component t is 1 below the value's bin, the position inside the bin
///   at it, 0 above it (the paper's PLE; a missing value is all 0 with the
///   flag 1);
/// - periodic: the standardized value (0 when missing), then the missing flag.
pub fn block(f: &NumericField, i: usize, split: &SplitData, n_fields: usize) -> Block {
    let pairs = (0..split.rows).map(|r| (split.numeric_ids[r * n_fields + i], split.numeric_values[r * n_fields + i]));
    match f.encoding {
        Encoding::Quantile { .. } => Block::Ids(pairs.map(|(id, _)| id).collect()),
        Encoding::PiecewiseLinear { .. } => {
            let w = f.width();
            let mut out = vec![0f32; split.rows * w];
            for (r, (id, v)) in pairs.enumerate() {
                piecewise_linear_row(id, v, &mut out[r * w..(r + 1) * w]);
            }
            Block::Values(out)
        }
        Encoding::Periodic { .. } => Block::Values(pairs.flat_map(|(id, v)| [v, (id == 0) as u8 as f32]).collect()),
    }
}

/// One row of the piecewise-linear block (`out`: T components + missing flag, zeroed).
pub fn piecewise_linear_row(id: i64, v: f32, out: &mut [f32]) {
    let t = out.len() - 1;
    if id == 0 {
        out[t] = 1.0;
        return;
    }
    if t == 0 {
        return;
    }
    let k = id as usize;
    out[..k - 1].fill(1.0);
    out[k - 1] = v;
}

#[cfg(test)]
#[path = "numeric_tests.rs"]
mod tests;
