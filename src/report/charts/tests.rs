//! The charts read back from their SVG: per-task panels keep their own
//! axis ranges, legends stay off the data, styles stay distinct.

use plotters::prelude::*;

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
