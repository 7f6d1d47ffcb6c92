//! mtlbench: a benchmark and experiment-tracking harness for multi-task
//! ranking models in recommendation.
//!
//! Stages, each a module owning its data: [`config`] (grid files -> cells),
//! [`data`] (sources, features, batches), [`models`], [`optim`] (below both
//! strategies and the loop), [`strategies`], [`train`] (the loop),
//! [`metrics`] and [`stats`] (pure numbers), [`store`] (SQLite), [`verdict`]
//! (the leaderboard's numbers, from store rows), [`report`] (HTML, SVG,
//! README). [`run`] glues a plan to the store and the loop:
//! claim -> train -> record -> report, per cell.
//! The speed comparison with PyTorch is developer tooling and lives in its
//! own binary, `bench-perf` (src/bin/bench_perf/).

pub mod compare;
pub mod config;
pub mod data;
pub mod env;
pub mod fusion;
pub mod interrupt;
pub mod metrics;
pub mod models;
pub mod optim;
pub mod report;
pub mod run;
pub mod stats;
pub mod store;
pub mod strategies;
pub mod train;
pub mod verdict;

/// The embedded default grid (`experiments/demo.toml`).
pub const DEMO_GRID: &str = include_str!("../experiments/demo.toml");
