//! Heatmaps, the gates of mixture-of-experts runs among them.

use plotters::prelude::*;

use super::{err, Svg, FONT};
use crate::report::ReportError;
use crate::store::GateRow;

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
