//! Reports rendered from a fixture database: every referenced chart exists
//! and is well-formed SVG, numbers on the pages match the database, user
//! strings are escaped, and headless Chromium loads the pages from file://
//! without console errors (a screenshot is kept in target/test-artifacts/).

use std::path::{Path, PathBuf};
use std::process::Command;

use mtlbench::stats::summarize;
use mtlbench::store::fixture::FixtureSpec;
use mtlbench::store::Store;

fn fixture(dir: &Path) -> (Store, Vec<String>) {
    let store = Store::open(&dir.join("db.sqlite")).unwrap();
    let spec = FixtureSpec { name_suffix: "<script>alert('x')</script>".into(), ..Default::default() };
    let ids = store.write_fixture(&spec, 42).unwrap();
    (store, ids)
}

/// `src="..."` references of a page.
fn image_refs(html: &str) -> Vec<String> {
    html.split("src=\"").skip(1).filter_map(|s| s.split('"').next()).map(str::to_string).collect()
}

#[test]
fn pages_reference_valid_svgs_and_show_the_stored_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = fixture(dir.path());
    let out = dir.path().join("reports");
    let r = mtlbench::report::render(&store, &out).unwrap();
    let index = std::fs::read_to_string(&r.index).unwrap();
    // 1 sweep page + its leaderboard page + 12 run pages (the index apart).
    assert_eq!(r.pages.len(), 2 + ids.len());
    assert!(r.pages.iter().any(|p| p.file_name().unwrap().to_str().unwrap().starts_with("leaderboard-")));
    let mut referenced = 0;
    for page in std::iter::once(&r.index).chain(r.pages.iter()) {
        let html = std::fs::read_to_string(page).unwrap();
        assert!(!html.contains("<script>"), "{} renders a user string as markup", page.display());
        for src in image_refs(&html) {
            let svg = std::fs::read_to_string(out.join(&src)).unwrap_or_else(|e| panic!("{} references {src}: {e}", page.display()));
            let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{src} is not well-formed: {e}"));
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            referenced += 1;
        }
        for href in html.split("href=\"").skip(1).filter_map(|s| s.split('"').next()) {
            assert!(out.join(href).exists(), "{} links to missing {href}", page.display());
        }
    }
    assert!(referenced >= 10, "only {referenced} charts referenced");
    assert!(index.contains("&lt;script&gt;"), "the escaped name should be visible as text");

    // The results matrix shows mean ± std over seeds, computed from the stored metrics.
    let sweep_page = r.pages.iter().find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("sweep-")).unwrap();
    let html = std::fs::read_to_string(sweep_page).unwrap();
    let runs = store.list_runs().unwrap();
    let mmoe_gradnorm: Vec<f64> = runs
        .iter()
        .filter(|r| r.model == "mmoe" && r.strategy == "gradnorm")
        .map(|r| store.metrics(&r.id).unwrap().into_iter().find(|m| m.split == "test" && m.metric == "auc" && m.task == "like").unwrap().value)
        .collect();
    assert_eq!(mmoe_gradnorm.len(), 3);
    let s = summarize(&mmoe_gradnorm).unwrap();
    let want = format!("{:.4} ± {:.4}", s.mean, s.std);
    assert!(html.contains(&want), "sweep page lacks {want}");
    // A run page shows its stored metrics.
    let run = &runs[0];
    let run_html = std::fs::read_to_string(out.join(format!("run-{}.html", run.id))).unwrap();
    for m in store.metrics(&run.id).unwrap() {
        assert!(run_html.contains(&format!("{:.6}", m.value)), "run page lacks {} {} {}", m.split, m.task, m.metric);
    }
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .filter_map(|c| std::env::var_os("PATH").map(|p| std::env::split_paths(&p).map(|d| d.join(c)).find(|x| x.is_file())))
        .flatten()
        .next()
}

/// Loads a page headless; returns console/resource error lines from the log.
fn browse(chrome: &Path, page: &Path, screenshot: &Path) -> Vec<String> {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("running chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Failed to load resource") || l.contains("ERR_FILE_NOT_FOUND") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

#[test]
fn chromium_loads_the_pages_without_console_errors() {
    let Some(chrome) = chromium() else {
        assert!(std::env::var_os("MTLBENCH_REQUIRE_BROWSER").is_none(), "MTLBENCH_REQUIRE_BROWSER is set but no chromium is installed");
        eprintln!("note: chromium not installed; browser test skipped (.ci/run installs it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = fixture(dir.path());
    let out = dir.path().join("reports");
    let r = mtlbench::report::render(&store, &out).unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let named = |prefix: &str| r.pages.iter().find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(prefix)).unwrap();
    let (sweep, board) = (named("sweep-"), named("leaderboard-"));
    for (page, shot) in [(&r.index, "report-index.png"), (sweep, "report-sweep.png"), (board, "report-leaderboard.png")] {
        let png = artifacts.join(shot);
        let _ = std::fs::remove_file(&png);
        let errors = browse(&chrome, page, &png);
        assert!(errors.is_empty(), "{}: {errors:#?}", page.display());
        let bytes = std::fs::read(&png).unwrap();
        assert!(bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"), "screenshot of {} is empty", page.display());
    }
    // The detector itself catches a broken page.
    let bad = out.join("bad.html");
    std::fs::write(&bad, "<html><body><img src=\"missing.svg\"><script>undefinedFunction()</script></body></html>").unwrap();
    let errors = browse(&chrome, &bad, &dir.path().join("bad.png"));
    assert!(!errors.is_empty(), "a page with a missing image and a script error must be caught");
}
