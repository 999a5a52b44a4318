//! Plain-text tables and label/value blocks, aligned for a terminal.

use std::io::{self, Write};

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A table with a header row; columns are separated by two spaces.
#[derive(Debug)]
pub struct Table {
    headers: Vec<String>,
    aligns: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with the given column headers and alignments.
    pub fn new(columns: &[(&str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(h, _)| h.to_string()).collect(),
            aligns: columns.iter().map(|&(_, a)| a).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row; missing cells are blank, extra cells are dropped.
    /// Cells are names and numbers: a cell never spans lines or carries a
    /// control character ([`tierfs::escape::escape_str`]).
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells
            .into_iter()
            .map(|c| match tierfs::escape::escape_str(&c) {
                std::borrow::Cow::Borrowed(_) => c,
                std::borrow::Cow::Owned(e) => e,
            })
            .collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// Writes the header and all rows.
    pub fn write(&self, out: &mut impl Write) -> io::Result<()> {
        let widths = self.widths();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                match self.aligns[i] {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }

    fn widths(&self) -> Vec<usize> {
        (0..self.headers.len())
            .map(|i| {
                std::iter::once(&self.headers)
                    .chain(&self.rows)
                    .map(|row| row[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}

/// Writes `label  value` lines with the values aligned.
pub fn write_fields(out: &mut impl Write, fields: &[(&str, String)]) -> io::Result<()> {
    let width = fields
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(0);
    for (label, value) in fields {
        // Values embed names, escaped where they are formatted; this keeps
        // anything else from reaching the terminal raw.
        let value = tierfs::escape::escape_controls(value);
        writeln!(out, "{label:<width$}  {value}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let mut t = Table::new(&[("STATE", Align::Left), ("FILES", Align::Right)]);
        t.row(vec!["hot".into(), "1,234".into()]);
        t.row(vec!["migrating".into(), "5".into()]);
        let mut out = Vec::new();
        t.write(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "STATE      FILES\nhot        1,234\nmigrating      5\n"
        );
    }

    #[test]
    fn aligns_field_values() {
        let mut out = Vec::new();
        write_fields(&mut out, &[("a", "1".into()), ("long", "2".into())]).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a     1\nlong  2\n");
    }
}
