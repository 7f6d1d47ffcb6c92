//! Grid expansion of the protocol's axes: random trials, the static-weight
//! sweep, single-task baselines, and cells counted after deduplication.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;
use crate::models::ModelKind;
use crate::strategies::StrategyKind;

const BASE: &str = r#"
[data]
kind = "toy"
tasks = ["click", "like"]
[grid]
models = ["mmoe"]
strategies = ["equal", "gradnorm"]
seeds = [1, 2]
"#;

fn plan(extra: &str) -> Plan {
    let text = format!("{BASE}{extra}");
    let g = parse_grid(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    expand(&g, Path::new("t.toml")).unwrap()
}

fn configs(p: &Plan, strategy: StrategyKind) -> BTreeSet<String> {
    p.cells.iter().filter(|c| c.strategy == strategy && c.single_task.is_none()).map(|c| c.config_hash.clone()).collect()
}

fn param(c: &Cell, key: &str) -> Option<String> {
    c.params().into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[test]
fn an_axis_of_one_strategy_is_that_arms_budget_alone() {
    let p = plan("[grid.overrides]\n\"strategies.gradnorm.alpha\" = [1.0, 1.5]\n\"train.lr\" = [0.01, 0.001]\n");
    assert_eq!(configs(&p, StrategyKind::Equal).len(), 2, "alpha is not in equal's configuration");
    assert_eq!(configs(&p, StrategyKind::GradNorm).len(), 4);
    // Each (configuration, seed) once: 2 x 2 + 4 x 2 cells.
    assert_eq!(p.cells.len(), 12);
    let keys: BTreeSet<(String, u64)> = p.cells.iter().map(|c| (c.config_hash.clone(), c.seed)).collect();
    assert_eq!(keys.len(), p.cells.len());
}

#[test]
fn search_trials_are_the_same_for_every_arm() {
    let p = plan("[grid.search]\ntrials = 3\nseed = 5\n\"train.lr\" = { log_uniform = [1e-4, 1e-2] }\n");
    let lrs = |s: StrategyKind| -> BTreeSet<String> { p.cells.iter().filter(|c| c.strategy == s).filter_map(|c| param(c, "train.lr")).collect() };
    assert_eq!(lrs(StrategyKind::Equal).len(), 3);
    assert_eq!(lrs(StrategyKind::Equal), lrs(StrategyKind::GradNorm));
    assert_eq!(configs(&p, StrategyKind::GradNorm).len(), 3);
    assert_eq!(p.cells.len(), 2 * 3 * 2);
    // Crossed with the Cartesian overrides.
    let p = plan("[grid.overrides]\n\"train.batch_size\" = [256, 512]\n[grid.search]\ntrials = 3\n\"train.lr\" = { uniform = [0.001, 0.01] }\n");
    assert_eq!(configs(&p, StrategyKind::Equal).len(), 6);
}

#[test]
fn search_and_override_on_one_key_is_refused() {
    let text = format!("{BASE}[grid.overrides]\n\"train.lr\" = [0.1]\n[grid.search]\ntrials = 2\n\"train.lr\" = {{ uniform = [0.1, 0.2] }}\n");
    let e = parse_grid(&text, Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("t.toml") && e.contains("grid.search.train.lr") && e.contains("[grid.overrides]"), "{e}");
}

#[test]
fn the_static_arm_sweeps_its_points() {
    let p = plan("[strategies.static]\nsweep = 3\n");
    let text = format!("{}\n", BASE.replace(r#"["equal", "gradnorm"]"#, r#"["equal", "static"]"#));
    let g = parse_grid(&format!("{text}[strategies.static]\nsweep = 3\n"), Path::new("t.toml")).unwrap();
    let q = expand(&g, Path::new("t.toml")).unwrap();
    assert_eq!(configs(&q, StrategyKind::Static).len(), 3);
    let points: BTreeSet<String> = q.cells.iter().filter(|c| c.strategy == StrategyKind::Static).filter_map(|c| param(c, "strategy.point")).collect();
    assert_eq!(points, ["0", "1", "2"].iter().map(|s| s.to_string()).collect());
    assert!(q.cells.iter().any(|c| c.name() == "mmoe-static-s1-point=2"));
    // Without the static strategy the section changes nothing.
    assert_eq!(configs(&p, StrategyKind::Equal), configs(&plan(""), StrategyKind::Equal));
    let e = parse_grid(&format!("{text}[strategies.static]\nsweep = 65\n"), Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("strategies.static.sweep") && e.contains("64"), "{e}");
}

#[test]
fn single_task_baselines_per_task_seed_and_override() {
    assert!(plan("").cells.iter().all(|c| c.single_task.is_none()));
    let text = BASE.replace("seeds = [1, 2]", "seeds = [1, 2]\nsingle_task = true");
    let g = parse_grid(&format!("{text}[grid.overrides]\n\"train.lr\" = [0.01, 0.001]\n\"models.mmoe.experts\" = [2, 4]\n"), Path::new("t.toml")).unwrap();
    let p = expand(&g, Path::new("t.toml")).unwrap();
    let single: Vec<&Cell> = p.cells.iter().filter(|c| c.single_task.is_some()).collect();
    // 2 tasks x 2 learning rates x 2 seeds; the experts axis does not apply to SharedBottom.
    assert_eq!(single.len(), 8);
    for c in &single {
        assert_eq!((c.model, c.strategy), (ModelKind::SharedBottom, StrategyKind::Equal));
        assert_eq!(param(c, SINGLE_TASK_PARAM), c.single_task.clone());
        assert!(c.name().starts_with(&format!("single-task-{}-s{}", c.single_task.as_deref().unwrap_or(""), c.seed)));
    }
    let hashes: BTreeSet<&str> = single.iter().map(|c| c.config_hash.as_str()).collect();
    assert_eq!(hashes.len(), 4);
    let e = parse_grid(&text.replace(r#"tasks = ["click", "like"]"#, r#"tasks = ["click"]"#), Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("grid.single_task"), "{e}");
    // A funnel needs two tasks: the baselines drop it, the multi-task cells keep it.
    let g = parse_grid(&format!("{text}[models.funnel]\nclick = \"click\"\nconversion = \"like\"\n"), Path::new("t.toml")).unwrap();
    let p = expand(&g, Path::new("t.toml")).unwrap();
    assert!(p.cells.iter().all(|c| c.config.models.funnel.is_some() != c.single_task.is_some()));
}

#[test]
fn grids_without_the_new_keys_serialize_as_before() {
    let g = parse_grid(BASE, Path::new("t.toml")).unwrap();
    let text = toml::to_string(&g).unwrap();
    for key in ["single_task", "search", "static"] {
        assert!(!text.contains(key), "{key} in {text}");
    }
    assert!(text.contains("[strategies.gradnorm]"), "{text}");
    for kind in StrategyKind::ALL.iter().skip(5) {
        assert!(!text.contains(&format!("[strategies.{}]", kind.name())), "{} in {text}", kind.name());
    }
}

#[test]
fn duplicate_task_names_are_refused_when_the_grid_is_read() {
    let text = BASE.replace(r#"tasks = ["click", "like"]"#, r#"tasks = ["click", "click"]"#);
    let e = parse_grid(&text, Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("t.toml: key `data.tasks`") && e.contains("task `click` is named twice"), "{e}");
}

/// The error of reading and planning `text`, which must be refused.
fn refused(text: &str) -> String {
    match plan_grid(text, Path::new("t.toml")) {
        Ok(p) => panic!("accepted, {} cells:\n{text}", p.cells.len()),
        Err(e) => e.to_string(),
    }
}

/// `BASE` with `from` replaced by `to` (which must occur).
fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replace(from, to)
}

#[test]
fn train_settings_that_would_train_nothing_or_panic_are_refused_with_their_line() {
    for (line, want_key, want) in [
        ("max_steps_per_epoch = 0", "train.max_steps_per_epoch", "at least 1"),
        ("threads = 0", "train.threads", "between 1 and 1024"),
        ("device = \"cuda:abc\"", "train.device", "\"cuda:N\""),
        ("beta2 = 1.0", "train.beta2", "[0, 1)"),
    ] {
        let e = refused(&format!("{BASE}[train]\nepochs = 1\n{line}\n"));
        assert!(e.starts_with(&format!("t.toml: key `{want_key}` (line 11)")) && e.contains(want), "{line}: {e}");
    }
    // Unset means no limit and one thread per core; 1 is accepted.
    plan_grid(&format!("{BASE}[train]\nmax_steps_per_epoch = 1\nthreads = 1\ndevice = \"cuda:1\"\n"), Path::new("t.toml")).unwrap();
}

#[test]
fn an_override_that_breaks_a_cell_names_the_override_its_line_and_the_cell() {
    let e = refused(&format!("{BASE}[grid.overrides]\n\"train.threads\" = [1, 0]\n"));
    assert!(e.starts_with("t.toml: key `grid.overrides.train.threads` (line 10)"), "{e}");
    assert!(e.contains("cell mmoe-equal-s1-threads=0") && e.contains("between 1 and"), "{e}");
    let e = refused(&format!("{BASE}[grid.overrides]\n\"strategies.gradnorm.alpha\" = [1.5, -0.5]\n"));
    assert!(e.contains("key `grid.overrides.strategies.gradnorm.alpha` (line 10)") && e.contains(">= 0, got -0.5"), "{e}");
}

#[test]
fn strategy_settings_are_checked_against_the_terms_each_model_declares() {
    let funnel = "[models.funnel]\nclick = \"click\"\nconversion = \"like\"\n";
    // Two tasks: MMOE and ESMM declare two terms (ESMM: ctr, ctcvr), CTnoCVR three.
    let ok = format!("{}[strategies.equal]\nweights = [1.0, 2.0]\n{funnel}", base_with(r#"models = ["mmoe"]"#, r#"models = ["mmoe", "esmm"]"#));
    plan_grid(&ok, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
    let e = refused(&ok.replace(r#""esmm"]"#, r#""esmm", "ctnocvr"]"#));
    assert!(e.starts_with("t.toml: key `strategies.equal.weights` (line 10)"), "{e}");
    assert!(e.contains("2 weights given for 3 loss terms") && e.contains("ctnocvr declares the loss terms ctr, cvr, ctnocvr"), "{e}");
    let e = refused(&format!("{BASE}[strategies.equal]\nweights = [1.0]\n"));
    assert!(e.contains("key `strategies.equal.weights` (line 10)") && e.contains("1 weights given for 2"), "{e}");
    let e = refused(&format!("{BASE}[strategies.equal]\nweights = [nan, 1.0]\n"));
    assert!(e.contains("key `strategies.equal.weights`") && e.contains("finite"), "{e}");
    let e = refused(&format!("{BASE}[strategies.gradnorm]\nalpha = -1.0\n"));
    assert!(e.starts_with("t.toml: key `strategies.gradnorm.alpha` (line 10)") && e.contains("got -1"), "{e}");
    // A strategy outside the grid is not checked.
    plan_grid(&format!("{}[strategies.gradnorm]\nalpha = -1.0\n", base_with(r#"["equal", "gradnorm"]"#, r#"["equal"]"#)), Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    // A funnel model without its funnel, or on a task that is not there.
    let e = refused(&base_with(r#"models = ["mmoe"]"#, r#"models = ["esmm"]"#));
    assert!(e.contains("key `models.funnel`") && e.contains("esmm needs a click task"), "{e}");
    let e = refused(&format!("{BASE}{}", funnel.replace("\"like\"", "\"buy\"")));
    assert!(e.contains("key `models.funnel.conversion` (line 11)") && e.contains("no task `buy`"), "{e}");
}

#[test]
fn model_widths_must_be_positive() {
    for (section, key) in [("[models.tower]\nhidden = [0]", "models.tower.hidden"), ("[models.mmoe]\nexpert_hidden = [8, 0]", "models.mmoe.expert_hidden")] {
        let e = refused(&format!("{BASE}{section}\n"));
        assert!(e.starts_with(&format!("t.toml: key `{key}` (line 10)")), "{e}");
    }
    let e = refused(&format!("{BASE}[models.input]\nemb_dims = {{ userid = 0 }}\n"));
    assert!(e.contains("key `models.input.emb_dims.userid` (line 10)") && e.contains("positive"), "{e}");
    // A section of a model outside the grid is not checked.
    plan_grid(&format!("{BASE}[models.ple]\nexpert_hidden = [0]\n"), Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn data_settings_are_refused_not_clamped() {
    for (from, to, key, line, want) in [
        ("tasks = [\"click\", \"like\"]", "tasks = []", "data.tasks", 4, "at least one task"),
        ("kind = \"toy\"", "kind = \"toy\"\nrows = 3", "data.rows", 4, "at least 100"),
        ("kind = \"toy\"", "kind = \"toy\"\nrelatedness = 5.0", "data.relatedness", 4, "[0, 1]"),
        ("kind = \"toy\"", "kind = \"toy\"\nusers = 1", "data.users", 4, "at least 2"),
    ] {
        let e = refused(&base_with(from, to));
        assert!(e.starts_with(&format!("t.toml: key `{key}` (line {line})")) && e.contains(want), "{to}: {e}");
    }
}

#[test]
fn duplicates_in_the_grid_lists_are_refused_naming_the_element_and_line() {
    for (from, to, key, want) in [
        ("seeds = [1, 2]", "seeds = [1, 2, 1]", "grid.seeds[2]", "seed `1` is listed twice"),
        (r#"models = ["mmoe"]"#, r#"models = ["mmoe", "ple", "mmoe"]"#, "grid.models[2]", "model `mmoe` is listed twice"),
        (r#"["equal", "gradnorm"]"#, r#"["equal", "gradnorm", "equal"]"#, "grid.strategies[2]", "strategy `equal`"),
    ] {
        let e = refused(&base_with(from, to));
        assert!(e.contains(&format!("t.toml: key `{key}` (line")) && e.contains(want), "{to}: {e}");
    }
    let e = refused(&format!("{BASE}[grid.overrides]\n\"train.lr\" = [0.01, 0.01]\n"));
    assert!(e.contains("key `grid.overrides.train.lr` (line 10)") && e.contains("0.01 is listed twice"), "{e}");
}

/// The grid reader on generated and mutated text: errors are fine, panics
/// are not. Fixed seed and case count, so a run is repeatable.
mod never_panics {
    use std::path::Path;

    use proptest::prelude::*;
    use proptest::sample::{select, Index};
    use proptest::test_runner::{Config, RngSeed};

    use super::{plan_grid, BASE};

    fn config() -> Config {
        Config { cases: 400, rng_seed: RngSeed::Fixed(0x6d74_6c62), failure_persistence: None, ..Config::default() }
    }

    /// Lines grids are made of: valid ones, near misses and junk.
    const FRAGMENTS: &[&str] = &[
        "[data]", "kind = \"toy\"", "kind = \"wechat\"", "kind = \"synthetic-wechat\"", "kind = \"table\"", "kind = 3",
        "tasks = [\"click\", \"like\"]", "tasks = []", "tasks = [\"click\", \"click\"]", "rows = 3", "rows = -1",
        "relatedness = 5.0", "relatedness = nan", "users = 10", "feeds = 20", "days = 200", "split = { train = [8], bogus = 1 }",
        "split = { valid = 0.5, test = 0.6 }", "labels = [{ column = \"y\" }]", "numeric = [{ column = \"x\", bins = 1 }]",
        "[grid]", "models = [\"mmoe\", \"esmm\", \"ctnocvr\"]", "models = []", "models = [\"mmoe\", \"mmoe\"]",
        "strategies = [\"equal\", \"gradnorm\", \"static\", \"pcgrad\", \"uncertainty\"]", "seeds = [1, 1]", "seeds = [18446744073709551615]",
        "single_task = true", "[grid.overrides]", "\"train.lr\" = [0.1, -1.0]", "\"models.tower.hidden\" = [[0], [8]]", "\"grid.seeds\" = [1]",
        "[grid.search]", "trials = 2", "\"train.lr\" = { log_uniform = [1e-4, 1e-2] }", "\"train.lr\" = { uniform = [1.0, 0.0] }",
        "[train]", "epochs = 0", "threads = 0", "max_steps_per_epoch = 0", "device = \"cuda:abc\"", "device = \"cuda:99999999999999999999\"",
        "lr = inf", "[models.tower]", "hidden = [0]", "hidden = [9223372036854775807]", "[models.funnel]", "click = \"click\"",
        "conversion = \"click\"", "[models.ctnocvr]", "l1 = -1.0", "[strategies.equal]", "weights = [nan, 1.0]", "weights = []",
        "[strategies.gradnorm]", "alpha = -0.5", "[strategies.static]", "sweep = 0", "point = 9", "[[grid]]", "a = {", "}", "]", "\"",
        "'''", "\"\"\"", "# comment \u{0} nul", "= 1", "x.y.z = 1", "é = \"ü\"", "\u{7f}", "\t", "\r", "[data.split]", "bogus = true",
    ];

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn on_grids_assembled_from_fragments(lines in prop::collection::vec(select(FRAGMENTS), 0..28)) {
            let _ = plan_grid(&lines.join("\n"), Path::new("p.toml"));
        }

        #[test]
        fn on_a_valid_grid_with_bytes_inserted_deleted_or_replaced(edits in prop::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 1..6)) {
            let mut bytes = format!("{BASE}[train]\nepochs = 1\n[grid.overrides]\n\"train.lr\" = [0.01, 0.001]\n").into_bytes();
            for (at, byte, op) in edits {
                let i = at.index(bytes.len() + 1);
                match op {
                    0 => bytes.insert(i, byte),
                    1 if i < bytes.len() => { bytes.remove(i); }
                    _ if i < bytes.len() => bytes[i] = byte,
                    _ => {}
                }
            }
            let _ = plan_grid(&String::from_utf8_lossy(&bytes), Path::new("p.toml"));
        }

        #[test]
        fn on_arbitrary_text(chars in prop::collection::vec(any::<char>(), 0..200)) {
            let _ = plan_grid(&chars.into_iter().collect::<String>(), Path::new("p.toml"));
        }
    }
}

#[test]
fn bad_strategy_settings_are_refused_when_the_grid_is_read() {
    for (section, key, value, says) in [
        ("dwa", "temperature", "0.0", "positive"),
        ("famo", "lr", "-0.025", "positive"),
        ("famo", "weight_decay", "-1.0", ">= 0"),
        ("stch", "mu", "0.0", "positive"),
        ("stch", "warmup_epochs", "0", "at least 1"),
    ] {
        let text = format!("{BASE}\n[strategies.{section}]\n{key} = {value}\n");
        let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        let e = parse_grid(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(e.contains(&format!("t.toml: key `strategies.{section}.{key}` (line {line})")) && e.contains(says), "{e}");
    }
    // A value of an axis is refused too, before any cell runs.
    let text = format!("{BASE}[grid.overrides]\n\"strategies.dwa.temperature\" = [1.0, 0.0]\n");
    let g = parse_grid(&text, Path::new("t.toml")).unwrap();
    let e = expand(&g, Path::new("t.toml")).unwrap_err().to_string();
    assert!(e.contains("strategies.dwa.temperature") && e.contains("[grid.overrides]"), "{e}");
}

#[test]
fn a_cell_key_takes_its_strategys_section_in_full() {
    let with = |extra: &str| {
        let text = BASE.replace(r#"["equal", "gradnorm"]"#, r#"["equal", "dwa"]"#);
        let g = parse_grid(&format!("{text}{extra}"), Path::new("t.toml")).unwrap();
        let p = expand(&g, Path::new("t.toml")).unwrap();
        (configs(&p, StrategyKind::Dwa), configs(&p, StrategyKind::Equal))
    };
    let (dwa, equal) = with("");
    // The default spelled out is the same configuration; another value is not,
    // and the other strategies' cells do not move.
    assert_eq!(with("[strategies.dwa]\ntemperature = 2.0\n"), (dwa.clone(), equal.clone()));
    let (other, equal_after) = with("[strategies.dwa]\ntemperature = 3.0\n");
    assert_ne!(other, dwa);
    assert_eq!(equal_after, equal);
}

#[test]
fn the_training_step_path_is_fused_or_autograd() {
    use crate::train::StepPath;
    let default = plan("");
    assert!(default.cells.iter().all(|c| c.config.train.step == StepPath::Fused));
    let autograd = plan("[train]\nstep = \"autograd\"\n");
    assert!(autograd.cells.iter().all(|c| c.config.train.step == StepPath::Autograd));
    // Asking for the other path is another configuration; leaving the key
    // out keeps the hashes of the grids written before it existed.
    assert!(configs(&default, StrategyKind::Equal).is_disjoint(&configs(&autograd, StrategyKind::Equal)));
    assert_eq!(configs(&default, StrategyKind::Equal), configs(&plan("[train]\nstep = \"fused\"\n"), StrategyKind::Equal));
    let e = refused(&format!("{BASE}[train]\nstep = \"eager\"\n"));
    assert!(e.contains("key `train.step` (line 10)") && e.contains("autograd"), "{e}");
}
