//! The fused pass against the model's own autograd forward and backward:
//! the same losses, the same gradient of every variable and the same batch
//! norm running statistics on a fixed seed, with dropout, batch norm, two
//! tower layers, fields of two widths (two tables, columns out of table
//! order) and uneven loss weights; which models it covers; and a bad id.

use std::collections::BTreeMap;

use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::data::{Batch, CategoricalField, FeatureSchema};
use crate::models::{self, ModelKind, ModelsConfig, MultiTaskModel};

const ROWS: i64 = 64;

/// Widths 3, 2, 3, 2: two fused tables whose columns interleave.
fn schema() -> FeatureSchema {
    FeatureSchema {
        categorical: [("a", 7, 3), ("b", 5, 2), ("c", 11, 3), ("d", 4, 2)]
            .iter()
            .map(|&(n, v, d)| CategoricalField { name: n.into(), vocab_size: v, emb_dim: d })
            .collect(),
        multi: vec![],
        dense: vec!["x0".into(), "x1".into()],
        tasks: vec!["t0".into(), "t1".into(), "t2".into()],
        numeric: vec![],
    }
}

fn batch(schema: &FeatureSchema, seed: i64) -> Batch {
    tch::manual_seed(seed);
    let opts = (Kind::Int64, Device::Cpu);
    let cols: Vec<Tensor> = schema.categorical.iter().map(|f| Tensor::randint_low(0, f.vocab_size, [ROWS], opts)).collect();
    Batch {
        categorical: Tensor::stack(&cols, 1),
        multi: vec![],
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

fn model(cfg: &ModelsConfig, seed: i64) -> (nn::VarStore, Box<dyn MultiTaskModel>) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = models::build(ModelKind::Mmoe, &vs, &schema(), cfg).expect("model");
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
    let weights = [1.0, 0.5, 2.0];
    for (dropout, batch_norm) in [(0.2, true), (0.0, true), (0.3, false)] {
        let cfg = config(dropout, batch_norm);
        let b = batch(&schema(), 3);
        let (vs_a, a) = model(&cfg, 11);
        let (vs_f, f) = model(&cfg, 11);
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

        let case = format!("dropout {dropout}, batch norm {batch_norm}");
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
        assert_eq!(sa.len(), if batch_norm { 12 } else { 0 }, "{case}");
        for (name, s) in &sa {
            assert!(max_diff(s, &sf[name]) < 1e-6, "{case}: {name}");
        }
    }
}

/// The fused pass twice in a row (the second on defined gradients that it
/// must replace, not add to) gives the autograd gradients of the second batch.
#[test]
fn a_second_pass_replaces_the_gradients_of_the_first() {
    let cfg = config(0.0, true);
    let (vs_a, a) = model(&cfg, 5);
    let (vs_f, f) = model(&cfg, 5);
    let fused = f.fused().expect("fused");
    fused.forward(&batch(&schema(), 1)).expect("forward").backward(&[1.0; 3]).expect("backward");
    let b = batch(&schema(), 2);
    // The first batch moved the fused model's running statistics; move the other's too.
    let _ = tch::no_grad(|| a.forward_t(&batch(&schema(), 1), true));
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
    let has = |kind: ModelKind, cfg: &ModelsConfig| {
        let vs = nn::VarStore::new(Device::Cpu);
        models::build(kind, &vs, &schema(), cfg).expect("model").fused().is_some()
    };
    let small = config(0.1, true);
    assert!(has(ModelKind::Mmoe, &small));
    assert!(!has(ModelKind::Ple, &small) && !has(ModelKind::SharedBottom, &small));
    let mut two_layers = small.clone();
    two_layers.mmoe.expert_hidden = vec![6, 4];
    assert!(!has(ModelKind::Mmoe, &two_layers), "experts of two layers");
    let mut wide = small.clone();
    wide.mmoe.expert_hidden = vec![512];
    assert!(!has(ModelKind::Mmoe, &wide), "a mix that is not small");
    let mut libtorch_masks = small.clone();
    libtorch_masks.tower.dropout_masks = DropoutMasks::Libtorch;
    assert!(!has(ModelKind::Mmoe, &libtorch_masks), "libtorch's dropout masks");
    libtorch_masks.tower.dropout = 0.0;
    assert!(has(ModelKind::Mmoe, &libtorch_masks), "no dropout: no masks to draw");
}

#[test]
fn an_id_outside_its_vocabulary_is_refused_by_name() {
    let (_vs, m) = model(&config(0.0, false), 1);
    let b = batch(&schema(), 1);
    let _ = b.categorical.get(5).get(2).fill_(11);
    let e = m.fused().expect("fused").forward(&b).err().expect("refused").to_string();
    assert!(e.contains("row 5") && e.contains("`c`") && e.contains("id 11") && e.contains("11"), "{e}");
}
