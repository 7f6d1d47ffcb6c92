//! SVG charts drawn with plotters' SVG backend (no fonts needed; text is
//! escaped by the backend). One function per chart kind; each returns the
//! SVG text. Colours are stable: a model always has the same hue and a
//! strategy the same shade of it, a task always the same colour.

use plotters::prelude::*;

use super::ReportError;
use crate::models::ModelKind;
use crate::strategies::StrategyKind;

/// Tableau-like palette.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// The colour of task number `i` of a sweep.
pub fn task_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn index_of<T: PartialEq>(all: &[T], pred: impl Fn(&T) -> bool) -> usize {
    all.iter().position(pred).unwrap_or(all.len())
}

/// The colour of a (model, strategy) configuration: the model's hue, lighter
/// for each further strategy.
pub fn config_color(model: &str, strategy: &str) -> RGBColor {
    let m = index_of(ModelKind::ALL, |k| k.name() == model);
    let s = index_of(StrategyKind::ALL, |k| k.name() == strategy);
    let base = PALETTE[m % PALETTE.len()];
    let f = [0.0, 0.3, 0.5, 0.65, 0.75][s.min(4)];
    let mix = |c: u8| (c as f64 + (255.0 - c as f64) * f * 0.9) as u8;
    RGBColor(mix(base.0), mix(base.1), mix(base.2))
}

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// A series of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: RGBColor,
    pub points: Vec<(f64, f64)>,
}

/// A group of horizontal bars (one bar per series), value mean ± std.
#[derive(Debug, Clone)]
pub struct BarSeries {
    pub name: String,
    pub color: RGBColor,
    /// One entry per group; `None` = undefined.
    pub values: Vec<Option<(f64, f64)>>,
}

fn padded_range(values: impl Iterator<Item = f64>, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-3);
    let lo = if floor_zero { 0.0 } else { lo - 0.08 * span };
    (lo, hi + 0.08 * span)
}

/// Horizontal grouped bars with error bars. `groups` label the rows
/// (top to bottom); each series draws one bar per group.
pub fn hbars(title: &str, x_desc: &str, groups: &[String], series: &[BarSeries], floor_zero: bool) -> Result<String, ReportError> {
    let n = groups.len().max(1);
    let k = series.len().max(1);
    let bar_px = 12usize;
    let height = (110 + n * (k * bar_px + 12)) as u32;
    let all = series.iter().flat_map(|s| s.values.iter().flatten().flat_map(|(m, sd)| [m - sd, m + sd]));
    let (x0, x1) = padded_range(all, floor_zero);
    let label_w = groups.iter().map(|g| g.chars().count()).max().unwrap_or(4).clamp(6, 60) as u32 * 7 + 12;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_w)
            .build_cartesian_2d(x0..x1, -0.5f64..(n as f64 - 0.5))
            .map_err(err)?;
        let names = groups.to_vec();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .max_light_lines(2)
            .x_desc(x_desc)
            .y_labels(n + 1)
            .y_label_formatter(&|y| {
                // Group g is centred at y = n - 1 - g (the first group on top).
                let r = y.round();
                if (y - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < n {
                    names.get(n - 1 - r as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_formatter(&|x| if x1 - x0 > 20.0 { format!("{x:.0}") } else { format!("{x:.3}") })
            .draw()
            .map_err(err)?;
        let band = 0.8 / k as f64;
        for (si, s) in series.iter().enumerate() {
            let color = s.color;
            let mut rects = Vec::new();
            let mut whiskers = Vec::new();
            for (g, v) in s.values.iter().enumerate() {
                let Some((m, sd)) = v else { continue };
                let top = (n - 1 - g) as f64 + 0.4 - band * si as f64;
                rects.push(Rectangle::new([(x0, top - band * 0.9), (*m, top)], color.filled()));
                if *sd > 0.0 {
                    let y = top - band * 0.45;
                    whiskers.push(PathElement::new(vec![((m - sd).max(x0), y), (m + sd, y)], BLACK.stroke_width(1)));
                }
            }
            chart
                .draw_series(rects)
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
            chart.draw_series(whiskers).map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Lines over a numeric x axis.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Result<String, ReportError> {
    let (x0, x1) = padded_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.0)), false);
    let (y0, y1) = padded_range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), false);
    let height = 380 + 18 * (series.len().saturating_sub(8) as u32).min(30);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (960, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .max_light_lines(2)
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&|x| if (x.round() - x).abs() < 1e-9 { format!("{x:.0}") } else { format!("{x:.1}") })
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(err)?;
        for s in series {
            let color = s.color;
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            if s.points.len() <= 40 {
                chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(err)?;
            }
        }
        if !series.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A heatmap: rows x columns of values in [0, 1] (e.g. mean gate weights),
/// each cell annotated with its value.
pub fn heatmap(title: &str, rows: &[String], cols: &[String], values: &[Vec<f64>]) -> Result<String, ReportError> {
    let (nr, nc) = (rows.len().max(1), cols.len().max(1));
    let cell_w = (760 / nc).clamp(14, 80) as u32;
    let label_w = rows.iter().map(|r| r.chars().count()).max().unwrap_or(4).clamp(4, 40) as u32 * 7 + 12;
    let width = label_w + cell_w * nc as u32 + 60;
    let height = 90 + 26 * nr as u32 + 40;
    let vmax = values.iter().flatten().copied().filter(|v| v.is_finite()).fold(0.0f64, f64::max).max(1e-9);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width.max(420), height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(label_w)
            .build_cartesian_2d(-0.5f64..(nc as f64 - 0.5), -0.5f64..(nr as f64 - 0.5))
            .map_err(err)?;
        let (rn, cn) = (rows.to_vec(), cols.to_vec());
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(nc + 1)
            .y_labels(nr + 1)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 { cn.get(i as usize).cloned().unwrap_or_default() } else { String::new() }
            })
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < nr {
                    rn.get(nr - 1 - i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(err)?;
        // Cell (r, c) is centred at (c, nr - 1 - r), where the key points are.
        let mut cells = Vec::new();
        let mut texts = Vec::new();
        for (r, row) in values.iter().enumerate() {
            for (c, &v) in row.iter().enumerate() {
                if !v.is_finite() {
                    continue; // no such expert for this gate: left blank
                }
                let t = (v / vmax).clamp(0.0, 1.0);
                let color = RGBColor((255.0 - 224.0 * t) as u8, (255.0 - 136.0 * t) as u8, (255.0 - 75.0 * t) as u8);
                let (x, y) = (c as f64, (nr - 1 - r) as f64);
                cells.push(Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], color.filled()));
                let fg = if t > 0.6 { WHITE } else { BLACK };
                texts.push(Text::new(format!("{v:.2}"), (x - 0.3, y + 0.15), ("sans-serif", 11).into_font().color(&fg)));
            }
        }
        chart.draw_series(cells).map_err(err)?;
        if nc <= 24 {
            chart.draw_series(texts).map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
