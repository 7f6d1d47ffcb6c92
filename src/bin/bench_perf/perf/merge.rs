//! Pools the reports of several `bench-perf` invocations into one, so that
//! rounds measured in separate runs (a confirmation run, a long run split
//! into chunks that each save their JSON) are judged together by the same
//! statistics instead of by hand.
//!
//! Why it refuses so much: a pooled estimate is only honest if the pieces
//! measured the same thing on the same machine (same data, steps, batch,
//! threads, dropout, masks, libtorch) and every round is counted once. So the
//! reports must agree on those settings, and each model's rounds must follow
//! each other without overlap or gap (a gap could hide a left-out run). The
//! error names the file and the key.

use std::path::{Path, PathBuf};

use super::{ModelComparison, PerfError, PerfReport, SideRuns};

/// One report to pool and the file it came from (for errors and notes).
#[derive(Debug, Clone)]
pub struct Piece {
    pub path: PathBuf,
    pub report: PerfReport,
}

/// The settings every pooled report must share, as (key, value) text.
fn settings(r: &PerfReport) -> Vec<(&'static str, String)> {
    vec![
        ("machine", format!("{}, {} cores", r.machine.cpu_model, r.machine.cores)),
        ("libtorch", r.machine.libtorch.clone()),
        ("threads", r.threads.to_string()),
        ("dataset", r.dataset.clone()),
        ("train_rows", r.train_rows.to_string()),
        ("test_rows", r.test_rows.to_string()),
        ("steps", r.steps.to_string()),
        ("warmup", r.warmup.to_string()),
        ("batch_size", r.batch_size.to_string()),
        ("dropout", r.dropout.to_string()),
        ("seed", r.seed.to_string()),
        ("masks", serde_json::to_string(&r.masks).unwrap_or_default().trim_matches('"').to_string()),
    ]
}

fn format_error(path: &Path, message: String) -> PerfError {
    PerfError::Format { path: path.to_path_buf(), message }
}

/// Rounds `first..first + n` as 1-based numbers, e.g. "16-27".
fn round_span(first: usize, n: usize) -> String {
    match n {
        0 => "no rounds".into(),
        1 => format!("round {}", first + 1),
        _ => format!("rounds {}-{}", first + 1, first + n),
    }
}

/// Pools `pieces` into one report: each model's runs in round order, the
/// median runs recomputed over all of them, the higher sgemm, the first
/// exact-AUC race. One piece is returned as it is.
pub fn merge(mut pieces: Vec<Piece>) -> Result<PerfReport, PerfError> {
    let first = pieces.first().ok_or_else(|| PerfError::Check("no reports to merge".into()))?;
    if pieces.len() == 1 {
        return Ok(pieces.remove(0).report);
    }
    let base = settings(&first.report);
    let base_path = first.path.clone();
    for p in &pieces[1..] {
        for ((key, want), (_, got)) in base.iter().zip(settings(&p.report)) {
            if *want != got {
                return Err(format_error(
                    &p.path,
                    format!("{key} is {got}, but {} has {want}: only reports of the same setup can be pooled", base_path.display()),
                ));
            }
        }
    }
    pieces.sort_by_key(|p| p.report.first_round);
    let start = pieces[0].report.first_round;
    let mut names: Vec<String> = Vec::new();
    for p in &pieces {
        for m in &p.report.models {
            if !names.contains(&m.model) {
                names.push(m.model.clone());
            }
        }
    }
    let mut models = Vec::new();
    for name in &names {
        models.push(merge_model(name, &pieces, start)?);
    }
    let sgemm_runs: Vec<_> = pieces.iter().flat_map(|p| p.report.sgemm_runs.iter().cloned()).collect();
    let sgemm = pieces
        .iter()
        .map(|p| p.report.sgemm.clone())
        .max_by(|a, b| a.median_flops.total_cmp(&b.median_flops))
        .ok_or_else(|| PerfError::Check("no sgemm measurement".into()))?;
    let mut notes: Vec<String> = Vec::new();
    let described: Vec<String> = pieces
        .iter()
        .map(|p| {
            let r = &p.report;
            let models: Vec<&str> = r.models.iter().map(|m| m.model.as_str()).collect();
            let n = r.models.iter().map(|m| m.mtlbench_runs.len()).max().unwrap_or(0);
            format!("{} ({}; {})", p.path.display(), round_span(r.first_round, n), models.join(", "))
        })
        .collect();
    notes.push(format!("pooled from {} reports: {}", pieces.len(), described.join(", ")));
    let with_auc: Vec<&Piece> = pieces.iter().filter(|p| p.report.auc.is_some()).collect();
    if with_auc.len() > 1 {
        notes.push(format!("exact-AUC race of {} (each report measured its own)", with_auc[0].path.display()));
    }
    for p in &pieces {
        notes.extend(p.report.notes.iter().map(|n| format!("{}: {n}", p.path.display())));
    }
    let last = &pieces[pieces.len() - 1].report;
    Ok(PerfReport {
        machine: pieces[0].report.machine.clone(),
        threads: pieces[0].report.threads,
        load_before: pieces[0].report.load_before,
        load_after: last.load_after,
        dataset: pieces[0].report.dataset.clone(),
        train_rows: pieces[0].report.train_rows,
        test_rows: pieces[0].report.test_rows,
        steps: pieces[0].report.steps,
        warmup: pieces[0].report.warmup,
        batch_size: pieces[0].report.batch_size,
        rounds: models.iter().map(|m| m.mtlbench_runs.len()).max().unwrap_or(0),
        seed: pieces[0].report.seed,
        dropout: pieces[0].report.dropout,
        masks: pieces[0].report.masks,
        first_round: start,
        sgemm,
        sgemm_runs,
        models,
        auc: with_auc.first().and_then(|p| p.report.auc.clone()),
        notes,
    })
}

