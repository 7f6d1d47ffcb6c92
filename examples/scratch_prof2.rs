// TEMPORARY profiling scratch (not for commit).
use std::time::Instant;
use mtlbench::perf::exchange::{self, Manifest};
use mtlbench::data::SplitTensors;
use mtlbench::models::{InputLayer, Mlp, TowerConfig, experts::ExpertSet};
use tch::{nn, Device, Kind, Tensor};
fn time<F: FnMut()>(name: &str, mut f: F) {
    for _ in 0..3 { f(); }
    let mut v = vec![];
    for _ in 0..15 { let t = Instant::now(); f(); v.push(t.elapsed().as_secs_f64()); }
    v.sort_by(f64::total_cmp);
    println!("{name:40} {:.2} ms", v[v.len()/2]*1e3);
}
fn main() {
    mtlbench::train::alloc::keep_freed_memory();
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let m = Manifest::read(&dir).unwrap();
    tch::set_num_threads(2);
    let train = exchange::read_split(&dir, &m.train_split, &m.schema).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let input = InputLayer::new(&(vs.root() / "in"), &m.schema, &Default::default()).unwrap();
    let tower = Mlp::tower(&(vs.root() / "t"), 512, &TowerConfig::default());
    let ex = ExpertSet::new(&(vs.root() / "e"), 3, input.out_dim(), &[512]);
    let split = SplitTensors::new(&train, &m.schema, Device::Cpu);
    let b: Vec<_> = split.shuffled(1024, 1, 1).take(1).collect();
    let b = &b[0];
    time("input fwd", || { let _ = input.forward(b); });
    time("input fwd+bwd", || { vs.trainable_variables().iter_mut().for_each(|t| t.zero_grad()); input.forward(b).sum(Kind::Float).backward(); });
    let x = Tensor::randn([1024, input.out_dim()], (Kind::Float, Device::Cpu));
    time("experts fwd", || { let _ = ex.forward(&x); });
    time("experts fwd+bwd", || { ex.forward(&x).sum(Kind::Float).backward(); });
    let h = Tensor::randn([1024, 512], (Kind::Float, Device::Cpu));
    time("tower fwd (train)", || { let _ = tower.forward_t(&h, true); });
    time("tower fwd+bwd (train)", || { tower.forward_t(&h, true).sum(Kind::Float).backward(); });
    let t2 = Mlp::tower(&(vs.root() / "t2"), 512, &TowerConfig { dropout: 0.0, batch_norm: false, ..Default::default() });
    time("tower no dropout/bn fwd+bwd", || { t2.forward_t(&h, true).sum(Kind::Float).backward(); });
    let w1 = Tensor::randn([512, 512], (Kind::Float, Device::Cpu)); let w2 = Tensor::randn([256, 512], (Kind::Float, Device::Cpu)); let w3 = Tensor::randn([128, 256], (Kind::Float, Device::Cpu));
    time("tower GEMMs only fwd", || { let _ = h.matmul(&w1.tr()).matmul(&w2.tr()).matmul(&w3.tr()); });
}
