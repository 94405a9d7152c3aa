//! The report: statistics of samples, how figures are written, the table of rows (value,
//! baseline from the same run, their ratio, target) and BENCHMARKS.md's generated part.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::Opts;

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

impl Row {
    /// A latency row: `value` against `base` (`label` says what it is), value ÷ baseline of
    /// their medians.
    pub fn latency(metric: impl Into<String>, value: &Stats, label: &str, base: &Stats) -> Row {
        Row {
            metric: metric.into(),
            value: lat(value),
            baseline: format!("{label} {}", ms(base.median)),
            ratio: ratio_lat(value.median, base.median),
            target: String::new(),
        }
    }

    /// A rate row: `value` per second against `base` (`label` says what it is).
    pub fn rate(metric: impl Into<String>, value: f64, label: &str, base: f64) -> Row {
        Row {
            metric: metric.into(),
            value: per_s(value),
            baseline: format!("{label} {}", per_s(base)),
            ratio: ratio_rate(value, base),
            target: String::new(),
        }
    }

    pub fn target(self, target: impl Into<String>) -> Row {
        Row {
            target: target.into(),
            ..self
        }
    }
}

#[derive(Default)]
pub struct Table {
    pub sections: Vec<(String, Vec<Row>)>,
    /// "Where the time goes" tables, rendered after the sections.
    pub breakdowns: Vec<String>,
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

    /// A "where the time goes" table: `whole` (what is broken down, its median) and its
    /// parts in seconds, each with its share of the whole. The parts are differences of
    /// medians measured in this run: they add up to the whole, and one below its noise can be
    /// negative, which is shown as it is rather than hidden.
    pub fn breakdown(&mut self, title: &str, whole: (&str, Duration), parts: &[(String, f64)]) {
        let (what, total) = whole;
        let share = |v: f64| 100.0 * v / total.as_secs_f64().max(1e-9);
        let signed = |v: f64| {
            let text = ms(Duration::from_secs_f64(v.abs()));
            if v < 0.0 { format!("−{text}") } else { text }
        };
        let mut out = format!("### where the time goes: {title}\n\n");
        out.push_str("| part | median | share |\n|---|---|---|\n");
        eprintln!("== where the time goes: {title}");
        for (part, v) in parts {
            eprintln!("  {part}: {} ({:.0}%)", signed(*v), share(*v));
            out.push_str(&format!(
                "| {part} | {} | {:.0}% |\n",
                signed(*v),
                share(*v)
            ));
        }
        out.push_str(&format!("| **{what}** | **{}** | 100% |\n\n", ms(total)));
        self.breakdowns.push(out);
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
        for b in &self.breakdowns {
            out.push_str(b);
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

/// The report's head: the command, the machine (with its load when the run started), the
/// build and the sections that ran.
pub fn report_head(o: &Opts, machine: &str, ran: &[&str]) -> String {
    let git = Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "openclaw end-to-end benchmark{}\n\n- command: `{}`\n- machine: {machine}\n- openclaw {} (git {git}), release build\n- sections: {}\n\n",
        if o.quick { " (quick)" } else { "" },
        o.command(),
        env!("CARGO_PKG_VERSION"),
        ran.join(", ")
    )
}

const RUN_BEGIN: &str =
    "<!-- bench:begin (generated by `OPENCLAW_BENCH_UPDATE=1 cargo bench --bench e2e`) -->";
const RUN_END: &str = "<!-- bench:end -->";
const SECTIONS_BEGIN: &str =
    "<!-- bench:sections (generated from the section table in benches/e2e.rs) -->";
const SECTIONS_END: &str = "<!-- bench:sections:end -->";

/// `text` with what stands between `begin` and `end` replaced by `new`; None without both
/// markers in that order.
fn replace_between(text: &str, begin: &str, end: &str, new: &str) -> Option<String> {
    let b = text.find(begin)?;
    let e = b + text[b..].find(end)?;
    Some(format!("{}{begin}{new}{}", &text[..b], &text[e..]))
}

/// Rewrites BENCHMARKS.md's generated parts, leaving the hand-written analysis around them
/// alone: the list of sections (always) and the latest run's report (unless only some
/// sections ran, which would drop the others' figures).
pub fn update_benchmarks_md(report: &str, sections: &[&str], partial: bool) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    let list = sections
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let list =
        format!("\nSections, in the order they run (`peers` only with `--peers`): {list}.\n");
    match replace_between(&text, SECTIONS_BEGIN, SECTIONS_END, &list) {
        Some(t) => text = t,
        None => eprintln!(
            "e2e: {} has no `{SECTIONS_BEGIN}` … `{SECTIONS_END}` markers; its section list is not updated",
            path.display()
        ),
    }
    if partial {
        eprintln!(
            "e2e: OPENCLAW_BENCH_ONLY is set: the latest run in BENCHMARKS.md is left as it is"
        );
    } else {
        match replace_between(&text, RUN_BEGIN, RUN_END, &format!("\n\n{report}\n")) {
            Some(t) => text = t,
            None => eprintln!(
                "e2e: {} has no `{RUN_BEGIN}` … `{RUN_END}` markers; the latest run is not updated",
                path.display()
            ),
        }
    }
    match std::fs::write(&path, text) {
        Ok(()) => eprintln!("e2e: updated {}", path.display()),
        Err(err) => eprintln!("e2e: cannot write {}: {err}", path.display()),
    }
}
