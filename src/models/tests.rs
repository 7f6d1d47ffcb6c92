//! Unit tests of the models on a small hand-made schema: the input layer's
//! pooling, shapes, gates, the loss and gradient contracts every strategy
//! relies on, and the funnel models' formulas checked by hand.

use std::collections::BTreeMap;

use tch::{nn, Device, Kind, Tensor};

use super::backbone::BackboneKind;
use super::ctnocvr::{ctnocvr_label, CtnocvrForm};
use super::funnel::FunnelConfig;
use super::*;
use crate::data::batch::epoch_order;
use crate::data::{Batch, CategoricalField, FeatureSchema, MultiBatch, MultiField, Ragged, SplitData, SplitTensors};

const B: i64 = 16;

fn schema() -> FeatureSchema {
    FeatureSchema {
        categorical: vec![
            CategoricalField { name: "userid".into(), vocab_size: 20, emb_dim: 4 },
            CategoricalField { name: "itemid".into(), vocab_size: 30, emb_dim: 5 },
        ],
        multi: vec![
            MultiField { name: "tags".into(), vocab_size: 10, emb_dim: 3, max_len: 3, shares_table_with: None },
            MultiField {
                name: "history".into(),
                vocab_size: 30,
                emb_dim: 5,
                max_len: 4,
                shares_table_with: Some("itemid".into()),
            },
        ],
        dense: vec!["d0".into(), "d1".into()],
        tasks: vec!["click".into(), "buy".into(), "like".into()],
        numeric: vec![],
    }
}

/// A batch with ids >= 1, some padded multi-valued slots, and funnel-consistent
/// labels: buy only where click (rows alternate so every class is present).
fn batch(rows: i64, seed: i64) -> Batch {
    tch::manual_seed(seed);
    let opts = (Kind::Int64, Device::Cpu);
    let users = Tensor::randint_low(1, 20, [rows], opts);
    let items = Tensor::randint_low(1, 30, [rows], opts);
    let mask = |l: i64| Tensor::rand([rows, l], (Kind::Float, Device::Cpu)).gt(0.3).to_kind(Kind::Float);
    let (tm, hm) = (mask(3), mask(4));
    let tags = Tensor::randint_low(1, 10, [rows, 3], opts) * tm.to_kind(Kind::Int64);
    let hist = Tensor::randint_low(1, 30, [rows, 4], opts) * hm.to_kind(Kind::Int64);
    let r = Tensor::arange(rows, opts);
    let click = r.remainder(2).eq(0).to_kind(Kind::Float);
    let buy = &click * r.remainder(4).eq(0).to_kind(Kind::Float);
    let like = r.remainder(3).eq(0).to_kind(Kind::Float);
    Batch {
        categorical: Tensor::stack(&[&users, &items], 1),
        multi: vec![MultiBatch::from_padded(&tags, &tm), MultiBatch::from_padded(&hist, &hm)],
        dense: Tensor::randn([rows, 2], (Kind::Float, Device::Cpu)),
        labels: Tensor::stack(&[click, buy, like], 1),
        users,
        numeric: vec![],
    }
}

/// The ids of the first `k` rows of `m`.
fn first_rows(m: &MultiBatch, k: i64) -> MultiBatch {
    let n = m.rows.lt(k).sum(Kind::Int64).int64_value(&[]);
    MultiBatch { ids: m.ids.narrow(0, 0, n), rows: m.rows.narrow(0, 0, n), counts: m.counts.narrow(0, 0, k) }
}

fn small_cfg() -> ModelsConfig {
    let mut c = ModelsConfig::default();
    c.tower.hidden = vec![8];
    c.shared_bottom.bottom = vec![8];
    c.mmoe.experts = 3;
    c.mmoe.expert_hidden = vec![8];
    c.ple.task_experts = 2;
    c.ple.shared_experts = 2;
    c.ple.expert_hidden = vec![8];
    c.funnel = Some(FunnelConfig { click: "click".into(), conversion: "buy".into() });
    c
}

