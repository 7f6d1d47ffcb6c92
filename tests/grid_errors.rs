//! Bad grid files: the error names the file and the key, lists valid
//! choices, exits non-zero and records nothing.

use crate::common::*;

fn run_bad(grid: &str) -> (i32, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.toml", grid);
    let o = bench(dir.path(), &["run", p.to_str().unwrap()]);
    (o.status.code().unwrap_or(-1), stderr(&o), dir.path().join("db.sqlite").exists())
}

#[test]
fn unknown_model_names_key_and_choices() {
    let g = TINY_GRID.replace(r#"models = ["shared-bottom"]"#, r#"models = ["shared-bottom", "mmoee"]"#);
    let (code, err, db) = run_bad(&g);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml"), "{err}");
    assert!(err.contains("grid.models"), "{err}");
    assert!(err.contains("mmoee") && err.contains("shared-bottom"), "{err}");
    assert!(!db, "a bad grid must not create or touch the database");
}

#[test]
fn wrong_type_names_key_and_line() {
    let g = TINY_GRID.replace("epochs = 2", "epochs = \"two\"");
    let (code, err, _) = run_bad(&g);
    assert_eq!(code, 1);
    assert!(err.contains("bad.toml") && err.contains("train.epochs"), "{err}");
    // TINY_GRID starts with a newline, so `epochs` is on line 10.
    assert!(err.contains("line 10"), "{err}");
}

#[test]
fn unknown_key_is_rejected() {
    let g = TINY_GRID.replace("patience = 1", "patience = 1\nlearning_rate = 0.1");
    let (code, err, _) = run_bad(&g);
    assert_eq!(code, 1);
    assert!(err.contains("learning_rate") && err.contains("train"), "{err}");
}

#[test]
fn bad_override_key_names_the_override() {
    let g = format!("{TINY_GRID}\n[grid.overrides]\n\"train.lrr\" = [0.1, 0.2]\n");
    let (code, err, _) = run_bad(&g);
    assert_eq!(code, 1);
    assert!(err.contains("grid.overrides.train.lrr"), "{err}");
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = bench(dir.path(), &["run", "nope.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nope.toml"), "{}", stderr(&o));
}
