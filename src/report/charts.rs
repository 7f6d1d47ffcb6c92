//! SVG charts drawn with plotters' SVG backend (no fonts needed). One
//! function per chart; each returns the SVG text.

use plotters::prelude::*;

use super::ReportError;

/// A consistent palette: colour i is always the same task (or series).
pub const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn chart_err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// Horizontal grouped bars: one group per cell, one bar per task, value =
/// test AUC. `values[cell][task]` is `None` where the AUC is undefined.
pub fn auc_bars(title: &str, cells: &[String], tasks: &[String], values: &[Vec<Option<f64>>]) -> Result<String, ReportError> {
    let n_cells = cells.len().max(1);
    let n_tasks = tasks.len().max(1);
    let bar_h = 14u32;
    let height = 110 + (n_cells * (n_tasks * bar_h as usize + 10)) as u32;
    let width = 900u32;
    let defined: Vec<f64> = values.iter().flatten().flatten().copied().collect();
    let lo = defined.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = defined.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1) = if defined.is_empty() {
        (0.5, 1.0)
    } else {
        (((lo - 0.02).max(0.0) * 50.0).floor() / 50.0, ((hi + 0.01).min(1.0) * 50.0).ceil() / 50.0)
    };
    let x1 = if x1 <= x0 { x0 + 0.02 } else { x1 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let label_w = cells.iter().map(|c| c.len()).max().unwrap_or(4).clamp(6, 48) as u32 * 7 + 10;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x0..x1, -0.5f64..(n_cells as f64 - 0.5))
            .map_err(chart_err)?;
        let names = cells.to_vec();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("test ROC-AUC")
            .y_labels(n_cells + 1)
            .y_label_formatter(&|y| {
                // Cell c is centred at y = n - 1 - c (the first cell on top).
                let k = y.round();
                if (y - k).abs() < 1e-6 && k >= 0.0 && (k as usize) < n_cells {
                    names.get(n_cells - 1 - k as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| format!("{x:.2}"))
            .draw()
            .map_err(chart_err)?;
        for (t, task) in tasks.iter().enumerate() {
            let color = PALETTE[t % PALETTE.len()];
            let band = 0.8 / n_tasks as f64;
            let rects: Vec<Rectangle<(f64, f64)>> = values
                .iter()
                .enumerate()
                .filter_map(|(c, row)| {
                    let v = row.get(t).copied().flatten()?;
                    // Cell c spans [n-1-c-0.4, n-1-c+0.4]; its task bars are stacked inside.
                    let top = (n_cells - 1 - c) as f64 + 0.4 - band * t as f64;
                    Some(Rectangle::new([(x0, top - band), (v, top)], color.filled()))
                })
                .collect();
            chart
                .draw_series(rects)
                .map_err(chart_err)?
                .label(task.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(chart_err)?;
        root.present().map_err(chart_err)?;
    }
    Ok(svg)
}