fn build_with(kind: ModelKind, cfg: &ModelsConfig) -> (nn::VarStore, Box<dyn MultiTaskModel>) {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = build(kind, &vs, &schema(), cfg).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    (vs, m)
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs().max().double_value(&[])
}

fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).contiguous().view([-1])).unwrap()
}

/// Every model and funnel variant the tests cover.
fn variants() -> Vec<(String, ModelKind, ModelsConfig)> {
    let mut out = vec![];
    for k in [ModelKind::SharedBottom, ModelKind::Mmoe, ModelKind::Ple, ModelKind::Esmm, ModelKind::Ctnocvr] {
        out.push((k.name().to_string(), k, small_cfg()));
    }
    let mut c = small_cfg();
    c.ple.levels = 1;
    out.push(("ple-1-level".into(), ModelKind::Ple, c));
    let mut c = small_cfg();
    c.ple.levels = 3;
    out.push(("ple-3-levels".into(), ModelKind::Ple, c));
    for b in [BackboneKind::Embeddings, BackboneKind::SharedBottom, BackboneKind::Cgc] {
        let mut c = small_cfg();
        c.ctnocvr.backbone = b;
        out.push((format!("ctnocvr-{b:?}"), ModelKind::Ctnocvr, c));
    }
    let mut c = small_cfg();
    c.ctnocvr.form = CtnocvrForm::OwnTower;
    out.push(("ctnocvr-own-tower".into(), ModelKind::Ctnocvr, c));
    let mut c = small_cfg();
    c.esmm.backbone = BackboneKind::Mmoe;
    out.push(("esmm-mmoe".into(), ModelKind::Esmm, c));
    out
}

#[test]
fn input_layer_mean_pools_tags_and_history_through_the_item_table() {
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let layer = InputLayer::new(&(vs.root() / "shared" / "input"), &schema(), &InputConfig::default()).unwrap();
    // dense 2 + userid 4 + itemid 5 + tags 3 + history (itemid's table) 5.
    assert_eq!(layer.out_dim(), 19);
    let vars = vs.variables();
    assert!(!vars.keys().any(|k| k.contains("history")), "history must not get its own table: {:?}", vars.keys());
    let b = batch(6, 9);
    let x = layer.forward(&b);
    assert_eq!(x.size(), [6, 19]);
    let tags_w = &layer.field_weight("tags").expect("tags rows");
    let item_w = &layer.field_weight("itemid").expect("itemid rows");
    let ids = |m: &MultiBatch, r: i64| {
        let (ids, rows) = (Vec::<i64>::try_from(&m.ids).unwrap(), Vec::<i64>::try_from(&m.rows).unwrap());
        ids.iter().zip(&rows).filter(|(_, &row)| row == r).map(|(&i, _)| i).collect::<Vec<i64>>()
    };
    for r in 0..6 {
        // Mean of the present ids' rows, by hand; zeros when none is present.
        let pool = |w: &Tensor, present: Vec<i64>, d: i64| {
            if present.is_empty() {
                Tensor::zeros([d], (Kind::Float, Device::Cpu))
            } else {
                w.index_select(0, &Tensor::from_slice(&present)).mean_dim([0i64].as_slice(), false, Kind::Float)
            }
        };
        let tags = pool(tags_w, ids(&b.multi[0], r), 3);
        let hist = pool(item_w, ids(&b.multi[1], r), 5);
        assert!(max_abs(&(x.get(r).narrow(0, 11, 3) - tags)) < 1e-6, "row {r}: tags");
        assert!(max_abs(&(x.get(r).narrow(0, 14, 5) - hist)) < 1e-6, "row {r}: history");
        assert!(max_abs(&(x.get(r).narrow(0, 0, 2) - b.dense.get(r))) < 1e-7, "row {r}: dense first");
    }
}

