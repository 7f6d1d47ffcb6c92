//! SVG charts drawn with plotters' SVG backend (no fonts needed; text is
//! escaped by the backend). One function per chart kind; each returns the
//! SVG text.
//!
//! Made to be read at a glance: values of different scales get panels of
//! their own (each axis fitted to its values), legends sit beside or below
//! the plotting area, never over the data, and the series of a chart are
//! told apart by a qualitative palette of 12 colours and, beyond it, by line
//! pattern and marker ([`style`]). A page gives item `i` of a set (its
//! configurations, its tasks) the same style in every chart.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::ReportError;
use crate::store::GateRow;

/// Qualitative colours, well separated in hue and lightness (Tableau 10
/// and two darker ones).
pub const PALETTE: [RGBColor; 12] = [
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
    RGBColor(0, 60, 120),
    RGBColor(90, 50, 0),
];

/// The pattern of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

/// The marker on a line's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
    Square,
    Cross,
}

/// How one series is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Style {
    pub color: RGBColor,
    pub dash: Dash,
    pub marker: Marker,
}

/// The style of item `i` of a set: colour `i` of the palette; each further
/// round of 12 items repeats the colours with another line pattern and
/// marker, so that 48 items are told apart.
pub fn style(i: usize) -> Style {
    const DASHES: [Dash; 3] = [Dash::Solid, Dash::Dashed, Dash::Dotted];
    const MARKERS: [Marker; 4] = [Marker::Circle, Marker::Triangle, Marker::Square, Marker::Cross];
    let round = i / PALETTE.len();
    Style { color: PALETTE[i % PALETTE.len()], dash: DASHES[round % DASHES.len()], marker: MARKERS[round % MARKERS.len()] }
}

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

type Svg<'a> = SVGBackend<'a>;
type Area<'a> = DrawingArea<Svg<'a>, Shift>;

const WIDTH: u32 = 960;
const FONT: &str = "sans-serif";

/// A series of a line chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend entry; series of one name share one entry.
    pub name: String,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

/// One panel of a line chart: its own axes, fitted to its series.
#[derive(Debug, Clone)]
pub struct LinePanel {
    /// Shown above the panel; empty for a chart of one panel.
    pub title: String,
    pub series: Vec<Series>,
}

/// The y axes of a chart in panels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YAxes {
    /// Each panel fitted to its own series (values of different scales).
    PerPanel,
    /// One range for all panels (values of one scale, compared across panels).
    Shared,
}

/// A row of a bar chart: its label and colour.
#[derive(Debug, Clone)]
pub struct BarGroup {
    pub label: String,
    pub color: RGBColor,
}

/// One panel of a bar chart: a value (mean, std) per group, `None` where
/// undefined; the panel's axis is fitted to its own values.
#[derive(Debug, Clone)]
pub struct BarPanel {
    pub title: String,
    pub values: Vec<Option<(f64, f64)>>,
}

/// The axis range of `values` with a margin of 8% of their span on each
/// side (at least 0.001 wide), or from 0 when `floor_zero`.
pub fn padded_range(values: impl Iterator<Item = f64>, floor_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-3);
    let lo = if floor_zero { lo.min(0.0) } else { lo - 0.08 * span };
    (lo, hi + 0.08 * span)
}

/// Decimals that tell apart ticks about a fifth of `span` apart.
fn decimals(span: f64) -> usize {
    if span > 0.0 && span.is_finite() {
        (-(span / 5.0).log10()).ceil().clamp(0.0, 6.0) as usize
    } else {
        3
    }
}

/// Where the legend of a chart goes: a column beside the plots (short
/// names) or rows below them.
#[derive(Debug, Clone, Copy, PartialEq)]
enum LegendPlace {
    None,
    Right { width: u32 },
    Below { columns: usize, height: u32 },
}

const LEGEND_ROW: u32 = 18;
const LEGEND_CHARS: usize = 56;

fn legend_label(name: &str) -> String {
    if name.chars().count() > LEGEND_CHARS {
        format!("{}…", name.chars().take(LEGEND_CHARS - 1).collect::<String>())
    } else {
        name.to_string()
    }
}

