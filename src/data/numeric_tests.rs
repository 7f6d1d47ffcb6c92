//! Tests of the numeric encodings: edges against numpy's quantiles, bins and
//! the piecewise-linear encoding worked out by hand from the paper's
//! definition, train-only fitting, refused settings.

use super::*;

fn field(encoding: Encoding, edges: &[f64]) -> NumericField {
    NumericField { name: "x".into(), emb_dim: 3, encoding, edges: edges.to_vec(), mean: 2.0, sd: 4.0 }
}

fn ple_row(f: &NumericField, x: f32) -> Vec<f32> {
    let (id, v) = f.encode(x);
    let mut out = vec![0.0; f.width()];
    piecewise_linear_row(id, v, &mut out);
    out
}

#[test]
fn edges_are_numpys_linear_quantiles_with_duplicates_merged() {
    // np.quantile(range(1, 10), [0, .25, .5, .75, 1]) = [1, 3, 5, 7, 9]
    let one_to_nine: Vec<f64> = (1..=9).map(f64::from).collect();
    assert_eq!(quantile_edges(&one_to_nine, 4), vec![1.0, 3.0, 5.0, 7.0, 9.0]);
    // np.quantile([0, 10], [0, .25, .5, .75, 1]) = [0, 2.5, 5, 7.5, 10]
    assert_eq!(quantile_edges(&[0.0, 10.0], 4), vec![0.0, 2.5, 5.0, 7.5, 10.0]);
    // np.quantile([0, 0, 0, 0, 1], ...) = [0, 0, 0, 0, 1]: merged to [0, 1].
    assert_eq!(quantile_edges(&[0.0, 0.0, 0.0, 0.0, 1.0], 4), vec![0.0, 1.0]);
    // np.quantile([1, 2, 4, 8], [0, 1/3, 2/3, 1]) = [1, 2, 4, 8]
    assert_eq!(quantile_edges(&[1.0, 2.0, 4.0, 8.0], 3), vec![1.0, 2.0, 4.0, 8.0]);
    assert!(quantile_edges(&[], 4).is_empty());
}

#[test]
fn bins_and_piecewise_linear_by_hand_at_between_and_beyond_edges() {
    // Edges 0, 1, 3, 6: bins [0, 1), [1, 3), [3, 6]; first and last open-ended.
    let q = field(Encoding::Quantile { bins: 3 }, &[0.0, 1.0, 3.0, 6.0]);
    let p = field(Encoding::PiecewiseLinear { bins: 3, activation: Activation::None }, &[0.0, 1.0, 3.0, 6.0]);
    assert_eq!((q.bins(), q.width(), p.width()), (3, 1, 4));
    // (x, bin id, PLE components e1 e2 e3 + missing flag). The paper: e_t = 1
    // if x >= b_t (t < T), 0 if x < b_{t-1} (t > 1), else (x - b_{t-1}) / (b_t - b_{t-1}).
    let cases: [(f32, i64, [f32; 4]); 7] = [
        (-2.0, 1, [-2.0, 0.0, 0.0, 0.0]),    // below the first edge: e1 = (-2 - 0) / 1
        (0.0, 1, [0.0, 0.0, 0.0, 0.0]),      // at the first edge
        (2.0, 2, [1.0, 0.5, 0.0, 0.0]),      // between: (2 - 1) / (3 - 1)
        (3.0, 3, [1.0, 1.0, 0.0, 0.0]),      // at an inner edge: the upper bin
        (6.0, 3, [1.0, 1.0, 1.0, 0.0]),      // at the last edge: e3 = (6 - 3) / 3
        (12.0, 3, [1.0, 1.0, 3.0, 0.0]),     // beyond: e3 = (12 - 3) / 3
        (f32::NAN, 0, [0.0, 0.0, 0.0, 1.0]), // missing: its own bin
    ];
    for (x, id, ple) in cases {
        assert_eq!(q.encode(x).0, id, "quantile bin of {x}");
        assert_eq!(ple_row(&p, x), ple.to_vec(), "PLE of {x}");
    }
}

#[test]
fn degenerate_columns_and_periodic_inputs() {
    // A constant train column: one bin for every present value, no PLE component.
    let c = field(Encoding::PiecewiseLinear { bins: 8, activation: Activation::Relu }, &[5.0]);
    assert_eq!((c.bins(), c.width(), c.encode(7.0).0), (1, 1, 1));
    assert_eq!((ple_row(&c, 7.0), ple_row(&c, f32::NAN)), (vec![0.0], vec![1.0]));
    // Periodic: the standardized value (mean 2, sd 4), missing flag.
    let per = field(Encoding::Periodic { sigma: 0.1, frequencies: 4, activation: Activation::None }, &[]);
    assert_eq!((per.encode(10.0), per.encode(f32::NAN)), ((1, 2.0), (0, 0.0)));
    let split = SplitData { rows: 2, numeric_ids: vec![1, 0], numeric_values: vec![2.0, 0.0], ..Default::default() };
    match block(&per, 0, &split, 1) {
        Block::Values(v) => assert_eq!(v, vec![2.0, 0.0, 0.0, 1.0]),
        Block::Ids(_) => panic!("periodic is a value block"),
    }
}

