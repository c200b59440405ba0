//! The report: one table of figures, printed and written into docs/benchmarks.md.
//!
//! Each [`Row`] is one figure with its floor (the same measurement of the bare async-std
//! program), the ratio to that floor and, where issue 6 sets one, the target and whether it
//! is met. The same rows are rendered as plain text for the terminal and as Markdown for the
//! document.
//!
//! The document keeps what people wrote in it: only the part between [`BEGIN`] and [`END`] is
//! rewritten, so the notes on profiling and changes below the figures survive every run.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

/// Marks the start of the generated part of docs/benchmarks.md.
pub const BEGIN: &str = "<!-- p2p-bench writes from here: do not edit by hand -->";
/// Marks its end.
pub const END: &str = "<!-- p2p-bench writes up to here -->";

/// A measured quantity.
#[derive(Clone, Copy, Debug)]
pub enum Value {
    Time(Duration),
    /// Requests per second.
    Rate(f64),
    /// Resident memory, in KiB as /proc reports it.
    Memory(u64),
    /// How many times something happened.
    Count(u64),
    /// One figure divided by another of the same run.
    Ratio(f64),
    /// How many per message (system calls, wake-ups): an average, so not whole.
    PerMessage(f64),
}

impl Value {
    fn number(self) -> f64 {
        match self {
            Value::Time(d) => d.as_secs_f64(),
            Value::Rate(r) => r,
            Value::Memory(kib) => kib as f64,
            Value::Count(n) => n as f64,
            Value::Ratio(r) => r,
            Value::PerMessage(n) => n,
        }
    }

    /// Times in the unit that suits them, rates to three significant figures, memory in MB
    /// (10^6 bytes, the unit of the targets), ratios to two decimals.
    pub fn show(self) -> String {
        match self {
            Value::Time(d) => {
                let us = d.as_secs_f64() * 1e6;
                match us {
                    us if us < 1_000.0 => format!("{us:.0} µs"),
                    us if us < 10_000.0 => format!("{:.2} ms", us / 1e3),
                    us if us < 1_000_000.0 => format!("{:.1} ms", us / 1e3),
                    us => format!("{:.2} s", us / 1e6),
                }
            }
            Value::Rate(r) => format!("{}/s", thousands(r.round() as u64)),
            Value::Memory(kib) => format!("{:.1} MB", kib as f64 * 1024.0 / 1e6),
            Value::Count(n) => thousands(n),
            Value::Ratio(r) => format!("{r:.2}×"),
            Value::PerMessage(n) if n < 10.0 => format!("{n:.2}"),
            Value::PerMessage(n) => format!("{n:.1}"),
        }
    }
}

/// A figure's target and whether this run met it.
pub struct Target {
    pub text: String,
    pub met: bool,
}

/// One line of the table.
pub struct Row {
    pub figure: String,
    pub value: Value,
    pub floor: Option<Value>,
    pub target: Option<Target>,
}

impl Row {
    /// The figure divided by its floor.
    pub fn ratio(&self) -> Option<f64> {
        self.floor
            .map(|floor| self.value.number() / floor.number())
            .filter(|r| r.is_finite())
    }

    fn cells(&self) -> [String; 6] {
        [
            self.figure.clone(),
            self.value.show(),
            self.floor.map(Value::show).unwrap_or_default(),
            self.ratio().map(|r| format!("{r:.2}×")).unwrap_or_default(),
            self.target
                .as_ref()
                .map(|t| t.text.clone())
                .unwrap_or_default(),
            match &self.target {
                Some(t) if t.met => "yes".to_owned(),
                Some(_) => "NO".to_owned(),
                None => String::new(),
            },
        ]
    }
}

const HEADER: [&str; 6] = ["figure", "measured", "floor", "× floor", "target", "met"];

/// The rows as an aligned plain-text table.
pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows.iter().map(Row::cells).collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            // Numbers read best right-aligned; words left-aligned.
            .map(|(i, (cell, w))| match i {
                1..=3 => format!("{cell:>w$}"),
                _ => format!("{cell:<w$}"),
            })
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = line(&HEADER.map(str::to_owned));
    out.push('\n');
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for row in &cells {
        out.push('\n');
        out.push_str(&line(row));
    }
    out.push('\n');
    out
}

/// The rows as a Markdown table.
pub fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out.push_str("| --- | ---: | ---: | ---: | --- | --- |\n");
    for row in rows {
        out.push_str(&format!("| {} |\n", row.cells().join(" | ")));
    }
    out
}

/// Replaces the generated part of the document at `path` with `generated`, or creates the
/// document with a title if it does not exist yet.
pub fn write_docs(path: &Path, generated: &str) -> anyhow::Result<()> {
    let block = format!("{BEGIN}\n{generated}{END}\n");
    let text = match std::fs::read_to_string(path) {
        Ok(old) => {
            let (Some(begin), Some(end)) = (old.find(BEGIN), old.find(END)) else {
                bail!(
                    "{} exists but lacks the markers {BEGIN:?} and {END:?}; add them where \
                     the figures belong",
                    path.display()
                );
            };
            let rest = &old[end + END.len()..];
            let rest = rest.strip_prefix('\n').unwrap_or(rest);
            format!("{}{block}{rest}", &old[..begin])
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            format!("# Benchmarks\n\n{block}")
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// `12345` as `12,345`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_well() {
        assert_eq!(Value::Time(Duration::from_micros(123)).show(), "123 µs");
        assert_eq!(Value::Time(Duration::from_micros(4_560)).show(), "4.56 ms");
        assert_eq!(Value::Time(Duration::from_micros(45_600)).show(), "45.6 ms");
        assert_eq!(Value::Time(Duration::from_millis(2_500)).show(), "2.50 s");
        assert_eq!(Value::Rate(14_499.6).show(), "14,500/s");
        assert_eq!(Value::Memory(2_700).show(), "2.8 MB");
        assert_eq!(Value::Count(12_345).show(), "12,345");
        assert_eq!(Value::Ratio(1.234).show(), "1.23×");
        assert_eq!(Value::PerMessage(3.456).show(), "3.46");
        assert_eq!(Value::PerMessage(12.34).show(), "12.3");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn only_the_generated_part_is_replaced() {
        let dir = std::env::temp_dir().join(format!("p2p-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("benchmarks.md");
        std::fs::write(
            &path,
            format!("# B\n\nintro\n\n{BEGIN}\nold\n{END}\n\n## Notes\nkept\n"),
        )
        .unwrap();
        write_docs(&path, "new\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("# B\n\nintro\n\n{BEGIN}\nnew\n{END}\n\n## Notes\nkept\n")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
