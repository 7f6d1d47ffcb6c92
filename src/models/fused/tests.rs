//! The fused pass against the model's own autograd forward and backward:
//! the same losses, the same gradient of every variable and the same batch
//! norm running statistics on a fixed seed, with dropout, batch norm, two
//! tower layers, fields of two widths (two tables, columns out of table
//! order), multi-valued fields (one pooled through a categorical field's
//! rows, one with rows of its own; rows without ids), a mix small and not,
//! and uneven loss weights; which models it covers; and bad ids.

use std::collections::BTreeMap;

use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::data::{Batch, CategoricalField, FeatureSchema, MultiBatch, MultiField, NumericField};
use crate::models::{self, ModelKind, ModelsConfig, MultiTaskModel};

const ROWS: i64 = 64;
const MAX_LEN: i64 = 4;

/// Widths 3, 2, 3, 2: two fused tables whose columns interleave; with
/// `pooled`, a history pooled through `a`'s rows and tags of width 2
/// (rows in the table of width 2 after `b` and `d`).
fn schema(pooled: bool) -> FeatureSchema {
    let multi = [("hist", 7, 3, Some("a")), ("tags", 6, 2, None)]
        .iter()
        .map(|&(n, v, d, shares)| MultiField {
            name: n.into(),
            vocab_size: v,
            emb_dim: d,
            max_len: MAX_LEN as usize,
            shares_table_with: shares.map(String::from),
        })
        .collect();
    FeatureSchema {
        categorical: [("a", 7, 3), ("b", 5, 2), ("c", 11, 3), ("d", 4, 2)]
            .iter()
            .map(|&(n, v, d)| CategoricalField { name: n.into(), vocab_size: v, emb_dim: d })
            .collect(),
        multi: if pooled { multi } else { vec![] },
        dense: vec!["x0".into(), "x1".into()],
        tasks: vec!["t0".into(), "t1".into(), "t2".into()],
        numeric: vec![],
    }
}

fn batch(schema: &FeatureSchema, seed: i64) -> Batch {
    tch::manual_seed(seed);
    let opts = (Kind::Int64, Device::Cpu);
    let cols: Vec<Tensor> = schema.categorical.iter().map(|f| Tensor::randint_low(0, f.vocab_size, [ROWS], opts)).collect();
    let multi = schema
        .multi
        .iter()
        .map(|f| {
            let ids = Tensor::randint_low(0, f.vocab_size, [ROWS, MAX_LEN], opts);
            // About one row in five without ids.
            let mask = Tensor::rand([ROWS, MAX_LEN], (Kind::Float, Device::Cpu)).lt(0.6).to_kind(Kind::Float);
            MultiBatch::from_padded(&ids, &mask)
        })
        .collect();
    Batch {
        categorical: Tensor::stack(&cols, 1),
        multi,
        dense: Tensor::randn([ROWS, 2], (Kind::Float, Device::Cpu)),
        labels: Tensor::rand([ROWS, 3], (Kind::Float, Device::Cpu)).lt(0.4).to_kind(Kind::Float),
        users: Tensor::zeros([ROWS], opts),
        numeric: vec![],
    }
}

fn config(dropout: f64, batch_norm: bool) -> ModelsConfig {
    let mut cfg = ModelsConfig::default();
    cfg.mmoe.experts = 4;
    cfg.mmoe.expert_hidden = vec![6];
    cfg.tower.hidden = vec![5, 3];
    cfg.tower.dropout = dropout;
    cfg.tower.batch_norm = batch_norm;
    cfg
}

fn model(cfg: &ModelsConfig, schema: &FeatureSchema, seed: i64) -> (nn::VarStore, Box<dyn MultiTaskModel>) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = models::build(ModelKind::Mmoe, &vs, schema, cfg).expect("model");
    (vs, m)
}

fn grads(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(k, t)| (k, t.grad().copy())).collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

/// Losses, gradients and running statistics of one training step through
/// autograd and through the fused pass, from the same weights and seed.
#[test]
fn the_fused_pass_computes_the_autograd_losses_gradients_and_statistics() {
    for (dropout, batch_norm, pooled, expert) in
        [(0.2, true, false, 6), (0.0, true, false, 6), (0.3, false, false, 6), (0.2, true, true, 6), (0.1, false, true, 40)]
    {
        let mut cfg = config(dropout, batch_norm);
        cfg.mmoe.expert_hidden = vec![expert];
        let case = format!("dropout {dropout}, batch norm {batch_norm}, pooled fields {pooled}, experts of {expert}");
        // Experts of 40: a mix of 3 x 4 x 40, which the model computes with bmm.
        assert_eq!(crate::models::experts::is_small_mix(3, 4, expert), expert == 6, "{case}");
        one_step_along_both_paths(&cfg, &schema(pooled), &case);
    }
}

