//! The fused layout against the per-field layout: the same initial rows,
//! the same embeddings, the same gradients, on a table and on whole models.

use std::collections::BTreeMap;

use tch::{nn, Device, Kind, Tensor};

use super::*;
use crate::data::{Batch, CategoricalField, FeatureSchema, MultiBatch, MultiField};
use crate::models::{self, input, ModelKind, ModelsConfig};

fn field(name: &str, vocab: i64, dim: i64) -> TableField {
    TableField { name: name.into(), vocab, dim }
}

/// Widths 4, 2, 4, 3 (categorical) and a multi-valued field of width 2:
/// the width-4 fields are not adjacent, so the fused output needs its permutation.
fn fields() -> Vec<TableField> {
    vec![field("a", 5, 4), field("b", 3, 2), field("c", 7, 4), field("d", 4, 3), field("tags", 6, 2)]
}

fn build(layout: TableLayout) -> (nn::VarStore, EmbeddingTables) {
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let t = EmbeddingTables::new(&(vs.root() / "in"), fields(), 4, layout);
    (vs, t)
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn fused_tables_hold_the_per_field_rows_and_give_the_same_embeddings() {
    let (fvs, fused) = build(TableLayout::Fused);
    let (pvs, per) = build(TableLayout::PerField);
    // Two tables of width 4 and 2 plus one of width 3, against five.
    let mut names: Vec<String> = fvs.variables().into_keys().collect();
    names.sort();
    assert_eq!(names, ["in.tables.d2.weight", "in.tables.d3.weight", "in.tables.d4.weight"]);
    assert_eq!(pvs.variables().len(), 5);
    assert_eq!(fvs.variables()["in.tables.d4.weight"].size(), [12, 4], "a's 5 rows then c's 7");
    for f in fields() {
        let (a, b) = (fused.field_weight(&f.name).unwrap(), per.field_weight(&f.name).unwrap());
        assert_eq!(a.size(), [f.vocab, f.dim]);
        assert!(a.equal(&b), "{}: the same draw", f.name);
    }
    // The generator is left where the per-field layout leaves it.
    tch::manual_seed(11);
    let _ = EmbeddingTables::new(&nn::VarStore::new(Device::Cpu).root(), fields(), 4, TableLayout::Fused);
    let after_fused = Tensor::randn([3], (Kind::Float, Device::Cpu));
    tch::manual_seed(11);
    let _ = EmbeddingTables::new(&nn::VarStore::new(Device::Cpu).root(), fields(), 4, TableLayout::PerField);
    assert!(after_fused.equal(&Tensor::randn([3], (Kind::Float, Device::Cpu))));

    let ids = Tensor::from_slice(&[1i64, 2, 6, 3, 0, 0, 0, 0, 4, 1, 5, 2]).view([3, 4]);
    let (xf, xp) = (Tensor::cat(&fused.categorical(&ids), 1), Tensor::cat(&per.categorical(&ids), 1));
    assert_eq!(xf.size(), [3, 4 + 2 + 4 + 3]);
    assert!(xf.equal(&xp), "fused {xf} vs per field {xp}");
    // Row 0 by hand: a[1], b[2], c[6], d[3].
    let want = Tensor::cat(
        &[
            per.field_weight("a").unwrap().get(1),
            per.field_weight("b").unwrap().get(2),
            per.field_weight("c").unwrap().get(6),
            per.field_weight("d").unwrap().get(3),
        ],
        0,
    );
    assert!(xf.get(0).equal(&want));
    let tags = Tensor::from_slice(&[5i64, 0, 3, 1]).view([2, 2]);
    assert!(fused.lookup(4, &tags).equal(&per.lookup(4, &tags)));
}

#[test]
fn fused_gradients_are_the_per_field_gradients_stacked() {
    let (fvs, fused) = build(TableLayout::Fused);
    let (pvs, per) = build(TableLayout::PerField);
    let ids = Tensor::from_slice(&[1i64, 2, 6, 3, 1, 0, 6, 2, 4, 1, 5, 2]).view([3, 4]);
    let tags = Tensor::from_slice(&[5i64, 0, 5, 1, 2, 2]).view([3, 2]);
    tch::manual_seed(3);
    let w = Tensor::randn([3, 13], (Kind::Float, Device::Cpu));
    let wt = Tensor::randn([3, 2, 2], (Kind::Float, Device::Cpu));
    for t in [&fused, &per] {
        let loss = (Tensor::cat(&t.categorical(&ids), 1) * &w).sum(Kind::Float) + (t.lookup(4, &tags) * &wt).sum(Kind::Float);
        loss.backward();
    }
    let fvars = fvs.variables();
    let pvars = pvs.variables();
    for r in fused_rows("in.", &fields()) {
        let g = fvars[&r.table_var].grad().narrow(0, r.offset, r.rows);
        let want = pvars[&r.field_var].grad();
        assert!(max_diff(&g, &want) < 1e-6, "{}", r.field_var);
    }
    // Field a's row 1 is used twice (rows 0 and 1): the sum of both rows' weights.
    let ga = pvars["in.emb.a.weight"].grad().get(1);
    assert!(max_diff(&ga, &(w.get(0).narrow(0, 0, 4) + w.get(1).narrow(0, 0, 4))) < 1e-6);
}

/// Widths 4, 4, 2, 4 and a multi-valued field pooled through field 1.
fn schema() -> FeatureSchema {
    let cat = |name: &str, vocab, emb_dim| CategoricalField { name: name.into(), vocab_size: vocab, emb_dim };
    FeatureSchema {
        categorical: vec![cat("u", 9, 4), cat("i", 12, 4), cat("dev", 3, 2), cat("a", 6, 4)],
        multi: vec![
            MultiField { name: "tags".into(), vocab_size: 5, emb_dim: 2, max_len: 3, shares_table_with: None },
            MultiField { name: "hist".into(), vocab_size: 12, emb_dim: 4, max_len: 4, shares_table_with: Some("i".into()) },
        ],
        dense: vec!["x".into(), "y".into()],
        tasks: vec!["t0".into(), "t1".into()],
        numeric: vec![],
    }
}

fn batch(rows: i64) -> Batch {
    tch::manual_seed(21);
    let opts = (Kind::Int64, Device::Cpu);
    let col = |hi| Tensor::randint_low(0, hi, [rows], opts);
    let mask = |l: i64| Tensor::rand([rows, l], (Kind::Float, Device::Cpu)).gt(0.3).to_kind(Kind::Float);
    let (tm, hm) = (mask(3), mask(4));
    let r = Tensor::arange(rows, opts);
    Batch {
        categorical: Tensor::stack(&[col(9), col(12), col(3), col(6)], 1),
        multi: vec![
            MultiBatch::from_padded(&(Tensor::randint_low(1, 5, [rows, 3], opts) * tm.to_kind(Kind::Int64)), &tm),
            MultiBatch::from_padded(&(Tensor::randint_low(1, 12, [rows, 4], opts) * hm.to_kind(Kind::Int64)), &hm),
        ],
        dense: Tensor::randn([rows, 2], (Kind::Float, Device::Cpu)),
        labels: Tensor::stack(&[r.remainder(2).eq(0), r.remainder(3).eq(0)], 1).to_kind(Kind::Float),
        users: col(9),
        numeric: vec![],
    }
}

/// One model per layout on the same seed: its per-field variables, probabilities and gradients.
fn model_step(kind: ModelKind, layout: TableLayout) -> (BTreeMap<String, Tensor>, Tensor, Tensor) {
    let mut cfg = ModelsConfig::default();
    cfg.input.tables = layout;
    cfg.tower.hidden = vec![8];
    cfg.mmoe.experts = 3;
    cfg.mmoe.expert_hidden = vec![8];
    cfg.ple.expert_hidden = vec![8];
    cfg.shared_bottom.bottom = vec![8];
    tch::manual_seed(5);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = models::build(kind, &vs, &schema(), &cfg).unwrap();
    let b = batch(32);
    let eval = tch::no_grad(|| m.forward_t(&b, false).probs);
    tch::manual_seed(6); // the dropout masks
    let out = m.forward_t(&b, true);
    let loss = m.loss_terms(&out, &b).into_iter().reduce(|a, b| a + b).unwrap();
    loss.backward();
    let grads: BTreeMap<String, Tensor> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(n, t)| (n, t.grad().detach().copy()))
        .collect();
    let plan = input::table_fields(&schema(), &cfg.input).unwrap();
    let mut by_field = per_field_variables(&vs, "shared.input.", &plan.fields, layout);
    // Gradients under the per-field names too.
    for r in fused_rows("shared.input.", &plan.fields) {
        if let Some(g) = grads.get(&r.table_var) {
            by_field.insert(format!("grad:{}", r.field_var), g.narrow(0, r.offset, r.rows));
        }
    }
    for (n, g) in grads {
        by_field.entry(format!("grad:{n}")).or_insert(g);
    }
    by_field.retain(|n, _| !n.starts_with("grad:shared.input.tables."));
    (by_field, eval, out.probs.detach())
}

