//! Columns as kubectl prints them (Go's tabwriter, ported by BurntSushi), with every cell made
//! safe to show: catalog data comes from whoever could write the container, and a control
//! character in it (an escape sequence, a bell) must not reach the terminal raw.

use std::io::Write;

/// Rows under a header, in columns as kubectl aligns them (padding 3).
pub(crate) fn columns<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut out = tabwriter::TabWriter::new(Vec::new()).padding(3);
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for cells in std::iter::once(&header[..]).chain(rows.iter().map(|r| &r[..])) {
        let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "{}", cells.join("\t"));
    }
    let bytes = out.into_inner().unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A cell as it is safe to print: tabs and newlines (which would break the columns) become
/// spaces, other control characters are escaped (`\u{1b}`).
pub(crate) fn cell(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '\t' | '\n' | '\r' => vec![' '],
            c if c.is_control() => c.escape_unicode().collect(),
            c => vec![c],
        })
        .collect()
}

/// Columns for rows that come a batch at a time (a listing that streams): the widths are
/// those of the header and the first batch, and grow when a later cell is wider, so memory
/// holds one batch, never the whole table.
pub(crate) struct Streamed<const N: usize> {
    header: [&'static str; N],
    widths: Option<[usize; N]>,
}

impl<const N: usize> Streamed<N> {
    pub(crate) fn new(header: [&'static str; N]) -> Self {
        Streamed {
            header,
            widths: None,
        }
    }

    /// The text of a batch (with the header before the first).
    pub(crate) fn batch(&mut self, rows: &[[String; N]]) -> String {
        let rows: Vec<[String; N]> = rows
            .iter()
            .map(|r| std::array::from_fn(|i| cell(&r[i])))
            .collect();
        let width = |s: &str| s.chars().count();
        let mut out = String::new();
        let first = self.widths.is_none();
        let widths = self.widths.get_or_insert_with(|| {
            std::array::from_fn(|i| {
                rows.iter()
                    .map(|r| width(&r[i]))
                    .chain(std::iter::once(width(self.header[i])))
                    .max()
                    .unwrap_or(0)
            })
        });
        let mut line = |cells: &[&str]| {
            for (i, c) in cells.iter().enumerate() {
                widths[i] = widths[i].max(width(c));
                if i + 1 == cells.len() {
                    out.push_str(c);
                } else {
                    out.push_str(c);
                    out.push_str(&" ".repeat(widths[i] - width(c) + 3));
                }
            }
            out.push('\n');
        };
        if first {
            line(&self.header);
        }
        for r in &rows {
            let cells: Vec<&str> = r.iter().map(String::as_str).collect();
            line(&cells);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let t = columns(
            &["ID", "STATUS"],
            &[["a".into(), "yanked: \x1b[2J\x07bad\ttab".into()]],
        );
        assert!(!t.contains('\x1b') && !t.contains('\x07'), "{t:?}");
        assert!(t.contains("\\u{1b}[2J\\u{7}bad tab"), "{t}");
    }
}