fn one_step_along_both_paths(cfg: &ModelsConfig, schema: &FeatureSchema, case: &str) {
    let weights = [1.0, 0.5, 2.0];
    let b = batch(schema, 3);
    let (vs_a, a) = model(cfg, schema, 11);
    let (vs_f, f) = model(cfg, schema, 11);
    let fused = f.fused().expect("this MMOE has a fused pass");

    tch::manual_seed(99);
    let out = a.forward_t(&b, true);
    let terms = a.loss_terms(&out, &b);
    let want: Vec<f64> = terms.iter().map(|t| t.double_value(&[])).collect();
    terms.iter().zip(weights).map(|(t, w)| t * w).sum::<Tensor>().backward();

    tch::manual_seed(99);
    let pass = fused.forward(&b).expect("forward");
    let got = pass.losses().to_vec();
    pass.backward(&weights).expect("backward");

    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-5, "{case}: loss {g} vs {w}");
    }
    let (ga, gf) = (grads(&vs_a), grads(&vs_f));
    assert_eq!(ga.keys().collect::<Vec<_>>(), gf.keys().collect::<Vec<_>>());
    for (name, g) in &ga {
        let scale = g.abs().max().double_value(&[]).max(1e-3);
        let d = max_diff(g, &gf[name]);
        assert!(d < 1e-5 * scale.max(1.0), "{case}: gradient of {name} differs by {d} (largest {scale})");
        assert!(g.abs().sum(Kind::Float).double_value(&[]) > 0.0 || name.contains("bn"), "{case}: {name} has a zero gradient");
    }
    // Running statistics are buffers, not trainable: compare them by name.
    let stats = |vs: &nn::VarStore| -> BTreeMap<String, Tensor> {
        vs.variables().into_iter().filter(|(k, _)| k.contains("running")).collect()
    };
    let (sa, sf) = (stats(&vs_a), stats(&vs_f));
    assert_eq!(sa.len(), if cfg.tower.batch_norm { 12 } else { 0 }, "{case}");
    for (name, s) in &sa {
        assert!(max_diff(s, &sf[name]) < 1e-6, "{case}: {name}");
    }
}

/// The fused pass twice in a row (the second on defined gradients that it
/// must replace, not add to) gives the autograd gradients of the second batch.
#[test]
fn a_second_pass_replaces_the_gradients_of_the_first() {
    let cfg = config(0.0, true);
    let schema = schema(true);
    let (vs_a, a) = model(&cfg, &schema, 5);
    let (vs_f, f) = model(&cfg, &schema, 5);
    let fused = f.fused().expect("fused");
    fused.forward(&batch(&schema, 1)).expect("forward").backward(&[1.0; 3]).expect("backward");
    let b = batch(&schema, 2);
    // The first batch moved the fused model's running statistics; move the other's too.
    let _ = tch::no_grad(|| a.forward_t(&batch(&schema, 1), true));
    let out = a.forward_t(&b, true);
    a.loss_terms(&out, &b).into_iter().sum::<Tensor>().backward();
    fused.forward(&b).expect("forward").backward(&[1.0; 3]).expect("backward");
    let (ga, gf) = (grads(&vs_a), grads(&vs_f));
    for (name, g) in &ga {
        assert!(max_diff(g, &gf[name]) < 1e-5, "{name}");
    }
}

#[test]
fn only_the_models_it_computes_have_a_fused_pass() {
    let with = |kind: ModelKind, cfg: &ModelsConfig, schema: &FeatureSchema| {
        let vs = nn::VarStore::new(Device::Cpu);
        models::build(kind, &vs, schema, cfg).expect("model").fused().is_some()
    };
    let has = |kind: ModelKind, cfg: &ModelsConfig| with(kind, cfg, &schema(true));
    let small = config(0.1, true);
    assert!(has(ModelKind::Mmoe, &small) && with(ModelKind::Mmoe, &small, &schema(false)));
    assert!(!has(ModelKind::Ple, &small) && !has(ModelKind::SharedBottom, &small));
    let mut two_layers = small.clone();
    two_layers.mmoe.expert_hidden = vec![6, 4];
    assert!(!has(ModelKind::Mmoe, &two_layers), "experts of two layers");
    let mut wide = small.clone();
    wide.mmoe.expert_hidden = vec![512];
    assert!(has(ModelKind::Mmoe, &wide), "a mix of 3 x 4 x 512");
    let mut encoded = schema(true);
    let edges = vec![-1.0, 0.0, 1.0];
    let encoding = crate::data::numeric::Encoding::Quantile { bins: 4 };
    encoded.numeric = vec![NumericField { name: "n".into(), emb_dim: 2, encoding, edges, mean: 0.0, sd: 1.0 }];
    assert!(!with(ModelKind::Mmoe, &small, &encoded), "an encoded numeric column");
    let mut libtorch_masks = small.clone();
    libtorch_masks.tower.dropout_masks = DropoutMasks::Libtorch;
    assert!(!has(ModelKind::Mmoe, &libtorch_masks), "libtorch's dropout masks");
    libtorch_masks.tower.dropout = 0.0;
    assert!(has(ModelKind::Mmoe, &libtorch_masks), "no dropout: no masks to draw");
}

#[test]
fn an_id_outside_its_vocabulary_is_refused_by_name() {
    let schema = schema(true);
    let (_vs, m) = model(&config(0.0, false), &schema, 1);
    let b = batch(&schema, 1);
    let _ = b.categorical.get(5).get(2).fill_(11);
    let e = m.fused().expect("fused").forward(&b).err().expect("refused").to_string();
    assert!(e.contains("row 5") && e.contains("`c`") && e.contains("id 11") && e.contains("of 11"), "{e}");
    // A pooled id outside the vocabulary of the rows it is pooled through (`a`'s 7).
    let b = batch(&schema, 1);
    let at = b.multi[0].rows.size()[0] - 1;
    let row = b.multi[0].rows.int64_value(&[at]);
    let _ = b.multi[0].ids.get(at).fill_(7);
    let e = m.fused().expect("fused").forward(&b).err().expect("refused").to_string();
    assert!(e.contains(&format!("row {row}:")) && e.contains("`hist`") && e.contains("id 7") && e.contains("of 7"), "{e}");
}