fn legend_place(entries: &[(String, Style)]) -> LegendPlace {
    let chars = entries.iter().map(|(n, _)| legend_label(n).chars().count()).max().unwrap_or(0) as u32;
    let entry_w = chars * 7 + 52;
    if entries.is_empty() {
        LegendPlace::None
    } else if chars <= 30 {
        LegendPlace::Right { width: entry_w.max(100) }
    } else {
        let columns = ((WIDTH - 20) / entry_w).max(1) as usize;
        let rows = entries.len().div_ceil(columns) as u32;
        LegendPlace::Below { columns, height: rows * LEGEND_ROW + 16 }
    }
}

/// A short line in `style` from `(x, y)` to `(x + 28, y)` with its marker.
fn draw_sample(area: &Area, x: i32, y: i32, s: Style) -> Result<(), ReportError> {
    let stroke = s.color.stroke_width(2);
    let pieces: Vec<(i32, i32)> = match s.dash {
        Dash::Solid => vec![(0, 28)],
        Dash::Dashed => vec![(0, 8), (12, 20), (24, 28)],
        Dash::Dotted => (0..7).map(|k| (k * 4, k * 4 + 2)).collect(),
    };
    for (a, b) in pieces {
        area.draw(&PathElement::new(vec![(x + a, y), (x + b, y)], stroke)).map_err(err)?;
    }
    let c = (x + 14, y);
    let fill = s.color.filled();
    match s.marker {
        Marker::Circle => area.draw(&Circle::new(c, 3, fill)),
        Marker::Triangle => area.draw(&TriangleMarker::new(c, 4, fill)),
        Marker::Square => area.draw(&Rectangle::new([(c.0 - 3, c.1 - 3), (c.0 + 3, c.1 + 3)], fill)),
        Marker::Cross => area.draw(&Cross::new(c, 4, s.color.stroke_width(2))),
    }
    .map_err(err)
}

/// Draws the legend entries in `area`, in `columns` columns.
fn draw_legend(area: &Area, entries: &[(String, Style)], columns: usize) -> Result<(), ReportError> {
    let (w, _) = area.dim_in_pixel();
    let col_w = (w as usize / columns.max(1)) as i32;
    let font = (FONT, 13).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (k, (name, s)) in entries.iter().enumerate() {
        let (row, col) = ((k / columns.max(1)) as i32, (k % columns.max(1)) as i32);
        let (x, y) = (8 + col * col_w, 12 + row * LEGEND_ROW as i32);
        draw_sample(area, x, y, *s)?;
        area.draw(&Text::new(legend_label(name), (x + 36, y), font.clone())).map_err(err)?;
    }
    Ok(())
}

/// Splits the chart area into the plots and the legend.
fn with_legend<'a>(area: &Area<'a>, place: LegendPlace) -> (Area<'a>, Option<(Area<'a>, usize)>) {
    let (w, h) = area.dim_in_pixel();
    match place {
        LegendPlace::None => (area.clone(), None),
        LegendPlace::Right { width } => {
            let (plots, legend) = area.split_horizontally(w.saturating_sub(width));
            (plots, Some((legend.margin(28, 0, 8, 0), 1)))
        }
        LegendPlace::Below { columns, height } => {
            let (plots, legend) = area.split_vertically(h.saturating_sub(height));
            (plots, Some((legend, columns)))
        }
    }
}

/// The legend entries of the panels: one per series name, first style seen.
fn legend_entries(panels: &[LinePanel]) -> Vec<(String, Style)> {
    let mut out: Vec<(String, Style)> = Vec::new();
    for s in panels.iter().flat_map(|p| &p.series) {
        if !out.iter().any(|(n, _)| n == &s.name) {
            out.push((s.name.clone(), s.style));
        }
    }
    // A panel per series, titled by it, needs no legend.
    let titled = panels.iter().all(|p| p.series.len() <= 1 && p.series.iter().all(|s| s.name == p.title));
    if titled {
        out.clear();
    }
    out
}

/// Lines over a numeric x axis, one panel.
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series]) -> Result<String, ReportError> {
    line_panels(title, x_desc, y_desc, &[LinePanel { title: String::new(), series: series.to_vec() }], YAxes::PerPanel)
}