#[test]
fn ragged_pooling_equals_the_masked_mean_of_the_padded_layout() {
    tch::manual_seed(8);
    let vs = nn::VarStore::new(Device::Cpu);
    let s = schema();
    let layer = InputLayer::new(&(vs.root() / "shared" / "input"), &s, &InputConfig::default()).unwrap();
    let (rows, opts) = (200i64, (Kind::Int64, Device::Cpu));
    let mask = |l: i64| Tensor::rand([rows, l], (Kind::Float, Device::Cpu)).gt(0.4).to_kind(Kind::Float);
    let (tm, hm) = (mask(3), mask(4));
    let tags = Tensor::randint_low(1, 10, [rows, 3], opts) * tm.to_kind(Kind::Int64);
    let hist = Tensor::randint_low(1, 30, [rows, 4], opts) * hm.to_kind(Kind::Int64);
    // The padded path: the masked mean over the padded slots.
    let masked_mean = |w: &Tensor, ids: &Tensor, m: &Tensor| {
        let emb = w.index_select(0, &ids.view([-1])).view([rows, ids.size()[1], -1]);
        let sum = (emb * m.unsqueeze(-1)).sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
        sum / m.sum_dim_intlist([1i64].as_slice(), true, Kind::Float).clamp_min(1.0)
    };
    let want_tags = masked_mean(&layer.field_weight("tags").unwrap(), &tags, &tm);
    let want_hist = masked_mean(&layer.field_weight("itemid").unwrap(), &hist, &hm);
    let check = |b: &Batch, order: &Tensor, label: &str| {
        let x = layer.forward(b);
        assert!(max_abs(&(x.narrow(1, 11, 3) - want_tags.index_select(0, order))) < 1e-6, "{label}: tags");
        assert!(max_abs(&(x.narrow(1, 14, 5) - want_hist.index_select(0, order))) < 1e-6, "{label}: history");
    };
    // Straight from the padded tensors.
    let mut b = batch(rows, 12);
    b.multi = vec![MultiBatch::from_padded(&tags, &tm), MultiBatch::from_padded(&hist, &hm)];
    check(&b, &Tensor::arange(rows, opts), "padded tensors");
    // Through a split's ragged lists, shuffled.
    let n = rows as usize;
    let ragged = |ids: &Tensor, m: &Tensor, l| {
        let (ids, m) = (Vec::<i64>::try_from(&ids.view([-1])).unwrap(), Vec::<f32>::try_from(&m.view([-1])).unwrap());
        Ragged::from_padded(&ids, &m, l).unwrap()
    };
    let split = SplitData {
        rows: n,
        categorical: vec![1; n * 2],
        dense: vec![0.0; n * 2],
        labels: vec![0.0; n * 3],
        users: vec![1; n],
        multi: vec![ragged(&tags, &tm, 3), ragged(&hist, &hm, 4)],
        ..Default::default()
    };
    split.check(&s).unwrap();
    let t = SplitTensors::new(&split, &s, Device::Cpu);
    let order = Tensor::from_slice(&epoch_order(n, 3, 0));
    check(&t.select(&order), &order, "split tensors");
}

#[test]
fn input_layer_dims_come_from_the_schema_and_bad_overrides_are_named() {
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = InputConfig { emb_dims: BTreeMap::from([("itemid".to_string(), 7)]), ..Default::default() };
    // The shared history follows the item table's width.
    let layer = InputLayer::new(&vs.root(), &schema(), &cfg).unwrap();
    assert_eq!(layer.out_dim(), 2 + 4 + 7 + 3 + 7);
    for (field, dim, want) in
        [("history", 3, "pooled through the `itemid` table"), ("nope", 3, "no such field"), ("tags", 0, "positive")]
    {
        let cfg = InputConfig { emb_dims: BTreeMap::from([(field.to_string(), dim)]), ..Default::default() };
        let err = InputLayer::new(&nn::VarStore::new(Device::Cpu).root(), &schema(), &cfg).unwrap_err().to_string();
        assert!(err.contains(&format!("models.input.emb_dims.{field}")) && err.contains(want), "{err}");
    }
}

