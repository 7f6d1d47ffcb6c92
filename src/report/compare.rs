//! Renders a [`Comparison`] (from `crate::compare`) for people and tools:
//! aligned text, Markdown, CSV (one row per task, metric and column, full
//! precision), JSON (the comparison itself) and a self-contained HTML page
//! (inline CSS and SVG, no external resources, so it works from file://).
//! Formatting only: every number comes from the comparison.

use serde::Serialize;

use super::table::Table;
use super::ReportError;
use crate::compare::{Comparison, Delta, Mode, Verdict};
use crate::stats::Summary;

fn value(s: &Option<Summary>) -> String {
    match s {
        Some(s) if s.n > 1 => format!("{:.4} ± {:.4} (n={})", s.mean, s.std, s.n),
        Some(s) => format!("{:.4}", s.mean),
        None => "–".into(),
    }
}

/// "0.163", or "2.1e-05" below 0.001.
pub fn fmt_p(p: f64) -> String {
    if p >= 0.001 {
        format!("{p:.3}")
    } else {
        format!("{p:.1e}")
    }
}

struct DeltaCells {
    delta: String,
    ci: String,
    p: String,
    test: String,
    verdict: String,
}

fn delta_cells(d: &Option<Delta>) -> DeltaCells {
    let dash = || "–".to_string();
    match d {
        None => DeltaCells { delta: String::new(), ci: String::new(), p: String::new(), test: String::new(), verdict: String::new() },
        Some(d) => DeltaCells {
            delta: format!("{:+.4}", d.estimate),
            ci: d.ci.map_or_else(dash, |c| format!("[{:+.4}, {:+.4}]", c.low, c.high)),
            p: d.ci.and_then(|c| c.p_value).map_or_else(dash, fmt_p),
            test: d.ci.map_or_else(|| "none".into(), |c| c.method.label().to_string()),
            verdict: d.verdict.map_or_else(dash, |v| v.label().to_string()),
        },
    }
}

fn headline(c: &Comparison) -> String {
    let level = format!("{:.0}%", c.level * 100.0);
    match c.mode {
        Mode::Runs => {
            let rows = c.rows.as_ref().map_or("DeLong's test not run (--no-delong)".into(), |r| {
                format!("DeLong's test for AUC on the same {} test rows (rows digest {})", r.count, r.digest)
            });
            format!("{} runs, baseline A; test metrics, Δ = column - A; {rows}; {level} CI", c.columns.len())
        }
        Mode::Seeds => format!(
            "{} configurations over seeds, baseline A; test metrics, mean ± sample std; Δ = mean - A's mean with its {level} CI \
             (paired t by seed when the seeds match, Welch t otherwise)",
            c.columns.len()
        ),
    }
}

/// The columns legend: key, label, model, strategy, seeds and run ids.
pub fn columns_table(c: &Comparison) -> Table {
    let mut t = Table::new(&["col", "label", "model", "strategy", "seeds", "runs"]);
    for col in &c.columns {
        t.push(vec![
            col.key.clone(),
            col.label.clone(),
            col.model.clone(),
            col.strategy.clone(),
            col.seeds.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(","),
            col.runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>().join(" "),
        ]);
    }
    t
}

/// Only the params that differ, one column per comparison column.
pub fn params_table(c: &Comparison) -> Table {
    let mut headers = vec!["param".to_string()];
    headers.extend(c.columns.iter().map(|col| col.key.clone()));
    let mut t = Table { headers, rows: vec![] };
    for p in &c.params {
        let mut row = vec![p.key.clone()];
        row.extend(p.values.iter().map(|v| v.clone().unwrap_or_else(|| "(unset)".into())));
        t.push(row);
    }
    t
}

/// Long form: one row per task, metric and column.
pub fn metrics_table(c: &Comparison) -> Table {
    let value_header = if c.mode == Mode::Seeds { "mean ± std (n)" } else { "value" };
    let mut t = Table::new(&["task", "metric", "col", value_header, "Δ vs A", "95% CI", "p", "test", "verdict"]);
    for task in &c.tasks {
        for m in &task.metrics {
            for (i, col) in c.columns.iter().enumerate() {
                let d = delta_cells(&m.deltas[i]);
                t.push(vec![
                    task.task.clone(),
                    m.metric.clone(),
                    col.key.clone(),
                    value(&m.stats[i]),
                    d.delta,
                    d.ci,
                    d.p,
                    d.test,
                    d.verdict,
                ]);
            }
        }
    }
    t
}

/// "B: click better, like within noise" per non-baseline column.
pub fn verdict_lines(c: &Comparison) -> Vec<String> {
    c.columns
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, col)| {
            let parts: Vec<String> =
                c.tasks.iter().map(|t| format!("{} {}", t.task, t.verdicts[i].map_or("untested", Verdict::label))).collect();
            format!("{} vs A (test AUC): {}", col.key, parts.join(", "))
        })
        .collect()
}

