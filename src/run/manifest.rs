//! Frozen cells for job arrays (Slurm, Kubernetes Indexed Jobs): `bench
//! plan GRID --manifest cells.json` writes the grid's path, its hash (the
//! sweep id) and its cells in order; `bench run --manifest cells.json
//! --cell N` trains cell N, with N from `$SLURM_ARRAY_TASK_ID` or
//! `$JOB_COMPLETION_INDEX` when `--cell` is not given. The grid is read and
//! expanded again at run time and must still hash as it did: a grid edited
//! after planning is refused, not half-run. A repeated index (a retried
//! array task) trains nothing twice: the cell's claim skips a finished
//! cell and leaves one in training to its process.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Plan;

/// The manifest format this program writes and reads.
pub const FORMAT: u32 = 1;
/// Where an array task's index comes from when `--cell` is not given, in order.
pub const INDEX_VARS: [&str; 2] = ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"];

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("manifest {}: {source}", .file.display())]
    Io { file: PathBuf, source: std::io::Error },
    #[error("manifest {}: {message} (write it again with `bench plan GRID --manifest FILE`)", .file.display())]
    Bad { file: PathBuf, message: String },
    #[error("manifest {}: the grid {grid} changed since the manifest was made (sweep {planned}, now {now}); plan it again with `bench plan {grid} --manifest {}`", .file.display(), .file.display())]
    GridChanged { file: PathBuf, grid: String, planned: String, now: String },
    #[error("manifest {}: cell {index} does not exist: the manifest has {cells} cells, 0 to {}", .file.display(), .cells.saturating_sub(1))]
    NoSuchCell { file: PathBuf, index: usize, cells: usize },
    #[error("manifest {}: no cell index: give --cell N, or run as an array task ({} is set by Slurm and Kubernetes)", .file.display(), INDEX_VARS.join(" or "))]
    NoIndex { file: PathBuf },
    #[error("{var}={value:?}: expected a cell index (0, 1, 2, ...)")]
    BadIndex { var: String, value: String },
}

/// One frozen cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestCell {
    pub index: usize,
    pub name: String,
    pub config_hash: String,
    pub seed: u64,
}

/// The frozen cells of a grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The grid file, as given to `bench plan` (relative to the directory it
    /// ran in); `None`: the embedded demo grid.
    pub grid: Option<String>,
    /// The sweep id: the hash of the grid's canonical form.
    pub grid_hash: String,
    pub name: String,
    pub cells: Vec<ManifestCell>,
}

impl Manifest {
    /// Freezes a plan read from `grid`.
    pub fn freeze(plan: &Plan, grid: Option<&Path>) -> Manifest {
        let cells = plan
            .cells
            .iter()
            .enumerate()
            .map(|(index, c)| ManifestCell { index, name: c.name(), config_hash: c.config_hash.clone(), seed: c.seed })
            .collect();
        Manifest { format: FORMAT, grid: grid.map(|g| g.display().to_string()), grid_hash: plan.grid_hash.clone(), name: plan.name.clone(), cells }
    }

    pub fn write(&self, file: &Path) -> Result<(), ManifestError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| ManifestError::Bad { file: file.into(), message: e.to_string() })?;
        std::fs::write(file, text + "\n").map_err(|source| ManifestError::Io { file: file.into(), source })
    }

    pub fn read(file: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(file).map_err(|source| ManifestError::Io { file: file.into(), source })?;
        let bad = |message: String| ManifestError::Bad { file: file.into(), message };
        let m: Manifest = serde_json::from_str(&text).map_err(|e| bad(format!("line {}: {e}", e.line())))?;
        if m.format != FORMAT {
            return Err(bad(format!("format {} is not the format {FORMAT} this program reads", m.format)));
        }
        if let Some((i, c)) = m.cells.iter().enumerate().find(|(i, c)| c.index != *i) {
            return Err(bad(format!("cell {i} is numbered {}; cells must be numbered 0, 1, 2, ... in order", c.index)));
        }
        Ok(m)
    }

    /// Checks that the grid, expanded again, is the one frozen, and that
    /// cell `index` exists and is the cell frozen there.
    pub fn check(&self, file: &Path, plan: &Plan, index: usize) -> Result<(), ManifestError> {
        let grid = self.grid.clone().unwrap_or_else(|| "(the embedded demo grid)".into());
        let changed = |now: &str| ManifestError::GridChanged { file: file.into(), grid: grid.clone(), planned: self.grid_hash.clone(), now: now.into() };
        if plan.grid_hash != self.grid_hash {
            return Err(changed(&plan.grid_hash));
        }
        let Some(frozen) = self.cells.get(index) else {
            return Err(ManifestError::NoSuchCell { file: file.into(), index, cells: self.cells.len() });
        };
        match plan.cells.get(index) {
            Some(c) if c.config_hash == frozen.config_hash && c.seed == frozen.seed => Ok(()),
            _ => Err(changed(&format!("{} with another cell {index}", plan.grid_hash))),
        }
    }
}

/// The cell index to run: `explicit` (`--cell`), else the first of
/// [`INDEX_VARS`] that `var` finds set.
pub fn cell_index(file: &Path, explicit: Option<usize>, var: impl Fn(&str) -> Option<String>) -> Result<usize, ManifestError> {
    if let Some(i) = explicit {
        return Ok(i);
    }
    for name in INDEX_VARS {
        if let Some(value) = var(name) {
            return value.trim().parse().map_err(|_| ManifestError::BadIndex { var: name.into(), value });
        }
    }
    Err(ManifestError::NoIndex { file: file.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_comes_from_the_flag_then_slurm_then_kubernetes() {
        let f = Path::new("cells.json");
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(cell_index(f, Some(4), env(&[("SLURM_ARRAY_TASK_ID", "2")])).unwrap(), 4);
        assert_eq!(cell_index(f, None, env(&[("SLURM_ARRAY_TASK_ID", "2"), ("JOB_COMPLETION_INDEX", "7")])).unwrap(), 2);
        assert_eq!(cell_index(f, None, env(&[("JOB_COMPLETION_INDEX", " 7\n")])).unwrap(), 7);
        let e = cell_index(f, None, env(&[("SLURM_ARRAY_TASK_ID", "x1")])).unwrap_err().to_string();
        assert_eq!(e, "SLURM_ARRAY_TASK_ID=\"x1\": expected a cell index (0, 1, 2, ...)");
        let e = cell_index(f, None, env(&[])).unwrap_err().to_string();
        assert!(e.contains("give --cell N") && e.contains("SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX"), "{e}");
    }

    #[test]
    fn a_manifest_reads_back_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cells.json");
        let cell = |index: usize| ManifestCell { index, name: format!("c{index}"), config_hash: "h".into(), seed: 1 };
        let m = Manifest { format: FORMAT, grid: Some("g.toml".into()), grid_hash: "abc".into(), name: "g".into(), cells: vec![cell(0), cell(1)] };
        m.write(&file).unwrap();
        assert_eq!(Manifest::read(&file).unwrap(), m);
        let mut swapped = m.clone();
        swapped.cells.swap(0, 1);
        swapped.write(&file).unwrap();
        let e = Manifest::read(&file).unwrap_err().to_string();
        assert!(e.contains("cell 0 is numbered 1"), "{e}");
        std::fs::write(&file, "{\n\"format\": 1,\n\"grid\": 3 }").unwrap();
        let e = Manifest::read(&file).unwrap_err().to_string();
        assert!(e.starts_with(&format!("manifest {}: line 3:", file.display())), "{e}");
        let e = Manifest::read(&dir.path().join("missing.json")).unwrap_err().to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
