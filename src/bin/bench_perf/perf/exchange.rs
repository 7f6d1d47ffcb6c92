//! The folder `bench-perf` hands to both sides of the comparison, so that
//! mtlbench and the PyTorch reference train on the same bytes: the train
//! and test rows, the batch order, each model's initial weights and the
//! probabilities those weights give on the first test rows (the reference
//! checks its architecture against them before it trains). Everything is
//! raw little-endian arrays plus `manifest.json` describing them, readable
//! with `numpy.fromfile` and without any serialisation library.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

use super::PerfError;
use mtlbench::data::{FeatureSchema, Ragged, SplitData};
use mtlbench::models::{self, ModelKind, ModelsConfig};
use mtlbench::train::StepPath;

pub const MANIFEST: &str = "manifest.json";
/// Bump when the layout changes (the Python script checks it).
pub const FORMAT: u32 = 1;

/// One raw array file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArrayInfo {
    pub file: String,
    /// "f32" or "i64", little-endian.
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// A split's blocks, as in [`SplitData`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitFiles {
    pub rows: usize,
    pub categorical: ArrayInfo,
    pub multi_ids: Vec<ArrayInfo>,
    pub multi_mask: Vec<ArrayInfo>,
    pub dense: ArrayInfo,
    pub labels: ArrayInfo,
    pub users: ArrayInfo,
}

/// One variable of a model's VarStore inside the weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightInfo {
    pub name: String,
    pub shape: Vec<i64>,
    /// Offset in f32 elements.
    pub offset: usize,
    pub trainable: bool,
}

/// A model's initial state and the check of its forward pass.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFiles {
    pub kind: ModelKind,
    pub weights_file: String,
    pub weights: Vec<WeightInfo>,
    /// Eval-mode probabilities [rows, tasks] of the initial weights on the first test rows.
    pub check_probs: ArrayInfo,
}

/// The optimisation settings both sides use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainSettings {
    pub batch_size: usize,
    pub steps: usize,
    /// Steps at the start that the throughput does not count.
    pub warmup: usize,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub eval_batch_size: usize,
    pub trace_every: usize,
    pub seed: u64,
    /// How mtlbench's steps compute their gradients (the reference ignores it).
    #[serde(default, skip_serializing_if = "StepPath::is_default")]
    pub step: StepPath,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub dataset: String,
    pub schema: FeatureSchema,
    pub models_config: ModelsConfig,
    pub train: TrainSettings,
    pub threads: usize,
    pub train_split: SplitFiles,
    pub test_split: SplitFiles,
    /// Row order of the training steps, i64 [steps * batch_size]: epochs 1,
    /// 2, ... of `SplitTensors::shuffled(batch_size, seed, epoch)` over the
    /// train rows, one after the other (more than one only where the train
    /// rows are whole batches).
    pub order: ArrayInfo,
    pub models: Vec<ModelFiles>,
}

impl Manifest {
    pub fn read(dir: &Path) -> Result<Manifest, PerfError> {
        let path = dir.join(MANIFEST);
        let text = fs::read_to_string(&path).map_err(|e| PerfError::io(&path, e))?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| PerfError::Format { path: path.clone(), message: e.to_string() })?;
        if m.format != FORMAT {
            return Err(PerfError::Format { path, message: format!("format {} here, this program reads {FORMAT}", m.format) });
        }
        Ok(m)
    }

    pub fn write(&self, dir: &Path) -> Result<(), PerfError> {
        let path = dir.join(MANIFEST);
        let text = serde_json::to_string_pretty(self).map_err(|e| PerfError::Format { path: path.clone(), message: e.to_string() })?;
        fs::write(&path, text).map_err(|e| PerfError::io(&path, e))
    }

    pub fn model(&self, kind: ModelKind) -> Result<&ModelFiles, PerfError> {
        self.models.iter().find(|m| m.kind == kind).ok_or_else(|| PerfError::Format {
            path: PathBuf::from(MANIFEST),
            message: format!("no initial weights for model {}", kind.name()),
        })
    }
}