/// One model's runs from every piece that has it, checked to follow each
/// other from round `start + 1` on, with the same architecture and sides.
fn merge_model(name: &str, pieces: &[Piece], start: usize) -> Result<ModelComparison, PerfError> {
    let mut next = start;
    // The piece before (for errors) and the first piece with the model.
    let mut previous: Option<&Piece> = None;
    let mut first: Option<(&Piece, f64, bool)> = None;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut compiled = Vec::new();
    for p in pieces {
        let Some(m) = p.report.models.iter().find(|m| m.model == name) else { continue };
        let (from, n) = (p.report.first_round, m.mtlbench_runs.len());
        if from != next {
            let message = match previous {
                None => format!(
                    "{name} starts at round {}, but {} starts the pooled report at round {}: {name}'s earlier rounds are in none of the reports",
                    from + 1,
                    pieces[0].path.display(),
                    start + 1
                ),
                Some(q) => format!(
                    "{name}'s {} {} {} (next is round {}): each round must be counted exactly once",
                    round_span(from, n),
                    if from < next { "overlap" } else { "leave a gap after" },
                    q.path.display(),
                    next + 1
                ),
            };
            return Err(format_error(&p.path, message));
        }
        if !m.reference_runs.is_empty() && m.reference_runs.len() != n {
            return Err(format_error(&p.path, format!("{name} has {n} mtlbench runs but {} pytorch runs", m.reference_runs.len())));
        }
        let has_reference = !m.reference_runs.is_empty();
        let (q, flops, reference) = *first.get_or_insert((p, m.step_flops, has_reference));
        let side = |with: bool| if with { "has the PyTorch side" } else { "has no PyTorch side" };
        if reference != has_reference {
            return Err(format_error(
                &p.path,
                format!("{name} {}, but in {} it {}: pool like with like", side(has_reference), q.path.display(), side(reference)),
            ));
        }
        if flops != m.step_flops {
            return Err(format_error(
                &p.path,
                format!("{name}'s step is {} FLOP, but {flops} in {}: not the same architecture", m.step_flops, q.path.display()),
            ));
        }
        ours.extend(m.mtlbench_runs.iter().cloned());
        theirs.extend(m.reference_runs.iter().cloned());
        compiled.extend(m.compiled_runs.iter().cloned());
        next = from + n;
        previous = Some(p);
    }
    if pieces[0].report.dropout > 0.0 {
        same_round_twice(name, &ours, start)?;
    }
    // The fastest of the pieces' floors: the bound it gives is the loosest.
    let gemm_floor = pieces
        .iter()
        .filter_map(|p| p.report.models.iter().find(|m| m.model == name)?.gemm_floor.clone())
        .min_by(|a, b| a.median_seconds.total_cmp(&b.median_seconds));
    let runs = SideRuns { ours, theirs, compiled };
    ModelComparison::from_runs(name.to_string(), first.map_or(0.0, |f| f.1), gemm_floor, runs)
        .ok_or_else(|| PerfError::Check(format!("{name}: no runs in any of the reports")))
}

