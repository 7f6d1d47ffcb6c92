//! Everything that can be checked is checked when the grid is read: the
//! error names the file, the key and its line, `--dry-run` refuses the same
//! grid, the exit code is non-zero and nothing recorded before is lost or
//! changed. Bad data files, constant labels and the messages of errors.

use std::path::Path;

use crate::common::*;

/// A database with the finished runs of TINY_GRID.
fn recorded_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let g = write(dir.path(), "tiny.toml", TINY_GRID);
    let o = bench(dir.path(), &["run", "-q", g.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

/// Runs `bench args` expecting a refusal that leaves the database as it
/// was (a grid refused when it is read does not open it), or, with
/// `sweep_added`, with nothing but the sweep's row added (a grid that fails
/// when its data loads).
fn refused(dir: &Path, args: &[&str], sweep_added: bool) -> String {
    let db = dir.join("db.sqlite");
    let before = recorded(&db);
    let o = bench(dir, args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    let after = recorded(&db);
    assert_eq!((&after.integrity, &after.runs), (&before.integrity, &before.runs), "{args:?} changed the runs");
    assert_eq!(after.sweeps, before.sweeps + usize::from(sweep_added), "{args:?}");
    assert_eq!(before.integrity, "ok");
    assert_each_cause_once(&err);
    err
}

fn refused_leaving_the_database(dir: &Path, args: &[&str]) -> String {
    refused(dir, args, false)
}

#[test]
fn settings_that_fail_a_cell_are_refused_at_read_with_file_key_and_line() {
    let dir = recorded_dir();
    // TINY_GRID starts with a newline: `name` is on line 2, `rows` on 5, `tasks` on 8,
    // `threads` on 13, `hidden` on 15, `models` on 19, `seeds` on 21, and what is appended on 22.
    let cases: &[(&str, &str, &str, &str)] = &[
        ("patience = 1", "patience = 1\nmax_steps_per_epoch = 0", "train.max_steps_per_epoch` (line 13)", "at least 1"),
        ("threads = 1", "threads = 0", "train.threads` (line 13)", "between 1 and 1024"),
        ("threads = 1", "threads = 1\ndevice = \"cuda:abc\"", "train.device` (line 14)", "\"cuda:N\""),
        ("hidden = [16]", "hidden = [0]", "models.tower.hidden` (line 15)", "positive"),
        ("items = 80", "items = 80\nrelatedness = 5.0", "data.relatedness` (line 8)", "[0, 1]"),
        ("tasks = [\"click\", \"like\"]", "tasks = []", "data.tasks` (line 8)", "at least one task"),
        ("rows = 3000", "rows = 3", "data.rows` (line 5)", "at least 100"),
        ("seeds = [1, 2]", "seeds = [1, 2]\n[strategies.equal]\nweights = [1.0]", "strategies.equal.weights` (line 23)", "1 weights given for 2 loss terms"),
        ("seeds = [1, 2]", "seeds = [1, 2]\n[strategies.equal]\nweights = [inf, 1.0]", "strategies.equal.weights` (line 23)", "finite"),
        (
            "strategies = [\"equal\"]\nseeds = [1, 2]",
            "strategies = [\"equal\", \"gradnorm\"]\nseeds = [1, 2]\n[strategies.gradnorm]\nalpha = -1.0",
            "strategies.gradnorm.alpha` (line 23)",
            ">= 0",
        ),
        ("seeds = [1, 2]", "seeds = [1, 2, 1]", "grid.seeds[2]` (line 21)", "seed `1` is listed twice"),
        ("models = [\"shared-bottom\"]", "models = [\"shared-bottom\", \"shared-bottom\"]", "grid.models[1]` (line 19)", "listed twice"),
        ("rows = 3000", "rows = 3000\nrowz = 1", "data.rowz` (line 6)", "unknown field `rowz`"),
        ("name = \"tiny\"", "name = \"tiny\" # \u{0}", ".` (line 2)", "control character U+0000"),
    ];
    for (from, to, key, want) in cases {
        assert!(TINY_GRID.contains(from), "{from}");
        let p = write(dir.path(), "bad.toml", &TINY_GRID.replace(from, to));
        for args in [&["run", p.to_str().unwrap()][..], &["run", "--dry-run", p.to_str().unwrap()]] {
            let err = refused_leaving_the_database(dir.path(), args);
            assert!(err.contains(&format!("bad.toml: key `{key}")) && err.contains(want), "{to}: {err}");
        }
    }
}

#[test]
fn a_grid_that_is_not_utf8_is_named_by_line_and_column() {
    let dir = recorded_dir();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, b"name = \"t\"\n[grid]\nmodels = [\"mm\xffoe\"]\n").unwrap();
    let err = refused_leaving_the_database(dir.path(), &["run", p.to_str().unwrap()]);
    assert!(err.contains("bad.toml: not UTF-8 text: invalid byte at line 3, column 14 (byte offset 31)"), "{err}");
}

/// A table grid on `csv` (two tasks y1, y2 split by the `part` column).
fn table_grid(csv: &Path, select: &str) -> String {
    format!(
        "[data]\nkind = \"table\"\npath = {:?}\ncategorical = [\"item\"]\nuser = \"user\"\nlabels = [{{ column = \"y1\" }}, {{ column = \"y2\" }}]\n\
         split = {{ by = \"column\", column = \"part\", train = [\"tr\"], valid = [\"va\"], test = [\"te\"] }}\n\
         [train]\nepochs = 1\nbatch_size = 64\nthreads = 1\nselect_metric = \"{select}\"\n[models.tower]\nhidden = [8]\n\
         [models.shared-bottom]\nbottom = [8]\n[grid]\nmodels = [\"shared-bottom\"]\nstrategies = [\"equal\"]\n",
        csv.display()
    )
}

/// 400 rows; y2 is 0 on every row of the split `constant_in` (elsewhere both classes).
fn table_csv(dir: &Path, constant_in: &str) -> std::path::PathBuf {
    let mut s = String::from("user,item,y1,y2,part\n");
    for i in 0..400 {
        let part = match i % 8 {
            0 => "va",
            1 => "te",
            _ => "tr",
        };
        let y2 = if part == constant_in { 0 } else { (i / 8) % 2 };
        s.push_str(&format!("u{},i{},{},{y2},{part}\n", i % 37, i % 23, (i / 3) % 2));
    }
    write(dir, "t.csv", &s)
}

#[test]
fn a_constant_test_label_is_warned_and_no_mean_covers_fewer_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let csv = table_csv(dir.path(), "te");
    let g = write(dir.path(), "g.toml", &table_grid(&csv, "mean-logloss"));
    let o = bench(dir.path(), &["run", g.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("task `y2` has label 0 on every row of the test split").count(), 1, "{err}");
    let list = stdout(&bench(dir.path(), &["list"]));
    let row = list.lines().find(|l| l.contains("shared-bottom-equal-s1")).unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("finished") && row.contains(" n/a "), "a mean over y1 alone is not a mean over tasks: {row}");
}

#[test]
fn a_constant_validation_label_cannot_select_on_mean_auc() {
    let dir = tempfile::tempdir().unwrap();
    let csv = table_csv(dir.path(), "va");
    let g = write(dir.path(), "g.toml", &table_grid(&csv, "mean-auc"));
    let o = bench(dir.path(), &["run", g.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("task `y2` has label 0 on every row of the validation split"), "{err}");
    assert!(err.contains("failed: shared-bottom-equal-s1") && err.contains("task(s) y2 have one class only in the validation split"), "{err}");
    assert!(err.contains("mean-logloss"), "{err}");
    assert_each_cause_once(&err);
}

#[test]
fn data_errors_name_the_file_and_print_each_cause_once() {
    let dir = recorded_dir();
    let empty = write(dir.path(), "empty.csv", "");
    let g = write(dir.path(), "g.toml", &table_grid(&empty, "mean-auc"));
    let err = refused(dir.path(), &["run", g.to_str().unwrap()], true);
    assert!(err.contains("empty.csv: the file is empty"), "{err}");
    let csv = table_csv(dir.path(), "none");
    let g2 = write(dir.path(), "g2.toml", &table_grid(&csv, "mean-auc").replace("[\"item\"]", "[\"itemz\"]"));
    let err = refused(dir.path(), &["run", g2.to_str().unwrap()], true);
    assert_eq!(err.matches("no column `itemz`").count(), 1, "{err}");
    assert!(err.contains("g2.toml"), "{err}");
}

#[test]
fn a_database_error_prints_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("a-directory");
    std::fs::create_dir(&sub).unwrap();
    let o = bench(dir.path(), &["--db", sub.to_str().unwrap(), "list"]);
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("a-directory"), "{err}");
    assert_each_cause_once(&err);
}
