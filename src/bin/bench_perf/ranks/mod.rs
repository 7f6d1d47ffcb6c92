//! Rank-based statistics of the speed comparison: the Hodges–Lehmann shift
//! of two independent samples of rounds ([`hodges_lehmann_shift`], module
//! `shift`) and of rounds paired by their dropout masks
//! ([`hodges_lehmann_paired`], module `signed_rank`), each with its
//! distribution-free interval.
//!
//! Why rank-based: a comparison of training rounds can be decided by one
//! round that went wrong (a task whose AUC collapsed), which drags a mean
//! and widens a t interval however many good rounds there are. The means
//! and t intervals shown beside the shift come from the library's
//! `mtlbench::stats`, whose input checks these functions share.

mod shift;
mod signed_rank;

pub use shift::{hodges_lehmann_shift, ShiftCi};
pub use signed_rank::hodges_lehmann_paired;

type Result<T> = std::result::Result<T, mtlbench::stats::StatsError>;
