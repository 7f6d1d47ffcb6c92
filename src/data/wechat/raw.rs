//! Reading the WeChat Channels raw files (`user_action.csv`, `feed_info.csv`)
//! into typed columns, with every bad value reported by file, line and
//! column. Columns are found by header name, so column order and extra
//! columns (play, stay, the text ids) do not matter. A file is read into
//! memory and parsed in pieces cut at line ends, one thread per core (the
//! full-scale action log is 7.3M lines); the pieces are joined in file
//! order and an error names its line in the file, as a one-piece read would.
//! A file without quotes is split into lines and fields directly, and a
//! line of plain unsigned integers is parsed in one pass (module `plain`);
//! quoted files go through the csv crate.

use std::ops::Range;
use std::path::{Path, PathBuf};

use csv::ByteRecord;

use super::{plain, ACTIONS};
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
    fn with_capacity(n: usize) -> Self {
        let v = || Vec::with_capacity(n);
        RawActions { userid: v(), feedid: v(), day: Vec::with_capacity(n), device: v(), actions: Vec::with_capacity(n) }
    }
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

/// A CSV file's header resolved to the positions of the wanted columns.
struct Table {
    path: PathBuf,
    /// Fields of the header: every record must have as many.
    width: usize,
    columns: Vec<usize>,
    names: Vec<&'static str>,
}

/// A CSV file read into memory and cut into pieces at line ends, one per
/// parsing thread: the pieces are parsed at once and joined in file order.
/// A file with a quote character anywhere is one piece (a quoted field may
/// hold a line end).
struct CsvFile {
    table: Table,
    bytes: Vec<u8>,
    /// Byte ranges of the pieces, in file order, covering every record.
    pieces: Vec<Range<usize>>,
    /// No quotes and no carriage return but before a line end: the pieces
    /// are split into lines and fields directly ([`Source::Plain`]).
    plain: bool,
}

/// The records of one piece with the line number of each.
struct Records<'a> {
    table: &'a Table,
    source: Source<'a>,
    /// Line ends in the piece: about its number of records.
    lines: usize,
}

/// Where a piece's records come from.
enum Source<'a> {
    /// The csv crate's reader (quotes, bare carriage returns).
    Csv(csv::Reader<&'a [u8]>),
    /// A piece without quotes: lines split at `\n` (a `\r` before it
    /// dropped) and fields at commas, empty lines skipped, as the csv crate
    /// reads such text; `start` is where the next line starts, `line` its
    /// number in the piece.
    Plain { piece: &'a [u8], start: usize, line: usize },
}

/// One record: its fields from the csv reader or, for a plain piece, the
/// line and the end of each field in it.
struct Row<'a> {
    csv: ByteRecord,
    line: &'a [u8],
    ends: Vec<usize>,
    plain: bool,
}

impl<'a> Row<'a> {
    fn new() -> Self {
        Row { csv: ByteRecord::new(), line: &[], ends: Vec::new(), plain: false }
    }
    fn len(&self) -> usize {
        if self.plain {
            self.ends.len()
        } else {
            self.csv.len()
        }
    }
    fn get(&self, i: usize) -> Option<&[u8]> {
        if !self.plain {
            return self.csv.get(i);
        }
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        Some(&self.line[start..end])
    }
}

/// A piece's result and the number of lines before the piece (a piece's
/// line l is line l + `lines_before` of the file).
struct Parsed<P> {
    part: P,
    lines_before: usize,
}

/// The smallest piece worth a thread of its own.
const MIN_PIECE: usize = 4 << 20;

/// How many pieces a file of `len` bytes is parsed in: one per core (at most 8).
fn default_pieces(len: usize) -> usize {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8);
    threads.min(len / MIN_PIECE).max(1)
}

