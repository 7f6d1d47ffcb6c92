//! Where a key sits in a grid file's text, for errors found after parsing
//! (a check across keys, or one that needs the data file): the line of a
//! dotted path such as `data.numeric[2].bins`. Serde reports lines only for
//! errors it finds itself, and none inside the internally tagged `[data]`.

use toml_edit::{ImDocument, Item};

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
}