#[test]
fn shapes_gates_and_loss_names_of_every_model() {
    let b = batch(B, 2);
    for (label, kind, cfg) in variants() {
        let (_vs, m) = build_with(kind, &cfg);
        let out = m.forward_t(&b, true);
        assert_eq!(out.probs.size(), [B, 3], "{label}: probs");
        let names = m.loss_names();
        assert_eq!(out.heads.len(), names.len(), "{label}: heads");
        assert!(out.heads.iter().all(|h| h.size() == [B]), "{label}: head shapes");
        assert_eq!(m.loss_terms(&out, &b).len(), names.len(), "{label}: terms");
        assert!(out.probs.min().double_value(&[]) > 0.0 && out.probs.max().double_value(&[]) < 1.0, "{label}");
        for (n, e) in &out.extra {
            assert_eq!(e.size(), [B], "{label}: extra {n}");
        }
        let mixture = matches!(kind, ModelKind::Mmoe | ModelKind::Ple)
            || (kind == ModelKind::Ctnocvr
                && !matches!(cfg.ctnocvr.backbone, BackboneKind::Embeddings | BackboneKind::SharedBottom))
            || (kind == ModelKind::Esmm && cfg.esmm.backbone == BackboneKind::Mmoe);
        assert_eq!(!out.gates.is_empty(), mixture, "{label}: gates exposed iff mixture of experts");
        for g in &out.gates {
            assert_eq!(g.weights.size(), [B, g.labels.len() as i64], "{label}: gate {}", g.name);
            let sums = g.weights.sum_dim_intlist([1i64].as_slice(), false, Kind::Float);
            assert!(max_abs(&(sums - 1.0)) < 1e-5, "{label}: gate {} rows must sum to 1", g.name);
        }
        let groups = m.param_groups();
        assert!(!groups.shared.is_empty() && !groups.task_specific.is_empty() && !groups.last_shared.is_empty(), "{label}");
        // The last shared layer is a part of the shared set (all of it when the towers sit on the embeddings).
        let on_embeddings = (kind == ModelKind::Esmm && cfg.esmm.backbone == BackboneKind::Embeddings)
            || (kind == ModelKind::Ctnocvr && cfg.ctnocvr.backbone == BackboneKind::Embeddings);
        assert_eq!(groups.last_shared.len() == groups.shared.len(), on_embeddings, "{label}: last shared layer");
    }
    // Gate layout: MMOE one per task; PLE per level one per task plus a shared gate except at the last.
    let (_vs, m) = build_with(ModelKind::Mmoe, &small_cfg());
    let names: Vec<String> = m.forward_t(&b, false).gates.iter().map(|g| g.name.clone()).collect();
    assert_eq!(names, ["mmoe/click", "mmoe/buy", "mmoe/like"]);
    let (_vs, m) = build_with(ModelKind::Ple, &small_cfg());
    assert_eq!(m.forward_t(&b, false).gates.len(), 4 + 3);
    let (_vs, m) = build_with(ModelKind::Esmm, &small_cfg());
    assert_eq!(m.loss_names(), ["ctr", "ctcvr", "like"]);
    let (_vs, m) = build_with(ModelKind::Ctnocvr, &small_cfg());
    assert_eq!(m.loss_names(), ["ctr", "cvr", "ctnocvr", "like"]);
}

