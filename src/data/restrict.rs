//! A dataset restricted to one of its tasks: the data of a single-task
//! baseline. The rows, features and users stay exactly those of the
//! multi-task dataset (a source asked for fewer tasks may generate other
//! rows, as the toy generator does), only the label block keeps one column.
//! The digest differs from the multi-task one, so the baseline's cell key
//! never collides with a multi-task cell's.

use super::{DataError, Dataset, SplitData};

fn keep_column(split: &SplitData, task: usize, n_tasks: usize) -> SplitData {
    SplitData { labels: split.task_labels(task, n_tasks), ..split.clone() }
}

/// The dataset with only `task`'s labels.
pub fn only_task(ds: &Dataset, task: &str) -> Result<Dataset, DataError> {
    let t = ds.schema.task_index(task).ok_or_else(|| DataError::Config {
        key: "grid.single_task".into(),
        message: format!("dataset `{}` has no task `{task}`; its tasks are {}", ds.name, ds.schema.tasks.join(", ")),
    })?;
    let n = ds.schema.tasks.len();
    let mut schema = ds.schema.clone();
    schema.tasks = vec![task.to_string()];
    Ok(Dataset {
        name: format!("{} [{task} only]", ds.name),
        schema,
        train: keep_column(&ds.train, t, n),
        valid: keep_column(&ds.valid, t, n),
        test: keep_column(&ds.test, t, n),
        digest: super::cache::key_of(&[&ds.digest, "only", task])[..16].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::toy::{generate, ToyConfig};

    #[test]
    fn keeps_rows_and_one_label_column() {
        let ds = generate(&ToyConfig { rows: 400, tasks: vec!["click".into(), "like".into(), "share".into()], ..Default::default() });
        let one = only_task(&ds, "like").unwrap();
        assert_eq!(one.schema.tasks, ["like"]);
        for (a, b) in [(&ds.train, &one.train), (&ds.valid, &one.valid), (&ds.test, &one.test)] {
            assert_eq!(b.rows, a.rows);
            assert_eq!(b.categorical, a.categorical);
            assert_eq!(b.users, a.users);
            assert_eq!(b.labels, a.task_labels(1, 3));
            b.check(&one.schema).unwrap();
        }
        assert_ne!(one.digest, ds.digest);
        assert_ne!(one.digest, only_task(&ds, "click").unwrap().digest);
        let e = only_task(&ds, "buy").unwrap_err().to_string();
        assert!(e.contains("buy") && e.contains("click, like, share"), "{e}");
    }
}
