//! Where a key sits in a grid file's text, for errors found after parsing
//! (a check across keys, or one that needs the data file): the line of a
//! dotted path such as `data.numeric[2].bins`. Serde reports lines only for
//! errors it finds itself, and none inside the internally tagged `[data]`.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// A TOML document with the byte span of every value.
enum Node {
    Table(Vec<(String, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Leaf,
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

macro_rules! leaf {
    ($($f:ident: $t:ty),*) => {
        $(fn $f<E: serde::de::Error>(self, _: $t) -> Result<Node, E> { Ok(Node::Leaf) })*
    };
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a TOML value")
    }
    leaf!(visit_bool: bool, visit_i64: i64, visit_u64: u64, visit_f64: f64, visit_str: &str, visit_string: String);
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Spanned<Node>>()? {
            out.push((k, v));
        }
        Ok(Node::Table(out))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Spanned<Node>>()? {
            out.push(v);
        }
        Ok(Node::Array(out))
    }
}

/// The 1-based line of `key` (dots between table keys, `[i]` for array
/// elements) in `text`; None when the text does not hold it.
pub fn line_of_key(text: &str, key: &str) -> Option<usize> {
    let root: Node = toml::from_str(text).ok()?;
    let mut node = &root;
    let mut span = None;
    for part in key.split('.') {
        let (name, indices) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        let Node::Table(entries) = node else {
            return None;
        };
        let v = &entries.iter().find(|(k, _)| k == name)?.1;
        span = Some(v.span());
        node = v.get_ref();
        for ix in indices.split(']').filter(|s| !s.is_empty()) {
            let i: usize = ix.trim_start_matches('[').parse().ok()?;
            let Node::Array(items) = node else {
                return None;
            };
            let v = items.get(i)?;
            span = Some(v.span());
            node = v.get_ref();
        }
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
    }
}
