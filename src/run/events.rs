//! What a worker process of `bench run --jobs` tells its parent: one JSON
//! object per line on the worker's stdout. The worker's [`super::Progress`]
//! writes them instead of its lines and bars; the parent (`jobs`) reads
//! them to draw a bar per worker, or a line per finished cell off a
//! terminal. A line that is not an event (a panic message, say) is kept as
//! plain text.

use serde::{Deserialize, Serialize};

/// How a cell ended, as the parent counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DoneKind {
    Finished,
    Failed,
    /// Stopped by Ctrl-C or SIGTERM: the run is killed, the cell queued again.
    Killed,
    /// Its claim was lost to another process; the attempt is kept as superseded.
    Superseded,
}

/// One event of a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// A line for the user (grid started, data loaded, a warning).
    Line { text: String, warning: bool },
    /// A cell was claimed and trains now.
    Training { cell: String, text: String },
    /// Progress within the cell in training: `fraction` of it done, 0..=1.
    Step { fraction: f64, text: String },
    /// A claimed cell is done with.
    Done { cell: String, kind: DoneKind, text: String },
}

impl WorkerEvent {
    /// The event as one line of JSON.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a worker's line: an event, or a plain line of text.
    pub fn parse(line: &str) -> WorkerEvent {
        serde_json::from_str(line).unwrap_or_else(|_| WorkerEvent::Line { text: line.to_string(), warning: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_a_line_and_other_text_stays_text() {
        let events = [
            WorkerEvent::Line { text: "data toy: 10 rows".into(), warning: false },
            WorkerEvent::Training { cell: "mmoe-equal-s1".into(), text: "training as run ab12".into() },
            WorkerEvent::Step { fraction: 0.25, text: "epoch 1/2".into() },
            WorkerEvent::Done { cell: "mmoe-equal-s1".into(), kind: DoneKind::Failed, text: "failed: nan\nloss".into() },
        ];
        for e in events {
            let line = e.to_line();
            assert!(!line.contains('\n'), "{line}");
            assert_eq!(WorkerEvent::parse(&line), e);
        }
        assert_eq!(
            WorkerEvent::Done { cell: "c".into(), kind: DoneKind::Superseded, text: "t".into() }.to_line(),
            r#"{"event":"done","cell":"c","kind":"superseded","text":"t"}"#
        );
        assert_eq!(
            WorkerEvent::parse("thread 'main' panicked"),
            WorkerEvent::Line { text: "thread 'main' panicked".into(), warning: false }
        );
    }
}
