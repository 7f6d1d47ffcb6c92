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

mod bars;
mod heatmap;
mod legend;
mod lines;
#[cfg(test)]
mod tests;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::ReportError;

pub use bars::hbars;
pub use heatmap::{gate_heatmap, heatmap};
pub use lines::{line_panels, lines};

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

pub(super) fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

pub(super) type Svg<'a> = SVGBackend<'a>;
pub(super) type Area<'a> = DrawingArea<Svg<'a>, Shift>;

pub(super) const WIDTH: u32 = 960;
pub(super) const FONT: &str = "sans-serif";

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
pub(super) fn decimals(span: f64) -> usize {
    if span > 0.0 && span.is_finite() {
        (-(span / 5.0).log10()).ceil().clamp(0.0, 6.0) as usize
    } else {
        3
    }
}