/// The heads (`task.{key}`) each loss term may reach, per variant.
fn reach(label: &str, kind: ModelKind, names: &[String]) -> Vec<Vec<&'static str>> {
    let own_tower = label.contains("own-tower");
    names
        .iter()
        .map(|n| match (kind, n.as_str()) {
            (ModelKind::Esmm, "ctr") => vec!["0"],
            (ModelKind::Esmm, "ctcvr") => vec!["0", "1"],
            (ModelKind::Ctnocvr, "ctr") => vec!["0"],
            (ModelKind::Ctnocvr, "cvr") => vec!["1"],
            (ModelKind::Ctnocvr, "ctnocvr") if own_tower => vec!["ctnocvr"],
            (ModelKind::Ctnocvr, "ctnocvr") => vec!["0", "1"],
            (_, "click") => vec!["0"],
            (_, "buy") => vec!["1"],
            (_, "like") => vec!["2"],
            (k, other) => panic!("{k:?}: unexpected loss term {other}"),
        })
        .collect()
}

#[test]
fn every_parameter_trains_and_task_parts_only_see_their_own_losses() {
    let b = batch(B, 3);
    for (label, kind, cfg) in variants() {
        let (vs, m) = build_with(kind, &cfg);
        let vars: Vec<(String, Tensor)> = {
            let mut v: Vec<(String, Tensor)> = vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        };
        let params: Vec<Tensor> = vars.iter().map(|(_, t)| t.shallow_clone()).collect();
        let out = m.forward_t(&b, true);
        let losses = m.loss_terms(&out, &b);
        let names = m.loss_names();
        let expected = reach(&label, kind, &names);
        let mut total: Vec<f64> = vec![0.0; vars.len()];
        for (t, loss) in losses.iter().enumerate() {
            let grads = Tensor::run_backward(&[loss], &params, true, false);
            for (i, ((name, _), g)) in vars.iter().zip(&grads).enumerate() {
                let norm = if g.defined() { g.norm().double_value(&[]) } else { 0.0 };
                total[i] += norm;
                if name.starts_with("shared.") {
                    assert!(norm > 0.0, "{label}: shared {name} gets no gradient from `{}`", names[t]);
                } else {
                    let head = name.strip_prefix("task.").and_then(|r| r.split('.').next()).unwrap_or_else(|| panic!("{name}"));
                    let reached = expected[t].contains(&head);
                    assert_eq!(norm > 0.0, reached, "{label}: {name} gradient {norm} from loss `{}`", names[t]);
                }
            }
        }
        for ((name, _), n) in vars.iter().zip(&total) {
            assert!(*n > 0.0, "{label}: {name} never receives a gradient");
        }
        // The groups split the same set by the same names.
        let g = m.param_groups();
        let n_shared = vars.iter().filter(|(n, _)| n.starts_with("shared.")).count();
        assert_eq!((g.shared.len(), g.task_specific.len()), (n_shared, vars.len() - n_shared), "{label}");
    }
}

#[test]
fn eval_mode_is_deterministic_and_train_mode_uses_dropout() {
    let b = batch(B, 4);
    for (label, kind, cfg) in variants() {
        let (_vs, m) = build_with(kind, &cfg);
        let e1 = m.forward_t(&b, false);
        let e2 = m.forward_t(&b, false);
        assert_eq!(max_abs(&(&e1.probs - &e2.probs)), 0.0, "{label}: eval mode must be deterministic");
        for ((_, x), (_, y)) in e1.extra.iter().zip(&e2.extra) {
            assert_eq!(max_abs(&(x - y)), 0.0, "{label}");
        }
        // Batch norm uses running statistics in eval mode: a row's prediction
        // does not depend on the other rows of its batch.
        let part = Batch {
            categorical: b.categorical.narrow(0, 0, 4),
            multi: b.multi.iter().map(|m| first_rows(m, 4)).collect(),
            dense: b.dense.narrow(0, 0, 4),
            labels: b.labels.narrow(0, 0, 4),
            users: b.users.narrow(0, 0, 4),
            numeric: b.numeric.iter().map(|t| t.narrow(0, 0, 4)).collect(),
        };
        let e3 = m.forward_t(&part, false);
        assert!(max_abs(&(e1.probs.narrow(0, 0, 4) - &e3.probs)) < 1e-6, "{label}: eval rows depend on their batch");
        let t1 = m.forward_t(&b, true);
        let t2 = m.forward_t(&b, true);
        assert!(max_abs(&(&t1.probs - &t2.probs)) > 0.0, "{label}: dropout should make training passes differ");
        // Without dropout, training passes are repeatable but use batch statistics.
        let mut no_drop = cfg.clone();
        no_drop.tower.dropout = 0.0;
        let (_vs, m) = build_with(kind, &no_drop);
        let (t1, t2) = (m.forward_t(&b, true), m.forward_t(&b, true));
        assert_eq!(max_abs(&(&t1.probs - &t2.probs)), 0.0, "{label}: only dropout is random");
        let t3 = m.forward_t(&part, true);
        assert!(max_abs(&(t1.probs.narrow(0, 0, 4) - &t3.probs)) > 1e-6, "{label}: training uses batch statistics");
    }
}