/// Two rounds draw different dropout masks, so their loss curves differ from
/// the first step on (with dropout 0 they train alike, and are exempt); the
/// same curve twice means one run was pooled twice, e.g. under an edited
/// round number.
fn same_round_twice(name: &str, runs: &[super::SideResult], start: usize) -> Result<(), PerfError> {
    for (i, a) in runs.iter().enumerate() {
        for (j, b) in runs.iter().enumerate().skip(i + 1) {
            if !a.losses.is_empty() && a.losses == b.losses {
                return Err(PerfError::Check(format!(
                    "{name}: rounds {} and {} have the same loss curve, step for step: the same run pooled twice?",
                    start + i + 1,
                    start + j + 1
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::report::tests::{report, side};
    use super::*;

    /// A report of `n` rounds from `first` on whose mean AUCs are `ours` and `theirs`.
    fn piece(name: &str, first: usize, ours: &[f64], theirs: &[f64]) -> Piece {
        let mut r = report(60_000.0, 48_000.0, 0.70, 2.0);
        r.first_round = first;
        r.rounds = ours.len();
        let m = &mut r.models[0];
        m.mtlbench_runs = ours.iter().map(|&a| side("mtlbench", 60_000.0 + 1000.0 * a, [a; 3])).collect();
        m.reference_runs = theirs.iter().map(|&a| side("pytorch", 48_000.0, [a; 3])).collect();
        Piece { path: PathBuf::from(name), report: r }
    }

    /// Rounds 1-3 of a.json and the rounds 4-6 that follow them in b.json.
    fn first_three() -> Piece {
        piece("a.json", 0, &[0.7; 3], &[0.7; 3])
    }

    fn next_three() -> Piece {
        piece("b.json", 3, &[0.7; 3], &[0.7; 3])
    }

    fn auc_line(r: &PerfReport) -> String {
        r.targets().into_iter().find(|t| t.what.contains("test AUC")).map(|t| t.what).unwrap_or_default()
    }

    #[test]
    fn pooled_rounds_are_judged_together() {
        // Rounds 1-3 and 4-5 of the five-round case of the report tests, in
        // the wrong order: pooled they give the same Hodges–Lehmann line as
        // one five-round report (median of the 25 differences 0.0000, 95%
        // interval [-0.0030, +0.0400]).
        let ours = [0.701, 0.699, 0.702, 0.700, 0.698];
        let theirs = [0.700, 0.701, 0.699, 0.660, 0.702];
        let mut b = piece("b.json", 3, &ours[3..], &theirs[3..]);
        // PyTorch's round 4 lost one task: mean 0.66.
        b.report.models[0].reference_runs[0] = side("pytorch", 48_000.0, [0.70, 0.70, 0.58]);
        let merged = merge(vec![b, piece("a.json", 0, &ours[..3], &theirs[..3])]).expect("compatible");
        let m = &merged.models[0];
        let pooled: Vec<f64> = m.mtlbench_runs.iter().map(|r| r.test_auc[0].1.unwrap_or(0.0)).collect();
        assert_eq!(pooled, ours.to_vec(), "round order");
        assert_eq!((merged.rounds, merged.first_round), (5, 0));
        let line = auc_line(&merged);
        assert!(line.contains("Hodges–Lehmann over 5 rounds, 95% CI [-0.0030, +0.0400]"), "{line}");
        assert!(line.contains("test AUC shift +0.0000"), "{line}");
        // The median run is the median of all five rounds: throughputs 60,698..60,702.
        assert_eq!(m.mtlbench.samples_per_second, 60_000.0 + 1000.0 * 0.700);
        assert_eq!(merged.sgemm_runs.len(), 4);
        assert!(
            merged.notes[0].starts_with("pooled from 2 reports: a.json (rounds 1-3; mmoe), b.json (rounds 4-5; mmoe)"),
            "{:?}",
            merged.notes
        );
        let text = merged.to_string();
        assert!(text.contains("pytorch 0.5800 (c, round 4)"), "{text}");
    }

    #[test]
    fn models_measured_in_fewer_reports_pool_their_own_rounds() {
        // How results/perf-pooled.json was pooled: both models in rounds 1-15
        // and 16-27, PLE alone from round 28 on.
        let both = |name: &str, first: usize, n: usize| {
            let mut p = piece(name, first, &vec![0.70; n], &vec![0.70; n]);
            let mut ple = p.report.models[0].clone();
            ple.model = "ple".into();
            p.report.models.push(ple);
            p
        };
        let mut third = piece("c.json", 27, &[0.69; 8], &[0.70; 8]);
        third.report.models[0].model = "ple".into();
        let merged = merge(vec![both("a.json", 0, 15), both("b.json", 15, 12), third]).expect("compatible");
        let runs: Vec<(&str, usize, usize)> =
            merged.models.iter().map(|m| (m.model.as_str(), m.mtlbench_runs.len(), m.reference_runs.len())).collect();
        assert_eq!(runs, [("mmoe", 27, 27), ("ple", 35, 35)]);
        assert_eq!((merged.rounds, merged.first_round), (35, 0));
        assert!(merged.notes[0].contains("c.json (rounds 28-35; ple)"), "{:?}", merged.notes);
        // Pieces that start at round 16 keep their numbers.
        let mut low = piece("d.json", 15, &[0.70; 3], &[0.70; 3]);
        low.report.models[0].reference_runs[1] = side("pytorch", 48_000.0, [0.70, 0.61, 0.70]);
        let merged = merge(vec![piece("e.json", 18, &[0.70; 2], &[0.70; 2]), low]).expect("compatible");
        assert!(merged.to_string().contains("pytorch 0.6100 (b, round 17)"));
    }

    #[test]
    fn round_labels_count_from_the_first_round() {
        let mut p = piece("c.json", 15, &[0.70, 0.69, 0.70, 0.70], &[0.70; 4]);
        p.report.models[0].mtlbench_runs[1] = side("mtlbench", 60_000.0, [0.70, 0.62, 0.70]);
        let text = p.report.to_string();
        assert!(text.contains("lowest single-task test AUC: mtlbench 0.6200 (b, round 17)"), "{text}");
    }

    #[test]
    fn overlaps_gaps_and_other_setups_are_refused() {
        let err = |pieces| merge(pieces).err().map(|e: PerfError| e.to_string()).unwrap_or_default();
        let e = err(vec![first_three(), piece("b.json", 2, &[0.7; 3], &[0.7; 3])]);
        assert!(e.starts_with("b.json: mmoe's rounds 3-5 overlap a.json (next is round 4)"), "{e}");
        let e = err(vec![first_three(), piece("b.json", 4, &[0.7; 3], &[0.7; 3])]);
        assert!(e.starts_with("b.json: mmoe's rounds 5-7 leave a gap after a.json (next is round 4)"), "{e}");
        let mut other = next_three();
        other.report.steps = 500;
        let e = err(vec![first_three(), other]);
        assert!(e.starts_with("b.json: steps is 500, but a.json has 110"), "{e}");
        let mut lone = next_three();
        lone.report.models[0].reference_runs.clear();
        let e = err(vec![first_three(), lone]);
        assert!(e.starts_with("b.json: mmoe has no PyTorch side, but in a.json it has the PyTorch side"), "{e}");
        let mut wider = next_three();
        wider.report.models[0].step_flops = 2e9;
        let e = err(vec![first_three(), wider]);
        assert!(e.starts_with("b.json: mmoe's step is 2000000000 FLOP, but 1000000000 in a.json"), "{e}");
        let mut seeded = next_three();
        seeded.report.seed = 2;
        let e = err(vec![first_three(), seeded]);
        assert!(e.starts_with("b.json: seed is 2, but a.json has 1"), "{e}");
        // A model whose first rounds are in none of the reports.
        let mut late = next_three();
        late.report.models[0].model = "ple".into();
        let e = err(vec![first_three(), late]);
        assert!(e.starts_with("b.json: ple starts at round 4, but a.json starts the pooled report at round 1"), "{e}");
        // The same run twice under another round number.
        let mut a = first_three();
        let mut b = next_three();
        for (k, r) in a.report.models[0].mtlbench_runs.iter_mut().enumerate() {
            r.losses = vec![0.7, 0.5 + k as f64];
        }
        b.report.models[0].mtlbench_runs[2].losses = vec![0.7, 0.5 + 1.0];
        assert!(merge(vec![a.clone(), next_three()]).is_ok());
        let e = err(vec![a, b]);
        assert_eq!(e, "mmoe: rounds 2 and 6 have the same loss curve, step for step: the same run pooled twice?");
        assert!(err(vec![]).contains("no reports"));
    }
}
