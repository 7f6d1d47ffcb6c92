//! Line charts: one panel, or panels side by side with their own or a
//! shared y axis, and one legend for all.

use plotters::prelude::*;

use super::legend::{draw_legend, legend_entries, legend_place, with_legend, LegendPlace, LEGEND_ROW};
use super::{decimals, err, padded_range, Area, Dash, LinePanel, Marker, Series, Svg, YAxes, FONT, WIDTH};
use crate::report::ReportError;

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