/// Lines in panels side by side (two or three per row), one legend for all.
pub fn line_panels(title: &str, x_desc: &str, y_desc: &str, panels: &[LinePanel], y: YAxes) -> Result<String, ReportError> {
    let entries = legend_entries(panels);
    let place = legend_place(&entries);
    let n = panels.len().max(1);
    let columns = match n {
        1 => 1,
        2..=4 => 2,
        _ => 3,
    };
    let rows = n.div_ceil(columns) as u32;
    let panel_h = if n == 1 { 360 } else { 270 };
    let mut height = 40 + rows * panel_h;
    match place {
        LegendPlace::Right { .. } => height = height.max(60 + entries.len() as u32 * LEGEND_ROW),
        LegendPlace::Below { height: h, .. } => height += h,
        LegendPlace::None => {}
    }
    let mut svg = String::new();
    {
        let root = Svg::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let body = root.titled(title, (FONT, 18)).map_err(err)?;
        let (plots, legend) = with_legend(&body, place);
        let (plots, _) = plots.split_vertically(rows * panel_h);
        let cells = plots.split_evenly((rows as usize, columns));
        let all = panels.iter().flat_map(|p| &p.series).flat_map(|s| &s.points);
        let (x_all, y_all) = (padded_range(all.clone().map(|q| q.0), false), padded_range(all.map(|q| q.1), false));
        for (p, cell) in panels.iter().zip(&cells) {
            let fitted = |f: fn(&(f64, f64)) -> f64| padded_range(p.series.iter().flat_map(|s| s.points.iter().map(f)), false);
            let ranges = match y {
                YAxes::PerPanel => (fitted(|q| q.0), fitted(|q| q.1)),
                YAxes::Shared => (x_all, y_all),
            };
            line_panel(cell, p, ranges, x_desc, y_desc)?;
        }
        if let Some((area, cols)) = legend {
            draw_legend(&area, &entries, cols)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

type Ranges = ((f64, f64), (f64, f64));

fn line_panel(area: &Area, p: &LinePanel, ((x0, x1), (y0, y1)): Ranges, x_desc: &str, y_desc: &str) -> Result<(), ReportError> {
    let mut builder = ChartBuilder::on(area);
    builder.margin(10).margin_right(18).x_label_area_size(40).y_label_area_size(64);
    if !p.title.is_empty() {
        builder.caption(&p.title, (FONT, 15));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
    let yd = decimals(y1 - y0);
    // Whole x values (epochs, steps) get whole ticks only.
    let whole = p.series.iter().flat_map(|s| &s.points).all(|q| q.0.fract() == 0.0);
    let x_ticks = if whole && x1 - x0 <= 12.0 { (x1 - x0).floor() as usize + 1 } else { 10 };
    let is_whole = |x: f64| (x.round() - x).abs() < 1e-9;
    chart
        .configure_mesh()
        .max_light_lines(1)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
        .x_labels(x_ticks)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| match (is_whole(*x), whole) {
            (true, _) => format!("{x:.0}"),
            (false, true) => String::new(),
            (false, false) => format!("{x:.1}"),
        })
        .y_label_formatter(&|y| format!("{y:.yd$}"))
        .draw()
        .map_err(err)?;
    for s in &p.series {
        let pts = s.points.iter().copied();
        let stroke = s.style.color.stroke_width(2);
        match s.style.dash {
            Dash::Solid => chart.draw_series(LineSeries::new(pts, stroke)).map(|_| ()),
            Dash::Dashed => chart.draw_series(DashedLineSeries::new(pts, 8, 5, stroke)).map(|_| ()),
            Dash::Dotted => chart.draw_series(DashedLineSeries::new(pts, 2, 4, stroke)).map(|_| ()),
        }
        .map_err(err)?;
        // Markers on every point of short series, on about 12 of long ones.
        let every = s.points.len().div_ceil(12).max(1);
        let marked = s.points.iter().copied().step_by(if s.points.len() <= 40 { 1 } else { every });
        let fill = s.style.color.filled();
        match s.style.marker {
            Marker::Circle => chart.draw_series(marked.map(|q| Circle::new(q, 3, fill))).map(|_| ()),
            Marker::Triangle => chart.draw_series(marked.map(|q| TriangleMarker::new(q, 4, fill))).map(|_| ()),
            Marker::Square => chart
                .draw_series(marked.map(|q| EmptyElement::at(q) + Rectangle::new([(-3, -3), (3, 3)], fill)))
                .map(|_| ()),
            Marker::Cross => chart.draw_series(marked.map(|q| Cross::new(q, 4, s.style.color.stroke_width(2)))).map(|_| ()),
        }
        .map_err(err)?;
    }
    Ok(())
}

/// Horizontal bars with error bars: one row per group (top to bottom), one
/// panel per entry of `panels` stacked vertically, each with its own value
/// axis fitted to its values (from 0 when `floor_zero`). Each bar is
/// labelled with its mean.
pub fn hbars(title: &str, x_desc: &str, groups: &[BarGroup], panels: &[BarPanel], floor_zero: bool) -> Result<String, ReportError> {
    let n = groups.len().max(1);
    let panel_h = (if panels.len() > 1 { 34 } else { 10 } + 44 + n * 22) as u32;
    let height = 40 + panel_h * panels.len().max(1) as u32;
    let label_w = groups.iter().map(|g| g.label.chars().count()).max().unwrap_or(4).clamp(6, 60) as u32 * 7 + 12;
    let mut svg = String::new();
    {
        let root = Svg::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let body = root.titled(title, (FONT, 18)).map_err(err)?;
        let cells = body.split_evenly((panels.len().max(1), 1));
        for (p, cell) in panels.iter().zip(&cells) {
            bar_panel(cell, p, groups, x_desc, label_w, floor_zero)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

fn bar_panel(area: &Area, p: &BarPanel, groups: &[BarGroup], x_desc: &str, label_w: u32, floor_zero: bool) -> Result<(), ReportError> {
    let n = groups.len().max(1);
    let (x0, x1) = padded_range(p.values.iter().flatten().flat_map(|(m, sd)| [m - sd, m + sd]), floor_zero);
    // Room on the right for the value labels (about 60 px of ~700).
    let x1 = x1 + (x1 - x0) * 0.09;
    let mut builder = ChartBuilder::on(area);
    builder.margin(8).margin_right(20).x_label_area_size(36).y_label_area_size(label_w);
    if !p.title.is_empty() {
        builder.caption(&p.title, (FONT, 15));
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, -0.5f64..(n as f64 - 0.5)).map_err(err)?;
    let names: Vec<String> = groups.iter().map(|g| g.label.clone()).collect();
    let xd = decimals(x1 - x0);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .max_light_lines(2)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
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
        .x_label_formatter(&|x| format!("{x:.xd$}"))
        .draw()
        .map_err(err)?;
    // Values one decimal finer than the ticks, so that neighbours differ.
    let vd = if x1 - x0 > 20.0 { 0 } else { (decimals(x1 - x0) + 1).max(3) };
    let font = (FONT, 12).into_font().color(&BLACK).pos(Pos::new(HPos::Left, VPos::Center));
    for (g, (group, v)) in groups.iter().zip(&p.values).enumerate() {
        let Some((m, sd)) = *v else { continue };
        let y = (n - 1 - g) as f64;
        chart.draw_series([Rectangle::new([(x0, y - 0.34), (m, y + 0.34)], group.color.filled())]).map_err(err)?;
        if sd > 0.0 {
            let (a, b) = ((m - sd).max(x0), m + sd);
            let whisker = vec![PathElement::new(vec![(a, y), (b, y)], BLACK.stroke_width(1))];
            chart.draw_series(whisker).map_err(err)?;
            let caps = [a, b].map(|x| EmptyElement::at((x, y)) + PathElement::new(vec![(0, -4), (0, 4)], BLACK.stroke_width(1)));
            chart.draw_series(caps).map_err(err)?;
        }
        let at = EmptyElement::at((m + sd.max(0.0), y)) + Text::new(format!("{m:.vd$}"), (5, 0), font.clone());
        chart.draw_series([at]).map_err(err)?;
    }
    Ok(())
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
        let root = Svg::with_string(&mut svg, (width.max(420), height)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 16))
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
                texts.push(Text::new(format!("{v:.2}"), (x - 0.3, y + 0.15), (FONT, 11).into_font().color(&fg)));
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

/// The mean gate weights of a run on test as a heatmap (gates x experts),
/// if it has gates.
pub fn gate_heatmap(gates: &[GateRow], title: &str) -> Result<Option<String>, ReportError> {
    let gates: Vec<&GateRow> = gates.iter().filter(|g| g.split == "test").collect();
    if gates.is_empty() {
        return Ok(None);
    }
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for g in &gates {
        if !rows.contains(&g.gate) {
            rows.push(g.gate.clone());
        }
        if !cols.contains(&g.label) {
            cols.push(g.label.clone());
        }
    }
    let mut values = vec![vec![f64::NAN; cols.len()]; rows.len()];
    for g in &gates {
        let r = rows.iter().position(|x| x == &g.gate).unwrap_or(0);
        let c = cols.iter().position(|x| x == &g.label).unwrap_or(0);
        values[r][c] = g.weight;
    }
    Ok(Some(heatmap(title, &rows, &cols, &values)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text elements of an SVG: (x, y, text).
    fn texts(svg: &str) -> Vec<(f64, f64, String)> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        let num = |n: roxmltree::Node, a: &str| n.attribute(a).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| (num(n, "x"), num(n, "y"), n.text().unwrap_or("").trim().to_string()))
            .collect()
    }

    /// The points of the polylines drawn in `color` with more than two
    /// points: the data lines of a series, not its legend sample.
    fn line_points(svg: &str, color: RGBColor) -> Vec<(f64, f64)> {
        let hex = format!("#{:02X}{:02X}{:02X}", color.0, color.1, color.2);
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        doc.descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke") == Some(hex.as_str()))
            .map(|n| {
                n.attribute("points")
                    .unwrap_or("")
                    .split_whitespace()
                    .filter_map(|p| {
                        let (x, y) = p.split_once(',')?;
                        Some((x.parse().ok()?, y.parse().ok()?))
                    })
                    .collect::<Vec<(f64, f64)>>()
            })
            .filter(|points| points.len() > 2)
            .flatten()
            .collect()
    }

    #[test]
    fn per_task_panels_have_their_own_axis_range() {
        // Two tasks far apart (0.947 and 0.994): on one shared axis the
        // lower task's differences would be slivers.
        let groups: Vec<BarGroup> = (0..3).map(|i| BarGroup { label: format!("config-{i}"), color: style(i).color }).collect();
        let panels = [
            BarPanel { title: "read_comment".into(), values: vec![Some((0.9465, 0.0004)), Some((0.9470, 0.0)), Some((0.9478, 0.0003))] },
            BarPanel { title: "like".into(), values: vec![Some((0.9935, 0.0002)), Some((0.9941, 0.0005)), None] },
        ];
        let svg = hbars("t", "test ROC-AUC", &groups, &panels, false).unwrap();
        let t = texts(&svg);
        let top = |name: &str| t.iter().find(|x| x.2 == name).unwrap_or_else(|| panic!("no caption {name}")).1;
        let (a, b) = (top("read_comment"), top("like"));
        assert!(a < b, "panels stack in task order");
        // Every number drawn in a panel (ticks and bar labels) lies in that
        // task's range: its values with the margins, not the other task's.
        let numbers = |lo: f64, hi: f64| -> Vec<f64> {
            t.iter().filter(|x| x.1 > lo && x.1 < hi).filter_map(|x| x.2.parse::<f64>().ok()).collect()
        };
        let first = numbers(a, b);
        let second = numbers(b, f64::INFINITY);
        assert!(first.len() >= 5 && second.len() >= 4, "{first:?} / {second:?}");
        assert!(first.iter().all(|v| (0.9455..=0.9490).contains(v)), "read_comment axis: {first:?}");
        assert!(second.iter().all(|v| (0.9925..=0.9955).contains(v)), "like axis: {second:?}");
        // The bars are labelled with their means, one decimal finer than the ticks.
        for want in ["0.94650", "0.94700", "0.94780", "0.99350", "0.99410"] {
            assert!(t.iter().any(|x| x.2 == want), "no label {want} in {:?}", t.iter().map(|x| &x.2).collect::<Vec<_>>());
        }
    }

    fn series(name: &str, i: usize, offset: f64) -> Series {
        Series { name: name.into(), style: style(i), points: (0..6).map(|e| (e as f64, offset + 0.01 * e as f64)).collect() }
    }

    #[test]
    fn legends_sit_beside_or_below_the_data() {
        // Short names: a column to the right of every data point.
        let short: Vec<Series> = (0..4).map(|i| series(&format!("cfg-{i}"), i, 0.6 + 0.02 * i as f64)).collect();
        let svg = lines("t", "epoch", "auc", &short).unwrap();
        let t = texts(&svg);
        let right = short.iter().flat_map(|s| line_points(&svg, s.style.color)).map(|p| p.0).fold(0.0, f64::max);
        assert!(right > 500.0, "data lines found: {right}");
        for s in &short {
            let (x, _, _) = t.iter().find(|x| x.2 == s.name).unwrap_or_else(|| panic!("no legend entry {}", s.name));
            assert!(*x > right, "legend entry {} at x {x} over data reaching x {right}", s.name);
        }
        // Long names: rows below every data point.
        let long: Vec<Series> = (0..3).map(|i| series(&format!("shared-bottom-gradnorm-lr=0.001-dropout=0.1-v{i}"), i, 0.6)).collect();
        let svg = lines("t", "epoch", "auc", &long).unwrap();
        let t = texts(&svg);
        let bottom = long.iter().flat_map(|s| line_points(&svg, s.style.color)).map(|p| p.1).fold(0.0, f64::max);
        for s in &long {
            let (_, y, _) = t.iter().find(|x| x.2 == s.name).unwrap_or_else(|| panic!("no legend entry {}", s.name));
            assert!(*y > bottom + 20.0, "legend entry {} at y {y} over data reaching y {bottom}", s.name);
        }
    }

    #[test]
    fn styles_stay_distinct_beyond_the_palette() {
        let all: Vec<Style> = (0..48).map(style).collect();
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j], "items {i} and {j}");
            }
        }
        assert_eq!(style(0), Style { color: PALETTE[0], dash: Dash::Solid, marker: Marker::Circle });
        assert_eq!(style(13), Style { color: PALETTE[1], dash: Dash::Dashed, marker: Marker::Triangle });
        // The twelve colours are well apart: no two within 60 in RGB distance.
        for (i, a) in PALETTE.iter().enumerate() {
            for b in &PALETTE[i + 1..] {
                let d = ((a.0 as f64 - b.0 as f64).powi(2) + (a.1 as f64 - b.1 as f64).powi(2) + (a.2 as f64 - b.2 as f64).powi(2)).sqrt();
                assert!(d > 60.0, "{a:?} and {b:?} are {d:.0} apart");
            }
        }
    }

    #[test]
    fn shared_y_axes_span_every_panel() {
        let panels = [
            LinePanel { title: "a".into(), series: vec![series("x", 0, 0.1)] },
            LinePanel { title: "b".into(), series: vec![series("y", 1, 0.8)] },
        ];
        let numbers = |y: YAxes| -> Vec<f64> {
            let svg = line_panels("t", "step", "rate", &panels, y).unwrap();
            texts(&svg).into_iter().filter(|t| t.0 < 480.0).filter_map(|t| t.2.parse::<f64>().ok()).filter(|v| v.fract() != 0.0).collect()
        };
        // Panel "a" (left) covers 0.1-0.15 on its own, 0.1-0.85 when shared.
        let own = numbers(YAxes::PerPanel);
        assert!(own.iter().all(|v| *v < 0.2), "{own:?}");
        let shared = numbers(YAxes::Shared);
        assert!(shared.iter().any(|v| *v > 0.7), "{shared:?}");
    }

    #[test]
    fn decimals_follow_the_span() {
        assert_eq!(decimals(0.008), 3);
        assert_eq!(decimals(0.1), 2);
        assert_eq!(decimals(30000.0), 0);
        assert_eq!(padded_range([0.5, 1.5].into_iter(), false), (0.42, 1.58));
        assert_eq!(padded_range([5.0, 15.0].into_iter(), true), (0.0, 15.8));
    }
}
