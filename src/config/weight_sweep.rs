//! The static-weight arm's own axis: `[strategies.static] sweep = N` gives
//! the `static` strategy N configurations, one per weight vector
//! (`strategies.static.point` = 0..N; the vectors themselves are computed
//! by `strategies::static_weights` once the model's loss terms are known).
//! The axis belongs to that arm alone: it is crossed with the grid's
//! overrides like any arm's configuration, and it does not count in the
//! comparison of tuning budgets (each weight vector is tuned over the same
//! override axes as every other arm).

use super::GridFile;
use crate::strategies::StrategyKind;

/// The parameter (and override key) that names a run's weight vector.
pub const POINT_PARAM: &str = "strategy.point";

/// The override key shown in cell names.
const POINT_KEY: &str = "strategies.static.point";

/// One configuration of an arm before seeds: the grid file with the arm's
/// own axis applied, and that axis value for the cell name.
pub struct ArmConfig {
    pub config: GridFile,
    pub axis: Option<(String, toml::Value)>,
}

/// The configurations of `strategy` under `cfg`: one per weight vector for
/// the static arm, `cfg` itself for every other strategy.
pub fn arm_configs(cfg: &GridFile, strategy: StrategyKind) -> Vec<ArmConfig> {
    if strategy != StrategyKind::Static {
        return vec![ArmConfig { config: cfg.clone(), axis: None }];
    }
    (0..cfg.strategies.static_weights.sweep)
        .map(|p| {
            let mut c = cfg.clone();
            c.strategies.static_weights.point = p;
            ArmConfig { config: c, axis: Some((POINT_KEY.to_string(), toml::Value::Integer(p as i64))) }
        })
        .collect()
}