/// Little-endian values that go to and come from the raw files.
pub trait Raw: Copy {
    const DTYPE: &'static str;
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(b: &[u8]) -> Self;
}

impl Raw for f32 {
    const DTYPE: &'static str = "f32";
    const SIZE: usize = 4;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl Raw for i64 {
    const DTYPE: &'static str = "i64";
    const SIZE: usize = 8;
    fn put(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(b: &[u8]) -> Self {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        i64::from_le_bytes(a)
    }
}

/// Writes `values` (shape `shape`) to `dir/file`.
pub fn write_array<T: Raw>(dir: &Path, file: &str, values: &[T], shape: Vec<usize>) -> Result<ArrayInfo, PerfError> {
    let path = dir.join(file);
    let f = fs::File::create(&path).map_err(|e| PerfError::io(&path, e))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut buf = Vec::with_capacity(64 * 1024);
    for chunk in values.chunks(8192) {
        buf.clear();
        for &v in chunk {
            v.put(&mut buf);
        }
        w.write_all(&buf).map_err(|e| PerfError::io(&path, e))?;
    }
    w.flush().map_err(|e| PerfError::io(&path, e))?;
    Ok(ArrayInfo { file: file.to_string(), dtype: T::DTYPE.to_string(), shape })
}

/// Reads an array written by [`write_array`], checking its type and size.
pub fn read_array<T: Raw>(dir: &Path, info: &ArrayInfo) -> Result<Vec<T>, PerfError> {
    let path = dir.join(&info.file);
    if info.dtype != T::DTYPE {
        return Err(PerfError::Format { path, message: format!("dtype {} where {} was expected", info.dtype, T::DTYPE) });
    }
    let bytes = fs::read(&path).map_err(|e| PerfError::io(&path, e))?;
    let n: usize = info.shape.iter().product();
    if bytes.len() != n * T::SIZE {
        return Err(PerfError::Format {
            path,
            message: format!("{} bytes, expected {} for shape {:?}", bytes.len(), n * T::SIZE, info.shape),
        });
    }
    Ok(bytes.chunks_exact(T::SIZE).map(T::get).collect())
}

/// Writes a split's blocks as `{prefix}_*.bin`.
pub fn write_split(dir: &Path, prefix: &str, split: &SplitData, schema: &FeatureSchema) -> Result<SplitFiles, PerfError> {
    let n = split.rows;
    let mut multi_ids = Vec::new();
    let mut multi_mask = Vec::new();
    // The reference reads the multi-valued fields padded to max_len, with a mask.
    for (i, (f, m)) in schema.multi.iter().zip(&split.multi).enumerate() {
        let (ids, mask) = m.to_padded(f.max_len);
        multi_ids.push(write_array(dir, &format!("{prefix}_multi{i}_ids.bin"), &ids, vec![n, f.max_len])?);
        multi_mask.push(write_array(dir, &format!("{prefix}_multi{i}_mask.bin"), &mask, vec![n, f.max_len])?);
    }
    Ok(SplitFiles {
        rows: n,
        categorical: write_array(dir, &format!("{prefix}_categorical.bin"), &split.categorical, vec![n, schema.categorical.len()])?,
        multi_ids,
        multi_mask,
        dense: write_array(dir, &format!("{prefix}_dense.bin"), &split.dense, vec![n, schema.dense.len()])?,
        labels: write_array(dir, &format!("{prefix}_labels.bin"), &split.labels, vec![n, schema.tasks.len()])?,
        users: write_array(dir, &format!("{prefix}_users.bin"), &split.users, vec![n])?,
    })
}

/// Reads a split written by [`write_split`] and checks it against the schema.
pub fn read_split(dir: &Path, files: &SplitFiles, schema: &FeatureSchema) -> Result<SplitData, PerfError> {
    let mut multi = Vec::new();
    for ((ids, mask), f) in files.multi_ids.iter().zip(&files.multi_mask).zip(&schema.multi) {
        let ragged = Ragged::from_padded(&read_array(dir, ids)?, &read_array(dir, mask)?, f.max_len)
            .map_err(|e| PerfError::Format { path: dir.join(&ids.file), message: e.to_string() })?;
        multi.push(ragged);
    }
    let split = SplitData {
        rows: files.rows,
        categorical: read_array(dir, &files.categorical)?,
        multi,
        dense: read_array(dir, &files.dense)?,
        labels: read_array(dir, &files.labels)?,
        users: read_array(dir, &files.users)?,
        ..Default::default()
    };
    split.check(schema).map_err(|message| PerfError::Format { path: dir.join(MANIFEST), message })?;
    Ok(split)
}

/// Rows `rows` of a split, in that order.
pub fn take_rows(split: &SplitData, schema: &FeatureSchema, rows: &[usize]) -> SplitData {
    fn block<T: Copy>(src: &[T], width: usize, rows: &[usize]) -> Vec<T> {
        let mut out = Vec::with_capacity(rows.len() * width);
        for &r in rows {
            out.extend_from_slice(&src[r * width..(r + 1) * width]);
        }
        out
    }
    SplitData {
        rows: rows.len(),
        categorical: block(&split.categorical, schema.categorical.len(), rows),
        multi: split.multi.iter().map(|m| m.take_rows(rows)).collect(),
        dense: block(&split.dense, schema.dense.len(), rows),
        labels: block(&split.labels, schema.tasks.len(), rows),
        users: block(&split.users, 1, rows),
        ..Default::default()
    }
}

/// A model's variables as the reference names them: one embedding table
/// per field ([`models::input::per_field_variables`]).
pub fn model_variables(
    vs: &nn::VarStore,
    schema: &FeatureSchema,
    cfg: &ModelsConfig,
) -> Result<BTreeMap<String, Tensor>, PerfError> {
    models::input::per_field_variables(vs, schema, &cfg.input).map_err(|e| PerfError::Model(e.to_string()))
}

/// Writes every variable of `vars` (name order) into one f32 file.
pub fn write_weights(dir: &Path, file: &str, vars: &BTreeMap<String, Tensor>) -> Result<Vec<WeightInfo>, PerfError> {
    let mut all: Vec<f32> = Vec::new();
    let mut infos = Vec::with_capacity(vars.len());
    for (name, t) in vars {
        let name = name.clone();
        let flat = t.detach().to_kind(Kind::Float).to_device(tch::Device::Cpu).contiguous().view([-1]);
        let values = Vec::<f32>::try_from(&flat).map_err(|e| PerfError::Torch(e.to_string()))?;
        infos.push(WeightInfo { name, shape: t.size(), offset: all.len(), trainable: t.requires_grad() });
        all.extend_from_slice(&values);
    }
    let n = all.len();
    write_array(dir, file, &all, vec![n])?;
    Ok(infos)
}

/// Copies the weights written by [`write_weights`] into `vars` (views into
/// the model's variables); every variable must be in the file with the same
/// shape, and nothing else.
pub fn load_weights(dir: &Path, files: &ModelFiles, vars: BTreeMap<String, Tensor>) -> Result<(), PerfError> {
    let total = files.weights.iter().map(|w| w.offset + w.shape.iter().product::<i64>() as usize).max().unwrap_or(0);
    let all: Vec<f32> = read_array(dir, &ArrayInfo { file: files.weights_file.clone(), dtype: "f32".into(), shape: vec![total] })?;
    let path = dir.join(&files.weights_file);
    let mut vars = vars;
    for w in &files.weights {
        let mut t = vars.remove(&w.name).ok_or_else(|| PerfError::Format {
            path: path.clone(),
            message: format!("variable `{}` is not in the {} model", w.name, files.kind.name()),
        })?;
        if t.size() != w.shape {
            return Err(PerfError::Format {
                path,
                message: format!("variable `{}` has shape {:?} in the file, {:?} in the model", w.name, w.shape, t.size()),
            });
        }
        let n = w.shape.iter().product::<i64>() as usize;
        let src = Tensor::from_slice(&all[w.offset..w.offset + n]).view(w.shape.as_slice()).to_kind(t.kind()).to_device(t.device());
        tch::no_grad(|| t.copy_(&src));
    }
    if let Some(name) = vars.keys().next() {
        return Err(PerfError::Format { path, message: format!("variable `{name}` of the model is missing from the file") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_path_travels_in_the_manifest_and_defaults_to_the_fused_pass() {
        let fused = crate::perf::train_settings(256, 20, 2, 1);
        let text = serde_json::to_string(&fused).unwrap();
        // Manifests written before the key existed, and the default, say nothing.
        assert!(!text.contains("step\""), "{text}");
        assert_eq!(serde_json::from_str::<TrainSettings>(&text).unwrap().step, StepPath::Fused);
        let autograd = TrainSettings { step: StepPath::Autograd, ..fused };
        let text = serde_json::to_string(&autograd).unwrap();
        assert!(text.contains("\"step\":\"autograd\""), "{text}");
        assert_eq!(serde_json::from_str::<TrainSettings>(&text).unwrap(), autograd);
    }

    #[test]
    fn arrays_round_trip_and_bad_sizes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_array(dir.path(), "a.bin", &[1.5f32, -2.0, 3.25], vec![3]).unwrap();
        assert_eq!(read_array::<f32>(dir.path(), &a).unwrap(), vec![1.5, -2.0, 3.25]);
        let b = write_array(dir.path(), "b.bin", &[i64::MIN, 7], vec![2]).unwrap();
        assert_eq!(read_array::<i64>(dir.path(), &b).unwrap(), vec![i64::MIN, 7]);
        // Little-endian on disk, as numpy.fromfile('<f4') reads it.
        assert_eq!(fs::read(dir.path().join("a.bin")).unwrap()[..4], 1.5f32.to_le_bytes());
        let wrong = ArrayInfo { shape: vec![4], ..a.clone() };
        let e = read_array::<f32>(dir.path(), &wrong).unwrap_err().to_string();
        assert!(e.contains("a.bin") && e.contains("12 bytes, expected 16"), "{e}");
        let e = read_array::<i64>(dir.path(), &a).unwrap_err().to_string();
        assert!(e.contains("dtype f32 where i64 was expected"), "{e}");
    }

    #[test]
    fn weights_round_trip_into_a_fresh_model() {
        let dir = tempfile::tempdir().unwrap();
        let a = nn::VarStore::new(tch::Device::Cpu);
        let lin = nn::linear(a.root() / "l", 3, 2, Default::default());
        let _bn = nn::batch_norm1d(a.root() / "bn", 2, Default::default());
        let infos = write_weights(dir.path(), "w.bin", &a.variables().into_iter().collect()).unwrap();
        let names: Vec<&str> = infos.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["bn.bias", "bn.running_mean", "bn.running_var", "bn.weight", "l.bias", "l.weight"]);
        assert!(!infos[1].trainable && infos[5].trainable);
        let files = ModelFiles {
            kind: ModelKind::Mmoe,
            weights_file: "w.bin".into(),
            weights: infos.clone(),
            check_probs: ArrayInfo { file: String::new(), dtype: "f32".into(), shape: vec![] },
        };
        tch::manual_seed(99);
        let b = nn::VarStore::new(tch::Device::Cpu);
        let lin_b = nn::linear(b.root() / "l", 3, 2, Default::default());
        let _bn_b = nn::batch_norm1d(b.root() / "bn", 2, Default::default());
        assert!(!lin_b.ws.equal(&lin.ws));
        load_weights(dir.path(), &files, b.variables().into_iter().collect()).unwrap();
        assert!(lin_b.ws.equal(&lin.ws));
        // A model with a different shape is refused with the variable named.
        let c = nn::VarStore::new(tch::Device::Cpu);
        let _ = nn::linear(c.root() / "l", 4, 2, Default::default());
        let _ = nn::batch_norm1d(c.root() / "bn", 2, Default::default());
        let e = load_weights(dir.path(), &files, c.variables().into_iter().collect()).unwrap_err().to_string();
        assert!(e.contains("`l.weight` has shape [2, 3] in the file, [2, 4] in the model"), "{e}");
    }
}
