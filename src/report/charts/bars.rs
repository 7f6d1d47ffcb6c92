//! Horizontal bars with error bars, in panels stacked vertically, each
//! with its own value axis.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{decimals, err, padded_range, Area, BarGroup, BarPanel, Svg, FONT, WIDTH};
use crate::report::ReportError;

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
