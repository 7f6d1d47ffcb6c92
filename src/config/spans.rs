//! Where a key sits in a grid file's text, for errors found after parsing
//! (a check across keys, or one that needs the data file): the line of a
//! dotted path such as `data.numeric[2].bins`. Serde reports lines only for
//! errors it finds itself, and none inside the internally tagged `[data]`.

use std::collections::VecDeque;

use toml_edit::{ImDocument, Item, TableLike};

fn line_at(text: &str, offset: usize) -> usize {
    let start = offset.min(text.len());
    text[..start].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The 1-based line of `key` (dots between table keys, `[i]` for array
/// elements) in `text`: the line of the innermost part that has a position
/// (a table made only by deeper headers has none). None when the text does
/// not hold the key.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut item: &Item = doc.as_item();
    let mut span = None;
    for part in key.split('.') {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        item = item.get(name)?;
        span = item.span().or(span);
        for ix in indices.split(']').filter(|s| !s.is_empty()) {
            let i: usize = ix.trim_start_matches('[').parse().ok()?;
            item = item.get(i)?;
            span = item.span().or(span);
        }
    }
    let start = span?.start.min(text.len());
    Some(text[..start].bytes().filter(|&b| b == b'\n').count() + 1)
}

/// The 1-based line of the item at `parts` (table keys, taken literally:
/// a part may contain dots, as an override's quoted key does).
pub fn line_of_parts(text: &str, parts: &[&str]) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut item: &Item = doc.as_item();
    let mut span = None;
    for part in parts {
        item = item.get(part)?;
        span = item.span().or(span);
    }
    let start = span?.start.min(text.len());
    Some(text[..start].bytes().filter(|&b| b == b'\n').count() + 1)
}

/// Where a key named `name` sits under the table at `under` (a dotted key
/// as for [`line_of_key`], or `.` for the top level), looking through
/// nested tables, inline tables and arrays of them, the nearest first: its
/// dotted path below `under` and its line. Serde reports an unknown field
/// of the internally tagged `[data]` at the table, not at the key.
pub fn find_key(text: &str, under: &str, name: &str) -> Option<(String, usize)> {
    let doc = ImDocument::parse(text).ok()?;
    let mut root: &Item = doc.as_item();
    for part in under.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = part.split_once('[').map_or((part, ""), |(k, rest)| (k, rest));
        root = root.get(key)?;
        for ix in indices.split(|c| c == '[' || c == ']').filter(|s| !s.is_empty()) {
            root = root.get(ix.parse::<usize>().ok()?)?;
        }
    }
    let mut queue: VecDeque<(String, &dyn TableLike)> = VecDeque::from([(String::new(), root.as_table_like()?)]);
    while let Some((path, table)) = queue.pop_front() {
        let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
        if let Some((key, item)) = table.get_key_value(name) {
            return Some((join(name), line_at(text, key.span().or(item.span())?.start)));
        }
        for (k, item) in table.iter() {
            if let Some(t) = item.as_table_like() {
                queue.push_back((join(k), t));
            } else if let Some(a) = item.as_array() {
                queue.extend(a.iter().enumerate().filter_map(|(i, v)| Some((format!("{}[{i}]", join(k)), v.as_inline_table()? as &dyn TableLike))));
            } else if let Some(a) = item.as_array_of_tables() {
                queue.extend(a.iter().enumerate().map(|(i, t)| (format!("{}[{i}]", join(k)), t as &dyn TableLike)));
            }
        }
    }
    None
}

/// The first character TOML refuses everywhere, comments and strings
/// included (control characters other than tab and line ends), as
/// (line, column, character). The parser's own message for one can be
/// empty or point elsewhere.
pub fn control_character(text: &str) -> Option<(usize, usize, char)> {
    let (offset, c) = text.char_indices().find(|&(_, c)| (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}')?;
    let line_start = text[..offset].rfind('\n').map_or(0, |p| p + 1);
    Some((line_at(text, offset), text[line_start..offset].chars().count() + 1, c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tables_array_elements_and_inline_keys() {
        let text = "name = \"g\"\n[data]\nkind = \"table\"\nnumeric = [\n  { column = \"a\" },\n\n  { column = \"b\", bins = 1 },\n]\n[train]\nlr = 0.1\n";
        assert_eq!(line_of_key(text, "name"), Some(1));
        assert_eq!(line_of_key(text, "data.kind"), Some(3));
        assert_eq!(line_of_key(text, "data.numeric[0].column"), Some(5));
        assert_eq!(line_of_key(text, "data.numeric[1].bins"), Some(7));
        assert_eq!(line_of_key(text, "train.lr"), Some(10));
        assert_eq!(line_of_key(text, "data.numeric[2].bins"), None);
        assert_eq!(line_of_key(text, "data.missing"), None);
        // A table made only by a deeper header, and an array of tables.
        let nested = "[models.tower]\nhidden = [8]\n[[runs]]\nx = 1\n[[runs]]\nx = 2\n";
        assert_eq!(line_of_key(nested, "models.tower.hidden"), Some(2));
        assert_eq!(line_of_key(nested, "runs[1].x"), Some(6));
    }

    #[test]
    fn finds_a_key_by_name_below_a_table() {
        let text = "[data]\nkind = \"toy\"\nsplit = { train = [8], bogus = 1 }\nnumeric = [\n  { column = \"a\" },\n  { column = \"b\", wrong = 2 },\n]\nrowz = 5\n";
        assert_eq!(find_key(text, "data", "rowz"), Some(("rowz".into(), 8)));
        assert_eq!(find_key(text, "data", "bogus"), Some(("split.bogus".into(), 3)));
        assert_eq!(find_key(text, "data", "wrong"), Some(("numeric[1].wrong".into(), 6)));
        assert_eq!(find_key(text, ".", "bogus"), Some(("data.split.bogus".into(), 3)));
        assert_eq!(find_key(text, "data", "absent"), None);
        assert_eq!(find_key(text, "nothing", "rowz"), None);
    }

    #[test]
    fn control_characters_are_found_with_line_and_column() {
        assert_eq!(control_character("a = 1\t# tab is fine\r\nb = 2\n"), None);
        assert_eq!(control_character("a = 1\n# x\u{0}y\n"), Some((2, 4, '\u{0}')));
        assert_eq!(control_character("é = \"\u{7f}\""), Some((1, 6, '\u{7f}')));
    }
}
