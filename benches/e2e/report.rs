//! The report: statistics of samples, how figures are written, the table of rows (value,
//! baseline from the same run, their ratio, target) and BENCHMARKS.md's generated part.

use std::path::Path;
use std::time::Duration;

pub struct Stats {
    pub n: usize,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

pub fn stats(samples: &[Duration]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut samples = samples.to_vec();
    samples.sort();
    let n = samples.len();
    let p99_idx = ((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1;
    Stats {
        n,
        median: samples[n / 2],
        p99: samples[p99_idx],
        max: samples[n - 1],
    }
}

pub fn ms(d: Duration) -> String {
    let v = d.as_secs_f64() * 1000.0;
    if v < 1.0 {
        format!("{:.0} µs", v * 1000.0)
    } else if v < 100.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

pub fn lat(s: &Stats) -> String {
    format!(
        "median {}, p99 {} (n={}, max {})",
        ms(s.median),
        ms(s.p99),
        s.n,
        ms(s.max)
    )
}

pub fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

pub fn per_s(v: f64) -> String {
    if v >= 100.0 {
        // thousands separated, as in the targets
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{out}/s")
    } else {
        format!("{v:.1}/s")
    }
}

/// value ÷ baseline for latencies, saying "N× faster" when below 1.
pub fn ratio_lat(value: Duration, base: Duration) -> String {
    let r = value.as_secs_f64() / base.as_secs_f64().max(1e-9);
    if r < 1.0 {
        format!("{r:.2}× ({:.1}× faster)", 1.0 / r)
    } else {
        format!("{r:.2}×")
    }
}

/// value ÷ baseline for rates.
pub fn ratio_rate(value: f64, base: f64) -> String {
    format!("{:.2}×", value / base.max(1e-9))
}

pub fn verdict(target: &str, met: bool) -> String {
    format!("{target}: {}", if met { "met" } else { "**missed**" })
}

#[derive(Default)]
pub struct Row {
    pub metric: String,
    pub value: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
}

#[derive(Default)]
pub struct Table {
    pub sections: Vec<(String, Vec<Row>)>,
    pub notes: Vec<String>,
}

impl Table {
    pub fn section(&mut self, name: &str) {
        eprintln!("== {name}");
        self.sections.push((name.to_string(), Vec::new()));
    }

    pub fn push(&mut self, row: Row) {
        eprintln!(
            "  {}: {}{}{}{}",
            row.metric,
            row.value,
            if row.baseline.is_empty() {
                String::new()
            } else {
                format!(" | baseline {}", row.baseline)
            },
            if row.ratio.is_empty() {
                String::new()
            } else {
                format!(" | {}", row.ratio)
            },
            if row.target.is_empty() {
                String::new()
            } else {
                format!(" | {}", row.target)
            }
        );
        self.sections
            .last_mut()
            .expect("a section first")
            .1
            .push(row);
    }

    pub fn add(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.push(Row {
            metric: metric.into(),
            value: value.into(),
            ..Row::default()
        });
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("  note: {note}");
        self.notes.push(note);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, rows) in &self.sections {
            if rows.is_empty() {
                continue;
            }
            out.push_str(&format!("### {name}\n\n"));
            out.push_str("| metric | value | baseline (same run) | value ÷ baseline | target |\n");
            out.push_str("|---|---|---|---|---|\n");
            for r in rows {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    r.metric, r.value, r.baseline, r.ratio, r.target
                ));
            }
            out.push('\n');
        }
        if !self.notes.is_empty() {
            out.push_str("Notes:\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }
}

pub fn errors_text(errors: usize) -> String {
    if errors == 0 {
        String::new()
    } else {
        format!(", **{errors} errors**")
    }
}

/// Replaces the generated part of BENCHMARKS.md (between its two markers) with this run's
/// report, leaving the hand-written analysis around it alone.
pub fn update_benchmarks_md(report: &str) {
    const BEGIN: &str =
        "<!-- bench:begin (generated by `OPENCLAW_BENCH_UPDATE=1 cargo bench --bench e2e`) -->";
    const END: &str = "<!-- bench:end -->";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let span = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b < e => Some((b, e)),
        _ => None,
    };
    let Some((b, e)) = span else {
        eprintln!(
            "e2e: {} has no `{BEGIN}` … `{END}` markers; not updated",
            path.display()
        );
        return;
    };
    let updated = format!("{}{BEGIN}\n\n{report}\n{}", &text[..b], &text[e..]);
    match std::fs::write(&path, updated) {
        Ok(()) => eprintln!("e2e: updated {}", path.display()),
        Err(err) => eprintln!("e2e: cannot write {}: {err}", path.display()),
    }
}
