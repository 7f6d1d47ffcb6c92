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
