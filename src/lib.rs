//! mtlbench: a benchmark and experiment-tracking harness for multi-task
//! ranking models in recommendation.
//!
//! Stages, each a module owning its data: [`config`] (grid files -> cells),
//! [`data`] (sources, features, batches), [`models`], [`strategies`],
//! [`train`] (the loop), [`metrics`] and [`stats`] (pure numbers), [`store`]
//! (SQLite), [`verdict`] (the leaderboard's numbers, from store rows),
//! [`report`] (HTML, SVG, README). [`runner`] glues a plan to the store and
//! the loop.

pub mod compare;
pub mod config;
pub mod data;
pub mod env;
pub mod fusion;
pub mod interrupt;
pub mod metrics;
pub mod models;
pub mod perf;
pub mod report;
pub mod runner;
pub mod stats;
pub mod store;
pub mod strategies;
pub mod train;
pub mod verdict;

/// The embedded default grid (`experiments/demo.toml`).
pub const DEMO_GRID: &str = include_str!("../experiments/demo.toml");