fn three_splits(train: &[f32], other: &[f32]) -> (FeatureSchema, [SplitData; 3]) {
    // Two dense columns: `a` encoded, `b` left as is (value 9 everywhere).
    let split = |v: &[f32]| SplitData {
        rows: v.len(),
        dense: v.iter().flat_map(|&x| [x, 9.0]).collect(),
        users: vec![0; v.len()],
        ..Default::default()
    };
    let schema = FeatureSchema { categorical: vec![], multi: vec![], dense: vec!["a".into(), "b".into()], tasks: vec![], numeric: vec![] };
    (schema, [split(train), split(other), split(other)])
}

fn applied(train: &[f32], other: &[f32], req: Request) -> (FeatureSchema, [SplitData; 3]) {
    let (mut schema, [mut t, mut v, mut te]) = three_splits(train, other);
    apply(&mut schema, [&mut t, &mut v, &mut te], &[Some(req), None]);
    (schema, [t, v, te])
}

#[test]
fn edges_come_from_the_train_split_only() {
    let train: Vec<f32> = (0..100).map(|i| i as f32).collect();
    let req = Request { encoding: Encoding::Quantile { bins: 4 }, emb_dim: 3, keep_dense: false };
    let (s1, d1) = applied(&train, &[5.0, 50.0, f32::NAN], req);
    // Every validation and test value changed, far outside the train range.
    let (s2, d2) = applied(&train, &[-1e6, 1e6, 3e5], req);
    assert_eq!(s1.numeric, s2.numeric);
    assert_eq!(s1.numeric[0].edges, vec![0.0, 24.75, 49.5, 74.25, 99.0]);
    assert_eq!(d1[0], d2[0], "the train split's encoding does not move");
    // The encoded column left the dense block; `b` stayed.
    assert_eq!(s1.dense, vec!["b".to_string()]);
    assert_eq!(d1[1].dense, vec![9.0, 9.0, 9.0]);
    assert_eq!(d1[1].numeric_ids, vec![1, 3, 0], "5 -> bin 1, 50 -> bin 3, missing -> 0");
    assert_eq!(d2[1].numeric_ids, vec![1, 4, 4], "beyond the edges: the open first and last bins");
    assert_eq!(d1[0].check(&s1), Ok(()));
    // Same input, same edges, same digest; other edges, another digest.
    assert_eq!(digest_with("d".into(), &s1.numeric), digest_with("d".into(), &s2.numeric));
    let (s3, _) = applied(&train[..50], &[1.0], req);
    assert_ne!(digest_with("d".into(), &s1.numeric), digest_with("d".into(), &s3.numeric));
    assert_eq!(digest_with("d".into(), &[]), "d", "no encodings: the digest is unchanged");
}

#[test]
fn keep_dense_keeps_the_standardized_scalar_in_place() {
    let req = Request { encoding: Encoding::PiecewiseLinear { bins: 2, activation: Activation::None }, emb_dim: 2, keep_dense: true };
    // Train 0, 2, 4: mean 2, population sd sqrt(8/3); edges 0, 2, 4.
    let (s, d) = applied(&[0.0, 2.0, 4.0], &[f32::NAN], req);
    assert_eq!(s.dense, vec!["a".to_string(), "b".to_string()]);
    let z = (2.0 / (8.0f64 / 3.0).sqrt()) as f32;
    assert_eq!(d[0].dense, vec![-z, 9.0, 0.0, 9.0, z, 9.0]);
    assert_eq!(d[1].dense, vec![0.0, 9.0], "missing -> the mean");
    assert_eq!((d[0].numeric_ids.clone(), d[0].numeric_values.clone()), (vec![1, 2, 2], vec![0.0, 0.0, 1.0]));
}

#[test]
fn refused_settings_name_the_setting() {
    let s = |bins, sigma, activation| Settings { bins, sigma, activation, ..Default::default() };
    let key = |r: Result<Encoding, SettingError>| r.map_err(|(k, m)| format!("{k}: {m}")).unwrap_err();
    assert!(key(resolve(EncodingKind::Quantile, &s(Some(1), None, None))).starts_with("bins: needs at least 2 bins, got 1"));
    assert!(key(resolve(EncodingKind::Periodic, &s(Some(8), None, None))).starts_with("bins: `transform = \"periodic\"` does not use"));
    assert!(key(resolve(EncodingKind::Periodic, &s(None, Some(0.0), None))).starts_with("sigma: must be a positive number"));
    assert!(key(resolve(EncodingKind::Periodic, &s(None, Some(-1.0), None))).starts_with("sigma:"));
    assert!(key(resolve(EncodingKind::Quantile, &s(None, Some(1.0), None))).starts_with("sigma:"));
    assert!(key(resolve(EncodingKind::Quantile, &s(None, None, Some(Activation::Relu)))).starts_with("activation:"));
    assert_eq!(
        resolve(EncodingKind::PiecewiseLinear, &s(None, None, None)),
        Ok(Encoding::PiecewiseLinear { bins: 32, activation: Activation::None })
    );
    let (k, m) = refuse_on_scalar("log1p", &s(Some(8), None, None)).unwrap_err();
    assert!(k == "bins" && m.contains("log1p"), "{k}: {m}");
    let keep = Settings { keep_dense: true, ..Default::default() };
    assert_eq!(refuse_on_scalar("standardize", &keep).unwrap_err().0, "keep_dense");
    assert_eq!(refuse_on_scalar("none", &Settings::default()), Ok(()));
}