impl Table {
    fn from_header(path: &Path, header: &[u8], wanted: &[&'static str]) -> Result<Self, DataError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(header);
        let header = reader
            .byte_headers()
            .map_err(|e| DataError::File { path: path.to_path_buf(), message: format!("reading the header: {e}") })?;
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
        Ok(Table { path: path.to_path_buf(), width: names.len(), columns, names: wanted.to_vec() })
    }

    fn field<'r>(&self, rec: &'r Row<'_>, line: usize, k: usize) -> Result<&'r [u8], DataError> {
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

impl CsvFile {
    /// Reads `path` and cuts it into (at most) `pieces` pieces.
    fn read(path: &Path, wanted: &[&'static str], pieces: usize) -> Result<Self, DataError> {
        let bytes = read_file(path, pieces).map_err(|source| DataError::Io { path: path.to_path_buf(), cause: source })?;
        let quoted = memchr::memchr(b'"', &bytes).is_some();
        let body = if quoted { 0 } else { memchr::memchr(b'\n', &bytes).map_or(bytes.len(), |i| i + 1) };
        let table = Table::from_header(path, if quoted { &bytes } else { &bytes[..body] }, wanted)?;
        let k = if quoted { 1 } else { pieces.max(1) };
        let mut cuts = vec![body];
        for i in 1..k {
            let target = (body + (bytes.len() - body) * i / k).max(*cuts.last().unwrap_or(&body));
            let cut = memchr::memchr(b'\n', &bytes[target..]).map_or(bytes.len(), |j| target + j + 1);
            cuts.push(cut);
        }
        cuts.push(bytes.len());
        let pieces = cuts.windows(2).filter(|w| w[1] > w[0] || k == 1).map(|w| w[0]..w[1]).collect();
        let bare_cr = memchr::memchr_iter(b'\r', &bytes).any(|i| bytes.get(i + 1) != Some(&b'\n'));
        Ok(CsvFile { table, bytes, pieces, plain: !quoted && !bare_cr })
    }

    /// Parses every piece with `parse` (at once, one thread each) and
    /// returns their results in file order. An error is the first one in
    /// file order, with its line number in the file.
    fn parse<P: Send>(&self, parse: impl Fn(&mut Records<'_>) -> Result<P, DataError> + Sync) -> Result<Vec<Parsed<P>>, DataError> {
        // A quoted file (one piece) is read with its header; the others without.
        let with_header = self.pieces.len() == 1 && self.pieces[0].start == 0;
        let header_lines = if with_header { 0 } else { 1 };
        let results: Vec<(Result<P, DataError>, usize)> = std::thread::scope(|sc| {
            let handles: Vec<_> = self
                .pieces
                .iter()
                .map(|range| {
                    let parse = &parse;
                    let piece = &self.bytes[range.clone()];
                    sc.spawn(move || {
                        let source = if self.plain {
                            Source::Plain { piece, start: 0, line: 1 }
                        } else {
                            Source::Csv(csv::ReaderBuilder::new().has_headers(with_header).flexible(true).from_reader(piece))
                        };
                        let lines = memchr::memchr_iter(b'\n', piece).count();
                        let mut records = Records { table: &self.table, source, lines };
                        (parse(&mut records), lines)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
        });
        let mut lines_before = header_lines;
        let mut out = Vec::with_capacity(results.len());
        for (result, lines) in results {
            match result {
                Ok(part) => out.push(Parsed { part, lines_before }),
                Err(e) => return Err(shift_line(e, lines_before)),
            }
            lines_before += lines;
        }
        Ok(out)
    }
}

/// The bytes of `path`, read in (at most) `parts` parts at once: the
/// kernel's copies and the page faults of a file of hundreds of MB then
/// share the cores too.
#[cfg(unix)]
fn read_file(path: &Path, parts: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
    let mut bytes = vec![0u8; len];
    let chunk = len.div_ceil(parts.max(1)).max(MIN_PIECE);
    std::thread::scope(|sc| {
        let file = &file;
        let handles: Vec<_> =
            bytes.chunks_mut(chunk).enumerate().map(|(i, part)| sc.spawn(move || file.read_exact_at(part, (i * chunk) as u64))).collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })?;
    Ok(bytes)
}

#[cfg(not(unix))]
fn read_file(path: &Path, _parts: usize) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

/// `e` with its line number moved down by `by` lines.
fn shift_line(e: DataError, by: usize) -> DataError {
    match e {
        DataError::Value { path, line, column, message } => DataError::Value { path, line: line + by, column, message },
        other => other,
    }
}

impl<'a> Records<'a> {
    /// Reads the next record into `rec` and checks its number of fields;
    /// `Ok(None)` at the end. Returns the record's line in its piece.
    fn next(&mut self, rec: &mut Row<'a>) -> Result<Option<usize>, DataError> {
        let line = self.next_unchecked(rec)?;
        if let Some(line) = line {
            self.check(rec, line)?;
        }
        Ok(line)
    }

    /// [`Records::next`] without the fields of a plain line split or
    /// counted (`rec.line` holds the line): for [`super::plain`]'s fast
    /// path, and [`Records::check`] after it if it gives up.
    fn next_unchecked(&mut self, rec: &mut Row<'a>) -> Result<Option<usize>, DataError> {
        let t = self.table;
        match &mut self.source {
            Source::Csv(reader) => match reader.read_byte_record(&mut rec.csv) {
                Ok(true) => Ok(Some(rec.csv.position().map_or(0, |p| p.line() as usize))),
                Ok(false) => Ok(None),
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line() as usize);
                    Err(DataError::Value { path: t.path.clone(), line, column: "-".into(), message: format!("malformed CSV: {e}") })
                }
            },
            Source::Plain { piece, start, line } => loop {
                if *start >= piece.len() {
                    return Ok(None);
                }
                let rest = &piece[*start..];
                let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                *start += end + 1;
                let number = *line;
                *line += 1;
                let text = &rest[..end];
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if !text.is_empty() {
                    rec.plain = true;
                    rec.line = text;
                    return Ok(Some(number));
                }
            },
        }
    }

    /// Splits a plain line into fields and checks the record's number of fields.
    fn check(&self, rec: &mut Row<'a>, line: usize) -> Result<(), DataError> {
        let t = self.table;
        if rec.plain {
            rec.ends.clear();
            rec.ends.extend(rec.line.iter().enumerate().filter(|(_, &b)| b == b',').map(|(i, _)| i));
            rec.ends.push(rec.line.len());
        }
        if rec.len() != t.width {
            let message = format!("malformed CSV: {} fields, the header has {}", rec.len(), t.width);
            return Err(DataError::Value { path: t.path.clone(), line, column: "-".into(), message });
        }
        Ok(())
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
    read_actions_in(path, default_pieces(file_len(path)))
}

/// Reads `feed_info.csv` (the columns the ETL uses).
pub fn read_feeds(path: &Path) -> Result<RawFeeds, DataError> {
    read_feeds_in(path, default_pieces(file_len(path)))
}

fn file_len(path: &Path) -> usize {
    std::fs::metadata(path).map_or(0, |m| m.len() as usize)
}

fn no_rows(path: &Path) -> DataError {
    DataError::File { path: path.to_path_buf(), message: "no rows after the header".into() }
}

/// [`read_actions`] parsing in (at most) `pieces` threads.
fn read_actions_in(path: &Path, pieces: usize) -> Result<RawActions, DataError> {
    let mut wanted: Vec<&'static str> = vec!["userid", "feedid", "date_", "device"];
    wanted.extend(ACTIONS);
    let file = CsvFile::read(path, &wanted, pieces)?;
    let parts = file.parse(parse_actions)?;
    drop(file);
    let mut out = RawActions::with_capacity(parts.iter().map(|p| p.part.rows()).sum());
    for Parsed { part, .. } in parts {
        out.userid.extend(part.userid);
        out.feedid.extend(part.feedid);
        out.day.extend(part.day);
        out.device.extend(part.device);
        out.actions.extend(part.actions);
    }
    if out.userid.is_empty() {
        return Err(no_rows(path));
    }
    Ok(out)
}

fn parse_actions(records: &mut Records<'_>) -> Result<RawActions, DataError> {
    let t = records.table;
    let mut out = RawActions::with_capacity(records.lines + 1);
    let mut rec = Row::new();
    // The fast path's slots: the wanted columns in order; the labels are one digit.
    let mut slot = vec![plain::SKIP; t.width];
    for (k, &c) in t.columns.iter().enumerate() {
        slot[c] = k as u8;
    }
    let max_len: Vec<usize> = (0..t.columns.len()).map(|k| if k >= 4 { 1 } else { 18 }).collect();
    let mut v = vec![0i64; t.columns.len()];
    while let Some(line) = records.next_unchecked(&mut rec)? {
        if rec.plain && plain::parse_digits(rec.line, &slot, &max_len, &mut v) && (1..=255).contains(&v[2]) && v[4..].iter().all(|&b| b <= 1) {
            out.userid.push(v[0]);
            out.feedid.push(v[1]);
            out.day.push(v[2] as u8);
            out.device.push(v[3]);
            out.actions.push(v[4..].iter().enumerate().fold(0u8, |bits, (a, &b)| bits | (b as u8) << a));
            continue;
        }
        records.check(&mut rec, line)?;
        let int = |k: usize| -> Result<i64, DataError> {
            let f = t.field(&rec, line, k)?;
            parse_int(f).ok_or_else(|| t.bad(line, k, format!("expected an integer, found `{}`", show(f))))
        };
        out.userid.push(int(0)?);
        out.feedid.push(int(1)?);
        let day = int(2)?;
        if !(1..=255).contains(&day) {
            return Err(t.bad(line, 2, format!("expected a day number in 1..=255, found {day}")));
        }
        out.day.push(day as u8);
        out.device.push(int(3)?);
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
    Ok(out)
}

/// [`read_feeds`] parsing in (at most) `pieces` threads.
fn read_feeds_in(path: &Path, pieces: usize) -> Result<RawFeeds, DataError> {
    let wanted = ["feedid", "authorid", "videoplayseconds", "bgm_song_id", "bgm_singer_id", "manual_tag_list"];
    let file = CsvFile::read(path, &wanted, pieces)?;
    let parts = file.parse(parse_feeds)?;
    let mut out = RawFeeds { tag_offsets: vec![0], ..Default::default() };
    let mut seen = std::collections::HashMap::new();
    for Parsed { part: (part, lines), lines_before } in parts {
        for (&feedid, &line) in part.feedid.iter().zip(&lines) {
            let line = line + lines_before;
            if let Some(first) = seen.insert(feedid, line) {
                return Err(file.table.bad(line, 0, format!("feedid {feedid} appears twice (first on line {first})")));
            }
        }
        let base = out.tags.len();
        out.feedid.extend(part.feedid);
        out.authorid.extend(part.authorid);
        out.videoplayseconds.extend(part.videoplayseconds);
        out.bgm_song_id.extend(part.bgm_song_id);
        out.bgm_singer_id.extend(part.bgm_singer_id);
        out.tag_offsets.extend(part.tag_offsets[1..].iter().map(|&o| o + base));
        out.tags.extend(part.tags);
    }
    if out.feedid.is_empty() {
        return Err(no_rows(path));
    }
    Ok(out)
}

/// One piece of feed_info.csv and each row's line in the piece.
fn parse_feeds(records: &mut Records<'_>) -> Result<(RawFeeds, Vec<usize>), DataError> {
    let t = records.table;
    let mut out = RawFeeds { tag_offsets: vec![0], ..Default::default() };
    let mut lines = Vec::new();
    let mut rec = Row::new();
    while let Some(line) = records.next(&mut rec)? {
        let opt_int = |k: usize| -> Result<Option<i64>, DataError> {
            let f = t.field(&rec, line, k)?;
            if f.trim_ascii().is_empty() {
                return Ok(None);
            }
            parse_int(f).map(Some).ok_or_else(|| t.bad(line, k, format!("expected an integer or nothing, found `{}`", show(f))))
        };
        let feedid = opt_int(0)?.ok_or_else(|| t.bad(line, 0, "missing feedid".into()))?;
        out.feedid.push(feedid);
        lines.push(line);
        out.authorid.push(opt_int(1)?);
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
        out.bgm_song_id.push(opt_int(3)?);
        out.bgm_singer_id.push(opt_int(4)?);
        let tags = t.field(&rec, line, 5)?;
        for tag in tags.split(|&c| c == b';').filter(|s| !s.trim_ascii().is_empty()) {
            let v =
                parse_int(tag).ok_or_else(|| t.bad(line, 5, format!("expected ';'-separated integer tag ids, found `{}`", show(tag))))?;
            out.tags.push(v);
        }
        out.tag_offsets.push(out.tags.len());
    }
    Ok((out, lines))
}

#[cfg(test)]
#[path = "raw_tests.rs"]
mod tests;