#[test]
fn esmm_ctcvr_is_the_product_and_its_loss_matches_a_hand_computation() {
    let b = batch(4, 6);
    let (_vs, m) = build_with(ModelKind::Esmm, &small_cfg());
    let out = m.forward_t(&b, false);
    let pctr = out.probs.select(1, 0);
    let pcvr = &out.extra.iter().find(|(n, _)| n == "pcvr").expect("pcvr column").1;
    let pctcvr = out.probs.select(1, 1);
    assert!(max_abs(&(&pctcvr - &pctr * pcvr)) < 1e-6);
    // Hand computation from the model's own probabilities, in f64.
    let (p1, p2, p3) = (f64s(&pctr), f64s(pcvr), f64s(&out.probs.select(1, 2)));
    let lab = |t: i64| f64s(&b.labels.select(1, t));
    let (y, z, w) = (lab(0), lab(1), lab(2));
    let bce = |l: f64, p: f64| -(l * p.ln() + (1.0 - l) * (1.0 - p).ln());
    let mean = |f: &dyn Fn(usize) -> f64| (0..4).map(f).sum::<f64>() / 4.0;
    let want = [mean(&|i| bce(y[i], p1[i])), mean(&|i| bce(y[i] * z[i], p1[i] * p2[i])), mean(&|i| bce(w[i], p3[i]))];
    let got: Vec<f64> = m.loss_terms(&out, &b).iter().map(|l| l.double_value(&[])).collect();
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
    // And on chosen probabilities: pCTR = (.5, .75, .25, .8), pCTCVR = (.25, .15, .15, .2),
    // y = (1, 1, 0, 1), y z = (1, 0, 0, 1).
    let logit = |p: f64| (p / (1.0 - p)).ln() as f32;
    let col = |ps: [f64; 4]| Tensor::from_slice(&ps.map(logit));
    let hand = ModelOutput {
        probs: Tensor::zeros([4, 3], (Kind::Float, Device::Cpu)),
        heads: vec![col([0.5, 0.75, 0.25, 0.8]), col([0.25, 0.15, 0.15, 0.2]), col([0.5; 4])],
        extra: vec![],
        gates: vec![],
        representation: None,
    };
    let labels = Tensor::from_slice(&[1f32, 1., 0., 1., 1., 0., 0., 1., 0., 1., 1., 0.]).view([3, 4]).transpose(0, 1);
    let hb = Batch { labels, ..batch(4, 6) };
    let got: Vec<f64> = m.loss_terms(&hand, &hb).iter().map(|l| l.double_value(&[])).collect();
    let ctr = -(0.5f64.ln() + 0.75f64.ln() + 0.75f64.ln() + 0.8f64.ln()) / 4.0;
    let ctcvr = -(0.25f64.ln() + 0.85f64.ln() + 0.85f64.ln() + 0.2f64.ln()) / 4.0;
    assert!((got[0] - ctr).abs() < 1e-6 && (got[1] - ctcvr).abs() < 1e-6, "{got:?} vs {ctr}, {ctcvr}");
    assert!((got[2] - 2f64.ln()).abs() < 1e-6);
}

