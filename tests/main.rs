//! The one integration-test binary: one module per topic. Tests drive the
//! `bench` binary as a user would, in temporary directories.

mod common;
mod compare;
mod data_cli;
mod fence;
mod cli_end_to_end;
mod grid_errors;
mod leaderboard;
mod perf;
mod fusion;
mod report;
mod resume;
mod training;
mod validation;
mod workers;
