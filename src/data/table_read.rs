//! Row-by-row reading of a CSV (optionally gzipped) or Parquet file for the
//! table source: the named columns of each row as [`Cell`]s, with the line
//! (CSV) or row (Parquet) number for error messages. It knows nothing of
//! the table source's configuration beyond the file format.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use parquet::file::reader::FileReader;
use parquet::file::serialized_reader::SerializedFileReader;
use parquet::record::Field;
use serde::{Deserialize, Serialize};

use super::DataError;

/// The file format of a table (`[data] format`; by default from the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TableFormat {
    Csv,
    Parquet,
}

/// One cell of a requested column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    Num(f64),
    List(Vec<String>),
}

impl Cell<'_> {
    /// The cell as a categorical key (numbers in their shortest form).
    pub fn key(&self) -> Option<String> {
        match self {
            Cell::Null => None,
            Cell::Text(t) => Some(t.trim().to_string()),
            Cell::Num(x) if x.fract() == 0.0 && x.abs() < 1e15 => Some(format!("{}", *x as i64)),
            Cell::Num(x) => Some(x.to_string()),
            Cell::List(v) => Some(v.join("|")),
        }
    }

    /// The cell as a finite number.
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::Num(x) => Some(*x).filter(|x| x.is_finite()),
            Cell::Text(t) => t.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
            _ => None,
        }
    }

    /// The items of a multi-valued cell.
    pub fn items(&self, separator: &str) -> Vec<String> {
        match self {
            Cell::Null => Vec::new(),
            Cell::List(v) => v.clone(),
            Cell::Text(t) => t.split(separator).map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            Cell::Num(_) => self.key().into_iter().collect(),
        }
    }
}

fn format_of(path: &Path, format: Option<TableFormat>) -> Result<TableFormat, DataError> {
    if let Some(f) = format {
        return Ok(f);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    if name.ends_with(".parquet") || name.ends_with(".pq") {
        Ok(TableFormat::Parquet)
    } else if [".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt", ".txt.gz"].iter().any(|e| name.ends_with(e)) {
        Ok(TableFormat::Csv)
    } else {
        Err(DataError::Config {
            key: "data.format".into(),
            message: format!("cannot tell the format of {} from its name; set format = \"csv\" or \"parquet\"", path.display()),
        })
    }
}

fn missing_column(path: &Path, column: &str, header: &[String]) -> DataError {
    DataError::File { path: path.to_path_buf(), message: format!("no column `{column}` (columns: {})", header.join(", ")) }
}

/// Calls `row(line, cells)` for every data row; `cells[i]` is column `columns[i]`.
pub fn read_rows(
    path: &Path,
    format: Option<TableFormat>,
    delimiter: u8,
    columns: &[String],
    mut row: impl FnMut(usize, &[Cell<'_>]) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let io = |source| DataError::Io { path: path.to_path_buf(), cause: source };
    match format_of(path, format)? {
        TableFormat::Csv => {
            let file = File::open(path).map_err(io)?;
            let gz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz"));
            let input: Box<dyn Read> =
                if gz { Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))) } else { Box::new(BufReader::new(file)) };
            let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).has_headers(true).from_reader(input);
            let header: Vec<String> = reader
                .headers()
                .map_err(|e| DataError::File { path: path.to_path_buf(), message: format!("reading the header: {e}") })?
                .iter()
                .map(|h| h.trim().to_string())
                .collect();
            if header.iter().all(String::is_empty) {
                let what = if header.is_empty() { "the file is empty" } else { "the first line is blank" };
                return Err(DataError::File { path: path.to_path_buf(), message: format!("{what}: expected a header line naming the columns") });
            }
            let idx: Vec<usize> = columns
                .iter()
                .map(|c| header.iter().position(|h| h == c).ok_or_else(|| missing_column(path, c, &header)))
                .collect::<Result<_, _>>()?;
            let mut rec = csv::StringRecord::new();
            loop {
                match reader.read_record(&mut rec) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        let line = e.position().map_or(0, |p| p.line() as usize);
                        return Err(DataError::Value {
                            path: path.to_path_buf(),
                            line,
                            column: "-".into(),
                            message: format!("malformed CSV: {e}"),
                        });
                    }
                }
                let line = rec.position().map_or(0, |p| p.line() as usize);
                let cells: Vec<Cell<'_>> = idx.iter().map(|&i| Cell::Text(Cow::Borrowed(rec.get(i).unwrap_or("")))).collect();
                row(line, &cells)?;
            }
            Ok(())
        }
        TableFormat::Parquet => {
            let file = File::open(path).map_err(io)?;
            let pq =
                |e: parquet::errors::ParquetError| DataError::File { path: path.to_path_buf(), message: format!("reading Parquet: {e}") };
            let reader = SerializedFileReader::new(file).map_err(pq)?;
            let header: Vec<String> =
                reader.metadata().file_metadata().schema_descr().root_schema().get_fields().iter().map(|f| f.name().to_string()).collect();
            for c in columns {
                if !header.contains(c) {
                    return Err(missing_column(path, c, &header));
                }
            }
            let iter = reader.get_row_iter(None).map_err(pq)?;
            let mut cells: Vec<Cell<'_>> = Vec::with_capacity(columns.len());
            for (i, r) in iter.enumerate() {
                let r = r.map_err(pq)?;
                cells.clear();
                cells.resize(columns.len(), Cell::Null);
                for (name, field) in r.get_column_iter() {
                    for (k, c) in columns.iter().enumerate() {
                        if c == name {
                            cells[k] = field_cell(field);
                        }
                    }
                }
                row(i + 1, &cells).map_err(|e| match e {
                    DataError::Value { path, line, column, message } => DataError::Row { path, row: line, column, message },
                    other => other,
                })?;
            }
            Ok(())
        }
    }
}

fn field_cell(f: &Field) -> Cell<'static> {
    match f {
        Field::Null => Cell::Null,
        Field::Bool(b) => Cell::Num(*b as u8 as f64),
        Field::Byte(v) => Cell::Num(*v as f64),
        Field::Short(v) => Cell::Num(*v as f64),
        Field::Int(v) => Cell::Num(*v as f64),
        Field::Long(v) => Cell::Num(*v as f64),
        Field::UByte(v) => Cell::Num(*v as f64),
        Field::UShort(v) => Cell::Num(*v as f64),
        Field::UInt(v) => Cell::Num(*v as f64),
        Field::ULong(v) => Cell::Num(*v as f64),
        Field::Float(v) => Cell::Num(*v as f64),
        Field::Double(v) => Cell::Num(*v),
        Field::Str(s) => Cell::Text(Cow::Owned(s.clone())),
        Field::ListInternal(l) => Cell::List(l.elements().iter().filter_map(|e| field_cell(e).key()).collect()),
        other => Cell::Text(Cow::Owned(other.to_string())),
    }
}
