//! Legends beside or below the plots, never over the data: where they go
//! (by the length of the names), their entries (one per series name) and
//! their drawing (a line sample with the series' pattern and marker).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{err, Area, Dash, LinePanel, Marker, Style, FONT, WIDTH};
use crate::report::ReportError;

/// Where the legend of a chart goes: a column beside the plots (short
/// names) or rows below them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum LegendPlace {
    None,
    Right { width: u32 },
    Below { columns: usize, height: u32 },
}

pub(super) const LEGEND_ROW: u32 = 18;
const LEGEND_CHARS: usize = 56;

fn legend_label(name: &str) -> String {
    if name.chars().count() > LEGEND_CHARS {
        format!("{}…", name.chars().take(LEGEND_CHARS - 1).collect::<String>())
    } else {
        name.to_string()
    }
}

pub(super) fn legend_place(entries: &[(String, Style)]) -> LegendPlace {
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
pub(super) fn draw_legend(area: &Area, entries: &[(String, Style)], columns: usize) -> Result<(), ReportError> {
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
pub(super) fn with_legend<'a>(area: &Area<'a>, place: LegendPlace) -> (Area<'a>, Option<(Area<'a>, usize)>) {
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
pub(super) fn legend_entries(panels: &[LinePanel]) -> Vec<(String, Style)> {
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
