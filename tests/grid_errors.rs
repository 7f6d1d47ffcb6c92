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

/// experiments/adult-quantile.toml with the data path made absolute.
fn adult_encoded_grid() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("experiments/adult-quantile.toml")).unwrap();
    text.replace("data/adult/adult.csv.gz", &root.join("data/adult/adult.csv.gz").display().to_string())
}

#[test]
fn bad_numeric_encodings_name_the_key_and_line() {
    let g = adult_encoded_grid();
    let line_of = |needle: &str| g.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let edu = r#"{ column = "educational-num", transform = "quantile" }"#;
    let cases = [
        (edu.replace("quantile\" }", "quantile\", bins = 1 }"), "data.numeric[2].bins", "at least 2 bins"),
        (edu.replace("\"quantile\" }", "\"periodic\", bins = 8 }"), "data.numeric[2].bins", "does not use `bins`"),
        (edu.replace("\"quantile\" }", "\"periodic\", sigma = 0.0 }"), "data.numeric[2].sigma", "positive"),
        (edu.replace("\"quantile\" }", "\"log1p\", keep_dense = true }"), "data.numeric[2].keep_dense", "log1p"),
        (edu.replace("educational-num", "education"), "data.numeric[2].column", "needs a numeric column"),
    ];
    for (bad, key, want) in cases {
        let (code, err, db) = run_bad(&g.replace(edu, &bad));
        assert_eq!(code, 1, "{err}");
        let line = format!("(line {})", line_of(edu));
        assert!(err.contains("bad.toml") && err.contains(&format!("key `{key}` {line}")) && err.contains(want), "{key}: {err}");
        assert!(!db, "a bad grid must not create the database");
    }
}
