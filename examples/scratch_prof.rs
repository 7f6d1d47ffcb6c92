// TEMPORARY profiling scratch (not for commit).
use std::time::Instant;
use mtlbench::perf::exchange::{self, Manifest};
use mtlbench::data::SplitTensors;
use mtlbench::models::{self};
use mtlbench::train::{TrainConfig, optim::Optimizer};
use mtlbench::strategies::equal::weighted_sum;
use tch::{nn, Device};
fn main() {
    mtlbench::train::alloc::keep_freed_memory();
    let dir = std::path::Path::new(&std::env::args().nth(1).unwrap()).to_path_buf();
    let kind = mtlbench::perf::parse_model(&std::env::args().nth(2).unwrap()).unwrap();
    let m = Manifest::read(&dir).unwrap();
    tch::set_num_threads(2);
    let train = exchange::read_split(&dir, &m.train_split, &m.schema).unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let model = models::build(kind, &vs, &m.schema, &m.models_config).unwrap();
    let cfg = TrainConfig::default();
    let mut opt = Optimizer::new(&vs, &cfg).unwrap();
    let split = SplitTensors::new(&train, &m.schema, Device::Cpu);
    let bs: Vec<_> = split.shuffled(1024, 1, 1).take(45).collect();
    let mut t = [0f64; 5];
    for (i, b) in bs.iter().enumerate() {
        let t0 = Instant::now();
        opt.zero_grad();
        let t1 = Instant::now();
        let out = model.forward_t(b, true);
        let losses = model.loss_terms(&out, b);
        let _v: Vec<f64> = losses.iter().map(|l| l.double_value(&[])).collect();
        let t2 = Instant::now();
        weighted_sum(&losses, &[1.0, 1.0, 1.0]).backward();
        let t3 = Instant::now();
        opt.step();
        let t4 = Instant::now();
        if i >= 5 {
            t[0] += (t1 - t0).as_secs_f64(); t[1] += (t2 - t1).as_secs_f64(); t[2] += (t3 - t2).as_secs_f64(); t[3] += (t4 - t3).as_secs_f64(); t[4] += (t4 - t0).as_secs_f64();
        }
    }
    let n = (bs.len() - 5) as f64;
    let cpu = { let mut u: libc::rusage = unsafe { std::mem::zeroed() }; unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }; u.ru_utime.tv_sec as f64 + u.ru_utime.tv_usec as f64 * 1e-6 };
    println!("cpu-total {:.1}s", cpu);
    println!("zero {:.2} fwd {:.2} bwd {:.2} opt {:.2} total {:.2} ms", t[0]/n*1e3, t[1]/n*1e3, t[2]/n*1e3, t[3]/n*1e3, t[4]/n*1e3);
}
