//! The status of a run, as the store keeps it: one enum for the whole
//! program, stored as its lower-case name (the `runs.status` column and its
//! CHECK constraint use the same names), serialized the same way in JSON,
//! and parsed from user input (`bench list --status`) with an error that
//! lists the choices.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a run is in its life: claimed runs are `Running`; they end
/// `Finished`, `Failed` (an error of the cell), `Killed` (interrupted, or
/// left behind by a dead process) or `Superseded` (an attempt kept for the
/// record that is not the cell's result: a finished run replaced by a
/// forced rerun, or a run whose claim another process took over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Finished,
    Failed,
    Killed,
    Superseded,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] =
        [RunStatus::Queued, RunStatus::Running, RunStatus::Finished, RunStatus::Failed, RunStatus::Killed, RunStatus::Superseded];

    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Finished => "finished",
            RunStatus::Failed => "failed",
            RunStatus::Killed => "killed",
            RunStatus::Superseded => "superseded",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`RunStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl fmt::Display for UnknownStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let choices: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        write!(f, "unknown status `{}`; valid: {}", self.0, choices.join(", "))
    }
}

impl std::error::Error for UnknownStatus {}

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL.iter().copied().find(|x| x.as_str() == s).ok_or_else(|| UnknownStatus(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_json_and_the_schema() {
        for s in RunStatus::ALL {
            assert_eq!(s.as_str().parse::<RunStatus>(), Ok(s));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<RunStatus>(&format!("\"{s}\"")).unwrap(), s);
        }
        // The names the latest CHECK constraint on the column allows, in its order.
        let schema = include_str!("../../migrations/0004_claims.sql");
        let check = "status IN ('queued', 'running', 'finished', 'failed', 'killed', 'superseded')";
        assert!(schema.contains(check));
        let names: Vec<String> = RunStatus::ALL.iter().map(|s| format!("'{s}'")).collect();
        assert!(check.contains(&names.join(", ")));
    }

    #[test]
    fn an_unknown_name_lists_the_choices() {
        let e = "done".parse::<RunStatus>().unwrap_err().to_string();
        assert_eq!(e, "unknown status `done`; valid: queued, running, finished, failed, killed, superseded");
        assert!("Finished".parse::<RunStatus>().is_err(), "names are lower case");
    }
}
