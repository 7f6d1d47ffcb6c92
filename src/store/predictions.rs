//! Where a run's test predictions are kept, so that every worker and every
//! reader (compare's DeLong test, fuse, report) reaches them through the
//! store alone: a file in `predictions/` next to a SQLite database (one
//! machine shares the folder), a row of the `predictions` table of a
//! PostgreSQL database (workers on other machines share nothing else).
//! The run row's `predictions_path` holds the name either way.

use std::path::PathBuf;

use super::artifacts::PredictionFile;
use super::{q, DbLocation, Result, Store, StoreError};

impl Store {
    /// The name a run's predictions are saved under.
    pub fn predictions_name(run_id: &str) -> String {
        format!("{run_id}.bin")
    }

    /// Where predictions of this name are, for messages: the file's path,
    /// or the name and the database.
    pub fn predictions_place(&self, name: &str) -> String {
        match &self.location {
            DbLocation::Sqlite(_) => self.artifact_file(name).display().to_string(),
            DbLocation::Postgres(_) => format!("{name} in the database {}", self.location),
        }
    }

    /// The folder of prediction files beside a SQLite database (a
    /// PostgreSQL store keeps them in the database and uses no folder).
    pub fn artifact_dir(&self) -> PathBuf {
        let dir = self.location.sqlite_path().and_then(|p| p.parent()).unwrap_or(std::path::Path::new("."));
        dir.join("predictions")
    }

    fn artifact_file(&self, name: &str) -> PathBuf {
        self.artifact_dir().join(name)
    }

    /// Saves the predictions of run `run_id` under
    /// [`Store::predictions_name`] and returns that name. Not fenced by the
    /// claim: the name is the run's own, and an attempt that lost its claim
    /// keeps its predictions with its outcome.
    pub fn save_predictions(&self, run_id: &str, p: &PredictionFile) -> Result<String> {
        let name = Store::predictions_name(run_id);
        self.save_predictions_as(run_id, &name, p)?;
        Ok(name)
    }

    /// Saves the predictions of run `run_id` under `name`.
    pub(super) fn save_predictions_as(&self, run_id: &str, name: &str, p: &PredictionFile) -> Result<()> {
        match &self.location {
            DbLocation::Sqlite(_) => p.write(&self.artifact_file(name)),
            DbLocation::Postgres(_) => self.put_predictions(run_id, name, &p.to_bytes()),
        }
    }

    /// Stores the bytes of a run's predictions (PostgreSQL), replacing any.
    fn put_predictions(&self, run_id: &str, name: &str, bytes: &[u8]) -> Result<()> {
        self.rt
            .block_on(
                sqlx::query(
                    "INSERT INTO predictions (name, run_id, bytes) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id, bytes = excluded.bytes",
                )
                .bind(name)
                .bind(run_id)
                .bind(bytes)
                .execute(&self.pool),
            )
            .map_err(q("save predictions"))?;
        Ok(())
    }

    /// Reads the predictions saved under `name`.
    pub fn load_predictions(&self, name: &str) -> Result<PredictionFile> {
        match &self.location {
            DbLocation::Sqlite(_) => PredictionFile::read(&self.artifact_file(name)),
            DbLocation::Postgres(_) => {
                let bytes: Option<Vec<u8>> = self
                    .rt
                    .block_on(sqlx::query_scalar("SELECT bytes FROM predictions WHERE name = $1").bind(name).fetch_optional(&self.pool))
                    .map_err(q("load predictions"))?;
                let place = self.predictions_place(name);
                let bytes = bytes.ok_or_else(|| StoreError::Artifact { place: place.clone(), message: "not in the database".into() })?;
                PredictionFile::from_bytes(&bytes, &place)
            }
        }
    }
}