#[test]
fn fused_and_per_field_models_agree_on_outputs_and_one_steps_gradients() {
    for kind in [ModelKind::Mmoe, ModelKind::Ple, ModelKind::SharedBottom] {
        let (fv, fe, fp) = model_step(kind, TableLayout::Fused);
        let (pv, pe, pp) = model_step(kind, TableLayout::PerField);
        assert_eq!(fv.keys().collect::<Vec<_>>(), pv.keys().collect::<Vec<_>>(), "{kind:?}: the same variables");
        assert!(fv.keys().any(|k| k == "grad:shared.input.emb.tags.weight"), "{kind:?}");
        for (name, f) in &fv {
            assert!(max_diff(f, &pv[name]) < 1e-5, "{kind:?}: {name} differs by {}", max_diff(f, &pv[name]));
        }
        assert!(max_diff(&fe, &pe) < 1e-5, "{kind:?}: evaluation probabilities");
        assert!(max_diff(&fp, &pp) < 1e-5, "{kind:?}: training probabilities");
    }
}

#[test]
fn gathered_rows_and_their_gradient_are_advanced_indexings() {
    tch::manual_seed(12);
    // Repeated ids: the gradient of a row accumulates over every use.
    let ids = Tensor::from_slice(&[3i64, 0, 3, 5, 1, 3, 0, 2]).view([2, 4]);
    let run = |by_index: bool| {
        tch::manual_seed(12);
        let w = Tensor::randn([6, 3], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = if by_index { w.index(&[Some(&ids)]) } else { gather_rows(&w, &ids) };
        let up = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([2, 4, 3]).cos();
        (&y * up).sum(Kind::Float).backward();
        (y.detach(), w.grad())
    };
    let ((y, g), (y_index, g_index)) = (run(false), run(true));
    assert_eq!(y.size(), [2, 4, 3]);
    assert!(y.equal(&y_index));
    assert!(max_diff(&g, &g_index) < 1e-6, "{g} vs {g_index}");
    // Row 3 is used three times: its gradient is the sum of three upstream rows.
    let up = Tensor::arange(24, (Kind::Float, Device::Cpu)).view([8, 3]).cos();
    let want = up.get(0) + up.get(2) + up.get(5);
    assert!(max_diff(&g.get(3), &want) < 1e-6);
}