#[test]
fn ctnocvr_label_product_form_fusion_and_weighted_terms() {
    let y = Tensor::from_slice(&[1f32, 1., 0., 0.]);
    let z = Tensor::from_slice(&[1f32, 0., 0., 1.]);
    assert_eq!(Vec::<f32>::try_from(&ctnocvr_label(&y, &z)).unwrap(), [0.0, 1.0, 0.0, 0.0]);
    let b = batch(8, 7);
    let mut cfg = small_cfg();
    cfg.ctnocvr.l1 = 0.5;
    cfg.ctnocvr.l2 = 2.0;
    cfg.ctnocvr.fusion_weight = 0.04;
    let (_vs, m) = build_with(ModelKind::Ctnocvr, &cfg);
    let out = m.forward_t(&b, false);
    let col = |n: &str| out.extra.iter().find(|(k, _)| k == n).unwrap_or_else(|| panic!("no {n}")).1.shallow_clone();
    let (pctr, pcvr, pno, fusion) = (out.probs.select(1, 0), col("pcvr"), col("pctnocvr"), col("fusion"));
    assert!(max_abs(&(&pno - &pctr * (1.0 - &pcvr))) < 1e-6, "product form");
    assert!(max_abs(&(out.probs.select(1, 1) - &pctr * &pcvr)) < 1e-6, "conversion column is pCTCVR");
    assert!(max_abs(&(&fusion - (&pcvr + (1.0 - &pno) * 0.04) / 1.04)) < 1e-6, "fusion score");
    // Terms by hand in f64: CTR all rows; l1 x CVR on clicked rows; l2 x CTnoCVR all rows.
    let (p1, p2, p3) = (f64s(&pctr), f64s(&pcvr), f64s(&pno));
    let (yv, zv) = (f64s(&b.labels.select(1, 0)), f64s(&b.labels.select(1, 1)));
    let bce = |l: f64, p: f64| -(l * p.ln() + (1.0 - l) * (1.0 - p).ln());
    let ctr = (0..8).map(|i| bce(yv[i], p1[i])).sum::<f64>() / 8.0;
    let clicked: Vec<usize> = (0..8).filter(|&i| yv[i] > 0.5).collect();
    let cvr = clicked.iter().map(|&i| bce(zv[i], p2[i])).sum::<f64>() / clicked.len() as f64;
    let no = (0..8).map(|i| bce(yv[i] * (1.0 - zv[i]), p3[i])).sum::<f64>() / 8.0;
    let got: Vec<f64> = m.loss_terms(&out, &b).iter().map(|l| l.double_value(&[])).collect();
    let want = [ctr, 0.5 * cvr, 2.0 * no];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-5, "{got:?} vs {want:?}");
    }
    // The own-tower variant has its own head and does not tie pCTnoCVR to pCTR, pCVR.
    let mut own = small_cfg();
    own.ctnocvr.form = CtnocvrForm::OwnTower;
    let (vs, m) = build_with(ModelKind::Ctnocvr, &own);
    assert!(vs.variables().keys().any(|k| k.starts_with("task.ctnocvr.tower.")));
    let out = m.forward_t(&b, false);
    let pno = &out.extra.iter().find(|(k, _)| k == "pctnocvr").unwrap().1;
    let pcvr = &out.extra.iter().find(|(k, _)| k == "pcvr").unwrap().1;
    assert!(max_abs(&(pno - out.probs.select(1, 0) * (1.0 - pcvr))) > 1e-4);
}

