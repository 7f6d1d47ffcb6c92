//! Reading the WeChat Channels raw files (`user_action.csv`, `feed_info.csv`)
//! into typed columns, with every bad value reported by file, line and
//! column. Columns are found by header name, so column order and extra
//! columns (play, stay, the text ids) do not matter.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use super::ACTIONS;
use crate::data::DataError;

/// The action log: one row per exposure, in file order.
#[derive(Debug, Clone, Default)]
pub struct RawActions {
    pub userid: Vec<i64>,
    pub feedid: Vec<i64>,
    pub day: Vec<u8>,
    pub device: Vec<i64>,
    /// Bit `a` is set when action `ACTIONS[a]` happened.
    pub actions: Vec<u8>,
}

impl RawActions {
    pub fn rows(&self) -> usize {
        self.userid.len()
    }
    pub fn has(&self, row: usize, action: usize) -> bool {
        self.actions[row] >> action & 1 == 1
    }
}

/// The feed table: one row per feed, in file order.
#[derive(Debug, Clone, Default)]
pub struct RawFeeds {
    pub feedid: Vec<i64>,
    pub authorid: Vec<Option<i64>>,
    pub videoplayseconds: Vec<f64>,
    pub bgm_song_id: Vec<Option<i64>>,
    pub bgm_singer_id: Vec<Option<i64>>,
    /// Feed r's manual tags: `tags[tag_offsets[r]..tag_offsets[r + 1]]`.
    pub tag_offsets: Vec<usize>,
    pub tags: Vec<i64>,
}

/// A CSV file opened with its header resolved to column positions.
struct Table {
    path: PathBuf,
    reader: csv::Reader<BufReader<File>>,
    columns: Vec<usize>,
    names: Vec<&'static str>,
}

impl Table {
    fn open(path: &Path, wanted: &[&'static str]) -> Result<Self, DataError> {
        let file = File::open(path).map_err(|source| DataError::Io { path: path.to_path_buf(), cause: source })?;
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(BufReader::with_capacity(1 << 20, file));
        let header = reader
            .byte_headers()
            .map_err(|e| DataError::File { path: path.to_path_buf(), message: format!("reading the header: {e}") })?
            .clone();
        let names: Vec<String> = header.iter().map(|h| String::from_utf8_lossy(h).trim().to_string()).collect();
        let mut columns = Vec::with_capacity(wanted.len());
        for w in wanted {
            match names.iter().position(|n| n == w) {
                Some(i) => columns.push(i),
                None => {
                    return Err(DataError::File {
                        path: path.to_path_buf(),
                        message: format!("line 1: missing column `{w}` (header has: {})", names.join(", ")),
                    })
                }
            }
        }
        Ok(Table { path: path.to_path_buf(), reader, columns, names: wanted.to_vec() })
    }

    /// Reads the next record; `Ok(None)` at the end.
    fn next(&mut self, rec: &mut ByteRecord) -> Result<Option<usize>, DataError> {
        match self.reader.read_byte_record(rec) {
            Ok(true) => {
                let line = rec.position().map_or(0, |p| p.line() as usize);
                Ok(Some(line))
            }
            Ok(false) => Ok(None),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line() as usize);
                Err(DataError::Value { path: self.path.clone(), line, column: "-".into(), message: format!("malformed CSV: {e}") })
            }
        }
    }

    fn field<'r>(&self, rec: &'r ByteRecord, line: usize, k: usize) -> Result<&'r [u8], DataError> {
        rec.get(self.columns[k]).ok_or_else(|| DataError::Value {
            path: self.path.clone(),
            line,
            column: self.names[k].into(),
            message: format!("the row has only {} fields", rec.len()),
        })
    }

    fn bad(&self, line: usize, k: usize, message: String) -> DataError {
        DataError::Value { path: self.path.clone(), line, column: self.names[k].into(), message }
    }
}

/// Parses a decimal integer; a float with an integral value ("12.0", as
/// pandas writes nullable ints) is accepted too.
pub fn parse_int(b: &[u8]) -> Option<i64> {
    let b = b.trim_ascii();
    let (neg, digits) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        Some(b'+') => (false, &b[1..]),
        _ => (false, b),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    let mut i = 0;
    while i < digits.len() && digits[i].is_ascii_digit() {
        v = v.checked_mul(10)?.checked_add((digits[i] - b'0') as i64)?;
        i += 1;
    }
    if i == 0 {
        return None;
    }
    if i < digits.len() {
        // Only ".0", ".00", ... may follow.
        if digits[i] != b'.' || !digits[i + 1..].iter().all(|&c| c == b'0') {
            return None;
        }
    }
    Some(if neg { -v } else { v })
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 40 {
        format!("{}...", &s[..s.char_indices().nth(40).map_or(s.len(), |(i, _)| i)])
    } else {
        s.into_owned()
    }
}

