//! `vericlip-train corpus`: the stand-in corpus (`crate::data::corpus`) and its report for people.

use crate::data::corpus::CorpusReport;

/// One line per split and label (clips per source), then the skipped files.
pub fn text(report: &CorpusReport) -> String {
    let mut out = String::new();
    for (split, labels) in &report.clips {
        for (label, sources) in labels {
            let total: usize = sources.values().sum();
            out.push_str(&format!(
                "{split:<11} {label:<5} {total:>6}  {}\n",
                sources.iter().map(|(s, n)| format!("{s}={n}")).collect::<Vec<_>>().join(" ")
            ));
        }
    }
    for (split, speakers) in &report.speakers {
        let langs =
            report.languages.get(split).map(|l| l.iter().cloned().collect::<Vec<_>>().join(" ")).unwrap_or_default();
        out.push_str(&format!("{split:<11} real speakers {:>3}, languages {langs}\n", speakers.len()));
    }
    if !report.skipped_files.is_empty() {
        out.push_str(&format!("skipped {} unreadable file(s):\n", report.skipped_files.len()));
        report.skipped_files.iter().for_each(|s| out.push_str(&format!("  {s}\n")));
    }
    out
}