/// Aligned text for the terminal.
pub fn to_text(c: &Comparison) -> String {
    let mut out = format!("compare: {}\n\ncolumns:\n{}", headline(c), indent(&columns_table(c).to_text()));
    if c.params.is_empty() {
        out.push_str("\nparams: identical\n");
    } else {
        out.push_str(&format!("\nparams that differ:\n{}", indent(&params_table(c).to_text())));
    }
    out.push_str(&format!("\ntest metrics:\n{}", indent(&metrics_table(c).to_text())));
    out.push_str("\nverdicts:\n");
    for l in verdict_lines(c) {
        out.push_str(&format!("  {l}\n"));
    }
    for n in &c.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// Markdown (for a README or a PR).
pub fn to_markdown(c: &Comparison) -> String {
    let mut out = format!("**Compare**: {}\n\n{}", headline(c), columns_table(c).to_markdown());
    if !c.params.is_empty() {
        out.push_str(&format!("\nParams that differ:\n\n{}", params_table(c).to_markdown()));
    }
    out.push_str(&format!("\nTest metrics:\n\n{}\n", metrics_table(c).to_markdown()));
    for l in verdict_lines(c) {
        out.push_str(&format!("- {l}\n"));
    }
    for n in &c.notes {
        out.push_str(&format!("- note: {n}\n"));
    }
    out
}

/// CSV of the metrics, full precision, one row per task, metric and column.
pub fn to_csv(c: &Comparison) -> String {
    let mut t =
        Table::new(&["task", "metric", "col", "label", "n", "mean", "std", "delta", "ci_low", "ci_high", "p_value", "method", "verdict"]);
    let num = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
    for task in &c.tasks {
        for m in &task.metrics {
            for (i, col) in c.columns.iter().enumerate() {
                let s = m.stats[i];
                let d = m.deltas[i].as_ref();
                let ci = d.and_then(|d| d.ci);
                t.push(vec![
                    task.task.clone(),
                    m.metric.clone(),
                    col.key.clone(),
                    col.label.clone(),
                    s.map_or(String::new(), |s| s.n.to_string()),
                    num(s.map(|s| s.mean)),
                    num(s.map(|s| s.std)),
                    num(d.map(|d| d.estimate)),
                    num(ci.map(|c| c.low)),
                    num(ci.map(|c| c.high)),
                    num(ci.and_then(|c| c.p_value)),
                    ci.map_or(String::new(), |c| c.method.label().to_string()),
                    d.and_then(|d| d.verdict).map_or(String::new(), |v| v.label().to_string()),
                ]);
            }
        }
    }
    t.to_csv()
}

/// The comparison as pretty JSON.
pub fn to_json(c: &Comparison) -> Result<String, ReportError> {
    serde_json::to_string_pretty(c).map_err(|e| ReportError::Invalid(format!("serializing the comparison: {e}")))
}

#[derive(Serialize)]
struct BarCtx {
    key: String,
    y: f64,
    x_low: f64,
    x_high: f64,
    x_est: f64,
    verdict: String,
    text: String,
}

#[derive(Serialize)]
struct ForestCtx {
    task: String,
    height: f64,
    x_zero: f64,
    bars: Vec<BarCtx>,
}

/// Per task, the Δ AUC of each column with its CI on a shared scale.
fn forest(c: &Comparison) -> Vec<ForestCtx> {
    const LEFT: f64 = 40.0;
    const WIDTH: f64 = 400.0;
    let mut out = Vec::new();
    for t in &c.tasks {
        let Some(m) = t.metrics.iter().find(|m| m.metric == "auc") else { continue };
        let cis: Vec<(usize, _)> =
            m.deltas.iter().enumerate().filter_map(|(i, d)| d.as_ref().and_then(|d| d.ci).map(|ci| (i, ci))).collect();
        if cis.is_empty() {
            continue;
        }
        let span = cis.iter().map(|(_, ci)| ci.low.abs().max(ci.high.abs())).fold(0.0f64, f64::max).max(1e-6) * 1.1;
        let x = |v: f64| LEFT + (v + span) / (2.0 * span) * WIDTH;
        let bars = cis
            .iter()
            .enumerate()
            .map(|(row, (i, ci))| BarCtx {
                key: c.columns[*i].key.clone(),
                y: 20.0 + row as f64 * 24.0,
                x_low: x(ci.low),
                x_high: x(ci.high),
                x_est: x(ci.estimate),
                verdict: m.deltas[*i]
                    .as_ref()
                    .and_then(|d| d.verdict)
                    .map_or("none", |v| match v {
                        Verdict::Better => "better",
                        Verdict::Worse => "worse",
                        Verdict::WithinNoise => "noise",
                    })
                    .into(),
                text: format!("{:+.4} [{:+.4}, {:+.4}]", ci.estimate, ci.low, ci.high),
            })
            .collect::<Vec<_>>();
        out.push(ForestCtx { task: t.task.clone(), height: 30.0 + bars.len() as f64 * 24.0, x_zero: x(0.0), bars });
    }
    out
}

#[derive(Serialize)]
struct PageCtx {
    generated_at: String,
    headline: String,
    columns: Table,
    params: Table,
    metrics: Table,
    verdicts: Vec<String>,
    notes: Vec<String>,
    forest: Vec<ForestCtx>,
    json: String,
}

/// A self-contained HTML page (template `templates/compare.html`).
pub fn to_html(c: &Comparison) -> Result<String, ReportError> {
    let ctx = PageCtx {
        generated_at: crate::store::now(),
        headline: headline(c),
        columns: columns_table(c),
        params: params_table(c),
        metrics: metrics_table(c),
        verdicts: verdict_lines(c),
        notes: c.notes.clone(),
        forest: forest(c),
        json: to_json(c)?,
    };
    let mut env = minijinja::Environment::new();
    env.add_template("compare.html", include_str!("templates/compare.html"))?;
    Ok(env.get_template("compare.html")?.render(&ctx)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{build, RunData};
    use std::collections::BTreeMap;

    fn comparison() -> Comparison {
        comparison_with(&[])
    }

    /// Two configurations of three seeds on task "click" (test AUC only), plus `extra` metric rows on every run.
    fn comparison_with(extra: &[(&str, f64)]) -> Comparison {
        let run = |id: &str, cfg: &str, seed: i64, auc: f64| RunData {
            id: id.into(),
            name: format!("m-s{seed}-x=<{cfg}>"),
            model: "m".into(),
            strategy: "equal".into(),
            seed,
            config_hash: cfg.into(),
            sweep_id: "sw".into(),
            predictions_path: None,
            params: [("x".to_string(), format!("<{cfg}>"))].into(),
            test: std::iter::once(("auc", auc)).chain(extra.iter().copied()).map(|(m, v)| (("click".to_string(), m.to_string()), v)).collect(),
        };
        let a = vec![run("a1", "p", 1, 0.70), run("a2", "p", 2, 0.72), run("a3", "p", 3, 0.71)];
        let b = vec![run("b1", "q", 1, 0.72), run("b2", "q", 2, 0.75), run("b3", "q", 3, 0.72)];
        build(Mode::Seeds, &[a, b], &BTreeMap::new()).unwrap()
    }

    #[test]
    fn text_markdown_csv_carry_the_numbers() {
        let c = comparison();
        let text = to_text(&c);
        assert!(text.contains("0.7100 ± 0.0100 (n=3)"), "{text}");
        assert!(text.contains("+0.0200") && text.contains("[-0.0048, +0.0448]") && text.contains("paired t"), "{text}");
        assert!(text.contains("B vs A (test AUC): click within noise"), "{text}");
        assert!(text.contains("params that differ") && text.contains("<q>"));
        let md = to_markdown(&c);
        assert!(md.contains("| click | auc | B |"), "{md}");
        let csv = to_csv(&c);
        let row = csv.lines().find(|l| l.starts_with("click,auc,B,")).unwrap();
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells[4], "3");
        assert!((cells[7].parse::<f64>().unwrap() - 0.02).abs() < 1e-12, "{row}");
        assert_eq!(cells[11], "paired t");
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        let html = to_html(&comparison()).unwrap();
        assert!(html.starts_with("<!doctype html>"));
        // User strings are escaped, never raw markup.
        assert!(!html.contains("<q>") && html.contains("&lt;q&gt;"), "labels must be escaped");
        // No external resources: works from file://.
        for needle in ["src=\"http", "href=\"http", "<link", "<script src"] {
            assert!(!html.contains(needle), "external resource {needle}");
        }
        assert!(html.contains("<svg") && html.contains("within noise"));
    }

    #[test]
    fn no_uauc_rows_where_no_run_has_users() {
        // Runs of a source without users record no uAUC: no row shows one.
        let c = comparison();
        for out in [to_text(&c), to_markdown(&c), to_csv(&c)] {
            assert!(!out.contains("uauc"), "{out}");
        }
        // Runs with users do.
        let c = comparison_with(&[("uauc", 0.65)]);
        assert!(to_csv(&c).lines().any(|l| l.starts_with("click,uauc,B,")), "{}", to_csv(&c));
    }

    #[test]
    fn small_p_values_use_exponents() {
        assert_eq!(fmt_p(0.1634), "0.163");
        assert_eq!(fmt_p(0.000_021), "2.1e-5");
    }
}