/// Reads `user_action.csv`.
pub fn read_actions(path: &Path) -> Result<RawActions, DataError> {
    let mut wanted: Vec<&'static str> = vec!["userid", "feedid", "date_", "device"];
    wanted.extend(ACTIONS);
    let mut t = Table::open(path, &wanted)?;
    let mut out = RawActions::default();
    let mut rec = ByteRecord::new();
    while let Some(line) = t.next(&mut rec)? {
        let int = |t: &Table, k: usize| -> Result<i64, DataError> {
            let f = t.field(&rec, line, k)?;
            parse_int(f).ok_or_else(|| t.bad(line, k, format!("expected an integer, found `{}`", show(f))))
        };
        out.userid.push(int(&t, 0)?);
        out.feedid.push(int(&t, 1)?);
        let day = int(&t, 2)?;
        if !(1..=255).contains(&day) {
            return Err(t.bad(line, 2, format!("expected a day number in 1..=255, found {day}")));
        }
        out.day.push(day as u8);
        out.device.push(int(&t, 3)?);
        let mut bits = 0u8;
        for a in 0..ACTIONS.len() {
            let f = t.field(&rec, line, 4 + a)?;
            match f.trim_ascii() {
                b"0" => {}
                b"1" => bits |= 1 << a,
                other => return Err(t.bad(line, 4 + a, format!("expected a 0/1 label, found `{}`", show(other)))),
            }
        }
        out.actions.push(bits);
    }
    if out.userid.is_empty() {
        return Err(DataError::File { path: path.to_path_buf(), message: "no rows after the header".into() });
    }
    Ok(out)
}

/// Reads `feed_info.csv` (the columns the ETL uses).
pub fn read_feeds(path: &Path) -> Result<RawFeeds, DataError> {
    let wanted = ["feedid", "authorid", "videoplayseconds", "bgm_song_id", "bgm_singer_id", "manual_tag_list"];
    let mut t = Table::open(path, &wanted)?;
    let mut out = RawFeeds { tag_offsets: vec![0], ..Default::default() };
    let mut rec = ByteRecord::new();
    let mut seen = std::collections::HashMap::new();
    while let Some(line) = t.next(&mut rec)? {
        let opt_int = |t: &Table, k: usize| -> Result<Option<i64>, DataError> {
            let f = t.field(&rec, line, k)?;
            if f.trim_ascii().is_empty() {
                return Ok(None);
            }
            parse_int(f).map(Some).ok_or_else(|| t.bad(line, k, format!("expected an integer or nothing, found `{}`", show(f))))
        };
        let feedid = opt_int(&t, 0)?.ok_or_else(|| t.bad(line, 0, "missing feedid".into()))?;
        if let Some(first) = seen.insert(feedid, line) {
            return Err(t.bad(line, 0, format!("feedid {feedid} appears twice (first on line {first})")));
        }
        out.feedid.push(feedid);
        out.authorid.push(opt_int(&t, 1)?);
        let secs = t.field(&rec, line, 2)?;
        let secs_v = if secs.trim_ascii().is_empty() {
            0.0
        } else {
            std::str::from_utf8(secs.trim_ascii())
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| t.bad(line, 2, format!("expected a non-negative number of seconds, found `{}`", show(secs))))?
        };
        out.videoplayseconds.push(secs_v);
        out.bgm_song_id.push(opt_int(&t, 3)?);
        out.bgm_singer_id.push(opt_int(&t, 4)?);
        let tags = t.field(&rec, line, 5)?;
        for tag in tags.split(|&c| c == b';').filter(|s| !s.trim_ascii().is_empty()) {
            let v =
                parse_int(tag).ok_or_else(|| t.bad(line, 5, format!("expected ';'-separated integer tag ids, found `{}`", show(tag))))?;
            out.tags.push(v);
        }
        out.tag_offsets.push(out.tags.len());
    }
    if out.feedid.is_empty() {
        return Err(DataError::File { path: path.to_path_buf(), message: "no rows after the header".into() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_int_accepts_integers_and_integral_floats_only() {
        assert_eq!(parse_int(b"42"), Some(42));
        assert_eq!(parse_int(b" -7 "), Some(-7));
        assert_eq!(parse_int(b"12.0"), Some(12));
        assert_eq!(parse_int(b"12.5"), None);
        assert_eq!(parse_int(b"x1"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"99999999999999999999"), None);
    }
}
