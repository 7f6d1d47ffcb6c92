//! The training loop and the loss-weighting strategies end to end: a grid of
//! every strategy on two models finishes with its traces in the store and
//! repeats exactly from the same seed; a diverging cell fails with its reason
//! while the grid goes on; asking for CUDA without a usable GPU is a clear,
//! recorded failure; the test split never influences selection.

use std::sync::Mutex;

use mtlbench::store::{RunStatus, Store};
use mtlbench::strategies::StrategyKind;

use crate::common::*;

/// Every strategy on SharedBottom and MMOE, three tasks, traces every 4 steps.
const STRATEGY_GRID: &str = r#"
name = "strategies-tiny"
[data]
kind = "toy"
rows = 3000
users = 50
items = 80
tasks = ["click", "like", "share"]
[train]
epochs = 2
batch_size = 256
patience = 1
threads = 1
trace_every = 4
[models.tower]
hidden = [16]
[models.shared-bottom]
bottom = [32]
[models.mmoe]
experts = 2
expert_hidden = [16]
[grid]
models = ["shared-bottom", "mmoe"]
strategies = ["equal", "uncertainty", "gradnorm", "pcgrad"]
seeds = [3]
"#;

/// (split, task, metric, value).
type Metric = (String, String, String, f64);

/// (run name, sorted metric rows) of every run in a database.
fn metrics_by_name(db: &std::path::Path) -> Vec<(String, Vec<Metric>)> {
    let store = Store::open(db).unwrap();
    let mut out: Vec<_> = store
        .list_runs()
        .unwrap()
        .into_iter()
        .map(|r| {
            let mut m: Vec<_> =
                store.metrics(&r.id).unwrap().into_iter().map(|m| (m.split, m.task, m.metric, m.value)).collect();
            m.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
            (r.name, m)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_strategy_on_two_models_finishes_traces_and_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "strategies.toml", STRATEGY_GRID);
    for db in ["a.sqlite", "b.sqlite"] {
        let o = bench(d, &["--db", db, "run", grid.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("8 cells, 8 trained"), "{}", stdout(&o));
    }
    let store = Store::open(&d.join("a.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 8);
    for r in &runs {
        assert_eq!(r.status, RunStatus::Finished, "{}: {:?}", r.name, r.error);
        let traces = store.traces(&r.id).unwrap();
        let mut steps: Vec<i64> = traces.iter().map(|t| t.step).collect();
        steps.dedup();
        assert!(steps.len() >= 3 && steps.iter().all(|s| s % 4 == 0), "{}: steps {steps:?}", r.name);
        assert_eq!(traces.len(), steps.len() * 3, "{}: one row per step and term", r.name);
        for s in &steps {
            let at: Vec<_> = traces.iter().filter(|t| t.step == *s).collect();
            let sum: f64 = at.iter().map(|t| t.weight).sum();
            assert!(at.iter().all(|t| t.weight > 0.0 && t.grad_norm > 0.0 && t.loss > 0.0), "{}: {at:?}", r.name);
            match r.strategy.as_str() {
                "equal" | "pcgrad" => assert!(at.iter().all(|t| t.weight == 1.0), "{}", r.name),
                "gradnorm" => assert!((sum - 3.0).abs() < 1e-4, "{}: weights sum to {sum}", r.name),
                "uncertainty" => {}
                other => panic!("unexpected strategy {other}"),
            }
        }
        let conflict = store.trace_steps(&r.id).unwrap();
        assert_eq!(conflict.len(), steps.len(), "{}", r.name);
        assert!(conflict.iter().all(|c| (0.0..=1.0).contains(&c.conflict_rate)));
    }
    // Same seed, same data, same grid: identical metrics for every cell.
    let (a, b) = (metrics_by_name(&d.join("a.sqlite")), metrics_by_name(&d.join("b.sqlite")));
    assert_eq!(a.len(), 8);
    assert!(a.iter().all(|(_, m)| m.iter().any(|r| r.0 == "test" && r.2 == "auc")));
    assert_eq!(a, b);
}

/// Every Gramian-engine strategy on SharedBottom, MMOE and ESMM (toy funnel
/// data), traces every 2 steps; MGDA-UB and UPGrad on the representation.
const GRAMIAN_GRID: &str = r#"
name = "gramian-tiny"
[data]
kind = "toy"
rows = 1500
users = 40
items = 60
tasks = ["click", "buy", "like"]
funnel = true
[train]
epochs = 2
batch_size = 256
patience = 1
threads = 1
trace_every = 2
[models.funnel]
click = "click"
conversion = "buy"
[models.tower]
hidden = [8]
[models.shared-bottom]
bottom = [16]
[models.mmoe]
experts = 2
expert_hidden = [8]
[strategies.upgrad]
scope = "representation"
[grid]
models = ["shared-bottom", "mmoe", "esmm"]
strategies = ["mgda", "mgda-ub", "cagrad", "nash-mtl", "imtl-g", "aligned-mtl", "upgrad", "dualproj", "config", "fairgrad"]
seeds = [5]
"#;

#[test]
fn every_gramian_strategy_on_three_models_finishes_traces_and_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "gramian.toml", GRAMIAN_GRID);
    for db in ["a.sqlite", "b.sqlite"] {
        let o = bench(d, &["--db", db, "run", grid.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("30 cells, 30 trained"), "{}", stdout(&o));
    }
    let store = Store::open(&d.join("a.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 30);
    for r in &runs {
        assert_eq!(r.status, RunStatus::Finished, "{}: {:?}", r.name, r.error);
        let traces = store.traces(&r.id).unwrap();
        let mut steps: Vec<i64> = traces.iter().map(|t| t.step).collect();
        steps.dedup();
        assert!(steps.len() >= 2 && steps.iter().all(|s| s % 2 == 0), "{}: steps {steps:?}", r.name);
        assert!(traces.iter().all(|t| t.weight.is_finite() && t.grad_norm > 0.0 && t.loss > 0.0), "{}", r.name);
        if r.strategy == "dualproj" || r.strategy == "nash-mtl" || r.strategy == "upgrad" {
            assert!(traces.iter().all(|t| t.weight > 0.0), "{}: {traces:?}", r.name);
        }
        let conflict = store.trace_steps(&r.id).unwrap();
        assert_eq!(conflict.len(), steps.len(), "{}", r.name);
    }
    let (a, b) = (metrics_by_name(&d.join("a.sqlite")), metrics_by_name(&d.join("b.sqlite")));
    assert!(a.iter().all(|(_, m)| m.iter().any(|r| r.0 == "test" && r.2 == "auc" && r.3.is_finite())));
    assert_eq!(a, b);
}

#[test]
fn a_bad_gramian_setting_is_refused_when_the_grid_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bad = GRAMIAN_GRID.replace("[strategies.upgrad]", "[strategies.cagrad]\nc = -0.5\n[strategies.upgrad]");
    let grid = write(d, "bad.toml", &bad);
    let o = bench(d, &["--db", "x.sqlite", "run", grid.to_str().unwrap(), "--quiet"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("bad.toml") && e.contains("strategies.cagrad.c") && e.contains("-0.5"), "{e}");
    assert!(!d.join("x.sqlite").exists() || Store::open(&d.join("x.sqlite")).unwrap().list_runs().unwrap().is_empty());
}

/// Every strategy of the registry on SharedBottom, MMOE and ESMM (toy
/// funnel data), three epochs so that DWA's ratios and STCH after a
/// one-epoch warm-up both act; GradVac on the representation.
fn every_strategy_grid() -> String {
    let names: Vec<String> = StrategyKind::names().iter().map(|n| format!("\"{n}\"")).collect();
    format!(
        r#"
name = "every-strategy-tiny"
[data]
kind = "toy"
rows = 700
users = 30
items = 40
tasks = ["click", "buy", "like"]
funnel = true
[train]
epochs = 3
batch_size = 128
patience = 3
threads = 1
trace_every = 2
[models.funnel]
click = "click"
conversion = "buy"
[models.tower]
hidden = [8]
[models.shared-bottom]
bottom = [16]
[models.mmoe]
experts = 2
expert_hidden = [8]
[strategies.static]
sweep = 1
[strategies.stch]
warmup_epochs = 1
[strategies.gradvac]
scope = "representation"
[grid]
models = ["shared-bottom", "mmoe", "esmm"]
strategies = [{}]
seeds = [7]
"#,
        names.join(", ")
    )
}

#[test]
fn every_strategy_on_three_models_finishes_traces_and_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let grid = write(d, "every.toml", &every_strategy_grid());
    let cells = 3 * StrategyKind::ALL.len();
    for db in ["a.sqlite", "b.sqlite"] {
        let o = bench(d, &["--db", db, "run", grid.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains(&format!("{cells} cells, {cells} trained")), "{}", stdout(&o));
    }
    let store = Store::open(&d.join("a.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), cells);
    for r in &runs {
        assert_eq!(r.status, RunStatus::Finished, "{}: {:?}", r.name, r.error);
        let traces = store.traces(&r.id).unwrap();
        let mut steps: Vec<i64> = traces.iter().map(|t| t.step).collect();
        steps.dedup();
        assert!(steps.len() >= 4 && steps.iter().all(|s| s % 2 == 0), "{}: steps {steps:?}", r.name);
        assert_eq!(traces.len(), steps.len() * 3, "{}: one row per step and term", r.name);
        assert!(traces.iter().all(|t| t.weight.is_finite() && t.grad_norm > 0.0 && t.loss > 0.0), "{}", r.name);
        for s in &steps {
            let at: Vec<_> = traces.iter().filter(|t| t.step == *s).collect();
            let sum: f64 = at.iter().map(|t| t.weight).sum();
            match r.strategy.as_str() {
                "dwa" if at[0].epoch <= 2 => assert!(at.iter().all(|t| t.weight == 1.0), "{}", r.name),
                "dwa" | "rlw" => assert!((sum - 3.0).abs() < 1e-9 && at.iter().all(|t| t.weight > 0.0), "{}: {sum}", r.name),
                "famo" => assert!((sum - 1.0).abs() < 1e-9 && at.iter().all(|t| t.weight > 0.0), "{}: {sum}", r.name),
                "stch" => assert!(at.iter().all(|t| t.weight > 0.0), "{}", r.name),
                _ => {}
            }
        }
        assert_eq!(store.trace_steps(&r.id).unwrap().len(), steps.len(), "{}", r.name);
    }
    let (a, b) = (metrics_by_name(&d.join("a.sqlite")), metrics_by_name(&d.join("b.sqlite")));
    assert_eq!(a.len(), cells);
    assert!(a.iter().all(|(_, m)| m.iter().any(|r| r.0 == "test" && r.2 == "auc" && r.3.is_finite())));
    assert_eq!(a, b);
}

#[test]
fn a_bad_loss_weighting_setting_is_refused_when_the_grid_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (from, to, key) in [
        ("[strategies.stch]", "[strategies.dwa]\ntemperature = 0.0\n[strategies.stch]", "strategies.dwa.temperature"),
        ("[strategies.stch]", "[strategies.gradcraft]\ntau = 1.5\n[strategies.stch]", "strategies.gradcraft.tau"),
        ("[strategies.stch]", "[strategies.famo]\nlr = -0.025\n[strategies.stch]", "strategies.famo.lr"),
    ] {
        let grid = write(d, "bad.toml", &every_strategy_grid().replace(from, to));
        let o = bench(d, &["--db", "x.sqlite", "run", grid.to_str().unwrap(), "--quiet"]);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(e.contains("bad.toml") && e.contains(key) && e.contains("line"), "{e}");
    }
    assert!(!d.join("x.sqlite").exists() || Store::open(&d.join("x.sqlite")).unwrap().list_runs().unwrap().is_empty());
}

#[test]
fn a_diverging_cell_fails_with_its_reason_and_the_grid_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = TINY_GRID.replace("seeds = [1, 2]", "seeds = [1]").replace("patience = 1", "patience = 1\noptimizer = \"sgd\"");
    let grid = write(d, "diverge.toml", &format!("{g}\n[grid.overrides]\n\"train.lr\" = [1e30, 0.05]\n"));
    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    assert_eq!(o.status.code(), Some(1), "a failed cell makes the command fail: {}", stdout(&o));
    assert!(stdout(&o).contains("1 trained") && stdout(&o).contains("1 failed"), "{}", stdout(&o));
    assert!(stderr(&o).contains("diverged at epoch 1"), "{}", stderr(&o));
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 2);
    let failed: Vec<_> = runs.iter().filter(|r| r.status == RunStatus::Failed).collect();
    assert_eq!(failed.len(), 1);
    let err = failed[0].error.as_deref().unwrap_or("");
    assert!(err.starts_with("diverged at epoch 1, step ") && err.contains("loss term `"), "{err}");
    let cfg: serde_json::Value = serde_json::from_str(&failed[0].config_json).unwrap();
    assert_eq!(cfg["train"]["lr"].as_f64(), Some(1e30), "the failed cell is the one with the huge rate");
    assert!(runs.iter().any(|r| r.status == RunStatus::Finished));
}

#[test]
fn cuda_is_a_clear_recorded_error_where_no_gpu_is_usable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let g = TINY_GRID.replace("seeds = [1, 2]", "seeds = [1]").replace("threads = 1", "threads = 1\ndevice = \"cuda\"");
    let grid = write(d, "cuda.toml", &g);
    let o = bench(d, &["run", grid.to_str().unwrap(), "--quiet"]);
    let store = Store::open(&d.join("db.sqlite")).unwrap();
    let runs = store.list_runs().unwrap();
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    if r.status == RunStatus::Finished {
        // A machine where libtorch sees a GPU: the same binary trained on it.
        assert!(o.status.success());
        assert!(r.env_json.as_deref().unwrap_or("").contains("\"device\":\"cuda\""), "{:?}", r.env_json);
    } else {
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(o.status.code(), Some(1));
        let err = r.error.as_deref().unwrap_or("");
        assert!(err.starts_with("device \"cuda\": ") && err.contains("CUDA"), "{err}");
        assert!(stderr(&o).contains(err), "the error is shown to the user too: {}", stderr(&o));
    }
}

/// In-process training uses libtorch's global generator: one at a time.
static TORCH: Mutex<()> = Mutex::new(());

#[test]
fn the_test_split_never_selects() {
    use mtlbench::data::toy::{generate, ToyConfig};
    use mtlbench::models::{ModelKind, ModelsConfig};
    use mtlbench::strategies::{StrategiesConfig, StrategyKind};
    use mtlbench::train::{self, EpochRecord, Observer, RunSpec, TraceRecord, TrainConfig};

    struct Epochs(Vec<EpochRecord>);
    impl Observer for Epochs {
        fn on_epoch(&mut self, rec: &EpochRecord) -> Result<(), String> {
            self.0.push(rec.clone());
            Ok(())
        }
        fn on_trace(&mut self, _: &TraceRecord) -> Result<(), String> {
            Ok(())
        }
    }
    let _guard = TORCH.lock().unwrap_or_else(|p| p.into_inner());
    let data = generate(&ToyConfig { rows: 3000, users: 50, items: 80, ..Default::default() });
    // Flipping every test label changes the test metrics, but neither the
    // chosen epoch nor anything measured on validation.
    let mut flipped = data.clone();
    for y in flipped.test.labels.iter_mut() {
        *y = 1.0 - *y;
    }
    let models: ModelsConfig = toml::from_str("[tower]\nhidden = [16]\n[shared-bottom]\nbottom = [32]\n").unwrap();
    let strategies = StrategiesConfig::default();
    let cfg = TrainConfig { epochs: 4, batch_size: 256, patience: 1, threads: Some(1), ..Default::default() };
    let run = |d: &mtlbench::data::Dataset| {
        let spec = RunSpec {
            model: ModelKind::SharedBottom,
            models: &models,
            strategy: StrategyKind::GradNorm,
            strategies: &strategies,
            train: &cfg,
            seed: 9,
        };
        let mut obs = Epochs(vec![]);
        let r = train::train(&spec, d, &mut obs).unwrap();
        (r, obs.0)
    };
    let (a, ea) = run(&data);
    let (b, eb) = run(&flipped);
    assert_eq!(a.best_epoch, b.best_epoch);
    assert_eq!(a.valid, b.valid);
    let sel = |e: &[EpochRecord]| e.iter().map(|r| r.select_value).collect::<Vec<_>>();
    assert_eq!(sel(&ea), sel(&eb));
    for t in 0..2 {
        let (x, y) = (a.test[t].auc.unwrap(), b.test[t].auc.unwrap());
        assert!((x + y - 1.0).abs() < 1e-9, "flipped labels give 1 - AUC: {x} {y}");
    }
    // The reported validation metrics are the best epoch's, and it is the best.
    let best = &ea[a.best_epoch - 1];
    assert_eq!(best.valid, a.valid);
    assert!(ea.iter().all(|e| e.select_value <= best.select_value));
}
