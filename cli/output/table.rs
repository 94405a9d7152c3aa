//! Rows with a header: aligned columns on a terminal, fitted to its width by cutting the
//! columns that may be cut; tab-separated (same columns, header first, nothing cut) for
//! scripts.

use super::{Paint, Terminal, paint};

/// A column: its title and, if it may be cut to fit the terminal, the width it keeps at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub title: &'static str,
    pub min: Option<usize>,
}

impl Column {
    /// A column shown whole.
    pub const fn fixed(title: &'static str) -> Column {
        Column { title, min: None }
    }

    /// A column that gives up width down to `min` characters (cut values end in `…`).
    pub const fn shrinks(title: &'static str, min: usize) -> Column {
        Column {
            title,
            min: Some(min),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose columns are all shown whole.
    pub fn new(header: Vec<&'static str>) -> Table {
        Table::with_columns(header.into_iter().map(Column::fixed).collect())
    }

    pub fn with_columns(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row.iter().map(|c| cell_text(c)).collect());
    }

    pub fn render(&self, terminal: &Terminal) -> String {
        if terminal.stdout_is_tty {
            self.fitted(terminal.color, terminal.width)
        } else {
            self.tab_separated()
        }
    }

    pub fn tab_separated(&self) -> String {
        let header: Vec<&str> = self.columns.iter().map(|c| c.title).collect();
        let mut out = header.join("\t");
        out.push('\n');
        for row in &self.rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        out
    }

    /// Columns two spaces apart at their natural widths, the last one not padded.
    pub fn aligned(&self, color: bool) -> String {
        self.layout(color, &self.natural_widths())
    }

    /// As `aligned`, with shrinkable columns cut so that lines fit in `width` characters
    /// (as far as their minimums allow).
    pub fn fitted(&self, color: bool, width: usize) -> String {
        let mut widths = self.natural_widths();
        let gaps = 2 * widths.len().saturating_sub(1);
        let mut total: usize = widths.iter().sum::<usize>() + gaps;
        while total > width {
            // The widest column that still has room to give.
            let candidate = self
                .columns
                .iter()
                .zip(&widths)
                .enumerate()
                .filter_map(|(i, (col, w))| col.min.filter(|min| w > min).map(|_| (i, *w)))
                .max_by_key(|(i, w)| (*w, usize::MAX - i));
            let Some((i, _)) = candidate else { break };
            widths[i] -= 1;
            total -= 1;
        }
        self.layout(color, &widths)
    }

    fn natural_widths(&self) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .columns
            .iter()
            .map(|c| c.title.chars().count())
            .collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }

    fn layout(&self, color: bool, widths: &[usize]) -> String {
        let header: Vec<String> = self.columns.iter().map(|c| c.title.to_string()).collect();
        let mut out = String::new();
        out.push_str(&paint(color, Paint::Bold, &pad_row(&header, widths)));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&pad_row(row, widths));
            out.push('\n');
        }
        out
    }
}

/// A table cell must stay on one line and inside its column.
fn cell_text(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// At most `max` characters, ending in `…` when cut.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn pad_row(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let cell = clip(cell, *width);
        line.push_str(&cell);
        if i + 1 < cells.len() {
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    // Empty trailing cells would otherwise leave blanks at the end of the line.
    line.truncate(line.trim_end().len());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(vec!["KEY", "STATUS", "LABEL"]);
        t.push(vec!["agent:main:main".into(), "ok".into(), "daily".into()]);
        t.push(vec!["k2".into(), "running".into(), "with\ttab".into()]);
        t
    }

    #[test]
    fn aligned_table_pads_all_but_the_last_column() {
        let expected = "\
KEY              STATUS   LABEL
agent:main:main  ok       daily
k2               running  with tab
";
        assert_eq!(sample().aligned(false), expected);
    }

    #[test]
    fn tab_separated_table_keeps_header_and_columns() {
        let expected = "KEY\tSTATUS\tLABEL\nagent:main:main\tok\tdaily\nk2\trunning\twith tab\n";
        assert_eq!(sample().tab_separated(), expected);
    }

    #[test]
    fn render_picks_the_form_from_the_terminal() {
        let tty = Terminal {
            stdout_is_tty: true,
            ..Terminal::default()
        };
        assert_eq!(sample().render(&tty), sample().aligned(false));
        assert_eq!(
            sample().render(&Terminal::default()),
            sample().tab_separated()
        );
    }

    #[test]
    fn coloured_header_is_bold() {
        let out = sample().aligned(true);
        assert!(out.starts_with("\x1b[1mKEY"), "{out:?}");
    }

    #[test]
    fn a_wide_table_is_fitted_by_cutting_the_shrinkable_columns() {
        let mut t = Table::with_columns(vec![
            Column::shrinks("KEY", 8),
            Column::fixed("STATUS"),
            Column::shrinks("LABEL", 5),
        ]);
        t.push(vec![
            "agent:main:cron:a-very-long-name".into(),
            "running".into(),
            "the nightly report for the whole team".into(),
        ]);
        let out = t.fitted(false, 40);
        for line in out.lines() {
            assert!(line.chars().count() <= 40, "{line:?} in\n{out}");
        }
        assert!(out.contains("running"), "fixed columns stay whole:\n{out}");
        assert!(out.contains('…'), "{out}");
        // Nothing to cut when it fits.
        assert_eq!(t.fitted(false, 200), t.aligned(false));
        // Minimums hold even when the width cannot be reached.
        let narrow = t.fitted(false, 10);
        assert!(
            narrow
                .lines()
                .nth(1)
                .unwrap()
                .starts_with("agent:m…  running"),
            "{narrow}"
        );
    }

    #[test]
    fn clip_marks_what_it_cut() {
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abc", 4), "abc");
    }
}