#[test]
fn bad_settings_are_named() {
    let check = |kind: ModelKind, edit: &dyn Fn(&mut ModelsConfig), want: &str| {
        let mut c = small_cfg();
        edit(&mut c);
        let vs = nn::VarStore::new(Device::Cpu);
        match build(kind, &vs, &schema(), &c) {
            Ok(_) => panic!("{kind:?}: expected an error naming {want}"),
            Err(e) => assert!(e.to_string().contains(want), "{kind:?}: `{e}` does not name {want}"),
        }
    };
    check(ModelKind::Esmm, &|c| c.funnel = None, "models.funnel");
    check(
        ModelKind::Ctnocvr,
        &|c| c.funnel = Some(FunnelConfig { click: "click".into(), conversion: "cart".into() }),
        "models.funnel.conversion",
    );
    check(ModelKind::Ple, &|c| c.ple.levels = 0, "models.ple.levels");
    check(ModelKind::Ple, &|c| c.ple.shared_experts = 0, "models.ple.shared_experts");
    check(ModelKind::Mmoe, &|c| c.mmoe.experts = 0, "models.mmoe.experts");
    check(ModelKind::Mmoe, &|c| c.mmoe.expert_hidden = vec![], "models.mmoe.expert_hidden");
    check(ModelKind::SharedBottom, &|c| c.shared_bottom.bottom = vec![0], "models.shared-bottom.bottom");
    check(ModelKind::SharedBottom, &|c| c.tower.dropout = 1.0, "models.tower.dropout");
    check(ModelKind::Mmoe, &|c| c.tower.batch_norm_momentum = 0.0, "models.tower.batch_norm_momentum");
    check(ModelKind::Mmoe, &|c| c.tower.batch_norm_eps = -1e-3, "models.tower.batch_norm_eps");
    check(ModelKind::Ctnocvr, &|c| c.ctnocvr.l1 = -1.0, "models.ctnocvr.l1");
    // A grid file spells the same settings; unknown keys are refused.
    let toml_ok = "[funnel]\nclick = \"click\"\nconversion = \"buy\"\n[ple]\nlevels = 1\n[ctnocvr]\nbackbone = \"cgc\"\nform = \"own-tower\"\n";
    let parsed: ModelsConfig = toml::from_str(toml_ok).unwrap();
    assert_eq!((parsed.ple.levels, parsed.ple.task_experts, parsed.ctnocvr.backbone), (1, 5, BackboneKind::Cgc));
    assert!(toml::from_str::<ModelsConfig>("[mmoe]\nexpert = 3\n").is_err());
}

#[test]
fn canonical_config_covers_what_a_model_reads() {
    let cfg = small_cfg();
    let sb = cfg.canonical(ModelKind::SharedBottom).unwrap();
    assert_eq!(sb["bottom"], serde_json::json!([8]));
    assert_eq!(sb["tower"]["hidden"], serde_json::json!([8]));
    assert!(sb.get("input").is_some() && sb.get("funnel").is_some() && sb.get("mmoe").is_none());
    let mut c = cfg.clone();
    c.ctnocvr.backbone = BackboneKind::Cgc;
    let ct = c.canonical(ModelKind::Ctnocvr).unwrap();
    assert_eq!(ct["ple"]["task_experts"], serde_json::json!(2));
    assert_eq!(ct["backbone"], serde_json::json!("cgc"));
    // A change in a section the model does not read leaves it alone.
    let mut d = cfg.clone();
    d.mmoe.experts = 9;
    assert_eq!(d.canonical(ModelKind::Ple).unwrap(), cfg.canonical(ModelKind::Ple).unwrap());
    assert_ne!(d.canonical(ModelKind::Mmoe).unwrap(), cfg.canonical(ModelKind::Mmoe).unwrap());
}

#[test]
fn registry_names_and_papers() {
    assert_eq!(ModelKind::names(), ["shared-bottom", "mmoe", "ple", "esmm", "ctnocvr"]);
    for &k in ModelKind::ALL {
        let parsed: ModelKind = serde_json::from_value(serde_json::json!(k.name())).unwrap();
        assert_eq!(parsed, k);
        assert!(k.paper().1.starts_with("https://"), "{k:?}");
    }
}
