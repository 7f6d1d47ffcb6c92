//! A plain table (headers + string cells) rendered as aligned text,
//! Markdown or CSV: the one place that formats tabular CLI output.

use serde::Serialize;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: vec![] }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn widths(&self) -> Vec<usize> {
        let mut w: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < w.len() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
        }
        w
    }

    /// Aligned columns separated by two spaces.
    pub fn to_text(&self) -> String {
        let w = self.widths();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = w.get(i).copied().unwrap_or(0).saturating_sub(c.chars().count());
                s.push_str(c);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad + 2));
                }
            }
            s.trim_end().to_string()
        };
        let mut out = line(&self.headers);
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r));
            out.push('\n');
        }
        out
    }

    /// A GitHub-flavoured Markdown table (cells escaped by [`escape_markdown`]).
    pub fn to_markdown(&self) -> String {
        let esc = |c: &String| escape_markdown(c);
        let mut out = format!("| {} |\n", self.headers.iter().map(esc).collect::<Vec<_>>().join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.headers.len())));
        for r in &self.rows {
            out.push_str(&format!("| {} |\n", r.iter().map(esc).collect::<Vec<_>>().join(" | ")));
        }
        out
    }

    /// RFC 4180 CSV.
    pub fn to_csv(&self) -> String {
        let field = |c: &String| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.clone()
            }
        };
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(self.rows.iter()) {
            out.push_str(&r.iter().map(field).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        out
    }
}

/// Text that renders as itself in GitHub-flavoured Markdown, also inside a
/// table cell: markup characters are backslash-escaped, `<`, `>`, `&`, `"`
/// and `'` become entities (no raw HTML, no way out of an attribute), line
/// breaks become spaces.
pub fn escape_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\\' | '|' | '`' | '*' | '[' | ']' | '~' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let mut t = Table::new(&["a", "bb"]);
        t.push(vec!["x,y".into(), "1|2".into()]);
        assert_eq!(t.to_text(), "a    bb\nx,y  1|2\n");
        assert_eq!(t.to_markdown(), "| a | bb |\n|---|---|\n| x,y | 1\\|2 |\n");
        assert_eq!(t.to_csv(), "a,bb\n\"x,y\",1|2\n");
    }

    #[test]
    fn markdown_escaping() {
        assert_eq!(escape_markdown("a|b <script>&`x`*[y]~\\#\nz"), "a\\|b &lt;script&gt;&amp;\\`x\\`\\*\\[y\\]\\~\\\\\\# z");
        assert_eq!(escape_markdown("read_comment 0.7312 ± 0.0021"), "read_comment 0.7312 ± 0.0021");
        assert_eq!(escape_markdown("\"><img src=x onerror='a()'>"), "&quot;&gt;&lt;img src=x onerror=&#39;a()&#39;&gt;");
    }
}
