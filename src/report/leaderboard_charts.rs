//! Charts of the leaderboard page (plotters SVG, like `charts`; one
//! function per chart): the Pareto panel of a model and a pair of tasks.

use plotters::prelude::*;

use super::charts::{style, PALETTE};
use super::ReportError;
use crate::verdict::{ParetoPanel, ParetoPoint};

fn err<E: std::fmt::Display>(e: E) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// The axis range of the points and their ± std, padded.
fn range(points: &[&ParetoPoint], coord: impl Fn(&ParetoPoint) -> (f64, f64)) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for p in points {
        let (m, sd) = coord(p);
        if m.is_finite() && sd.is_finite() {
            lo = lo.min(m - sd);
            hi = hi.max(m + sd);
        }
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = 0.08 * (hi - lo).max(2e-3);
    (lo - pad, hi + pad)
}

/// Task x vs task y test AUC: the static-weight configurations (grey, the
/// front as a line), the other arms as labelled points; crosses are ± one
/// seed standard deviation.
pub fn pareto(panel: &ParetoPanel, title: &str) -> Result<String, ReportError> {
    let all: Vec<&ParetoPoint> = panel.static_points.iter().chain(&panel.arms).collect();
    let (x0, x1) = range(&all, |p| (p.x.mean, p.x.std));
    let (y0, y1) = range(&all, |p| (p.y.mean, p.y.std));
    let grey = PALETTE[7];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .max_light_lines(2)
            .x_desc(format!("test ROC-AUC, {}", panel.x_task))
            .y_desc(format!("test ROC-AUC, {}", panel.y_task))
            .x_label_formatter(&|x| format!("{x:.3}"))
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(err)?;
        let crosses = |p: &ParetoPoint, c: RGBColor| {
            vec![
                PathElement::new(vec![(p.x.mean - p.x.std, p.y.mean), (p.x.mean + p.x.std, p.y.mean)], c.stroke_width(1)),
                PathElement::new(vec![(p.x.mean, p.y.mean - p.y.std), (p.x.mean, p.y.mean + p.y.std)], c.stroke_width(1)),
            ]
        };
        if !panel.static_points.is_empty() {
            let front: Vec<(f64, f64)> = panel.front.iter().map(|&i| (panel.static_points[i].x.mean, panel.static_points[i].y.mean)).collect();
            chart
                .draw_series(LineSeries::new(front, grey.stroke_width(2)))
                .map_err(err)?
                .label("static weights: front")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], grey.stroke_width(2)));
            chart.draw_series(panel.static_points.iter().flat_map(|p| crosses(p, grey))).map_err(err)?;
            chart.draw_series(panel.static_points.iter().map(|p| Circle::new((p.x.mean, p.y.mean), 3, grey.filled()))).map_err(err)?;
        }
        for (i, p) in panel.arms.iter().enumerate() {
            let c = style(i).color;
            chart.draw_series(crosses(p, c)).map_err(err)?;
            chart
                .draw_series([Circle::new((p.x.mean, p.y.mean), 5, c.filled())])
                .map_err(err)?
                .label(p.label.clone())
                .legend(move |(x, y)| Circle::new((x + 7, y), 5, c.filled()));
            chart
                .draw_series([Text::new(p.label.clone(), (p.x.mean, p.y.mean), ("sans-serif", 12).into_font().color(&BLACK))])
                .map_err(err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}
