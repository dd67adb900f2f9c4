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
