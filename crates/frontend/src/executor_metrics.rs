//! Executors' own metrics, as they arrive in heartbeats (Prometheus text format), re-exported on
//! the instance's `/metrics` so executors need no inbound network to be scraped.
//!
//! On arrival each sample is labelled `sg_instance="<executor>"` (unless it names one) and
//! `sg_job="sourcegraph-executors"`, as Sourcegraph does; the runtime's `go_*`, `process_*` and
//! `promhttp_*` families are dropped, and so is any line that is not a well-formed sample. At
//! scrape time the families of every active executor are merged, each family's `HELP` and `TYPE`
//! written once, and a family the instance exports itself is left out.

use std::collections::{BTreeMap, HashSet};

/// Families the runtime exports, which say nothing about the executor's work.
const DROPPED_PREFIXES: [&str; 3] = ["go_", "process_", "promhttp_"];

/// The largest number of samples kept from one heartbeat.
const MAX_SAMPLES: usize = 20_000;

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Splits a sample line into name, label text (inside the braces) and the rest.
fn split_sample(line: &str) -> Option<(&str, &str, &str)> {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_name(name) {
        return None;
    }
    let rest = &line[name_end..];
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => {
            // The closing brace is the first one outside a quoted value.
            let mut quoted = false;
            let mut escaped = false;
            let mut end = None;
            for (i, c) in inner.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '}' if !quoted => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end?;
            (&inner[..end], &inner[end + 1..])
        }
        None => ("", rest),
    };
    let value = rest.split_whitespace().next()?;
    let number = matches!(value, "NaN" | "+Inf" | "-Inf") || value.parse::<f64>().is_ok();
    number.then_some((name, labels.trim().trim_end_matches(','), rest))
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What a heartbeat's metrics become before they are stored.
pub fn ingest(executor: &str, text: &str) -> String {
    let executor = escape_label(executor);
    let mut out = String::new();
    let mut samples = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            let (Some("HELP" | "TYPE"), Some(name)) = (words.next(), words.next()) else {
                continue;
            };
            if is_name(name) && !DROPPED_PREFIXES.iter().any(|p| name.starts_with(p)) {
                out.push_str(line);
                out.push('\n');
            }
            continue;
        }
        let Some((name, labels, rest)) = split_sample(line) else {
            continue;
        };
        if DROPPED_PREFIXES.iter().any(|p| name.starts_with(p)) || samples >= MAX_SAMPLES {
            continue;
        }
        samples += 1;
        let mut all = String::from(labels);
        let mut add = |label: &str| {
            if !all.is_empty() {
                all.push(',');
            }
            all.push_str(label);
        };
        if !labels.contains("sg_instance=") {
            add(&format!("sg_instance=\"{executor}\""));
        }
        if !labels.contains("sg_job=") {
            add("sg_job=\"sourcegraph-executors\"");
        }
        out.push_str(&format!("{name}{{{all}}}{rest}\n"));
    }
    out
}

/// The family a sample belongs to, given the families that declared themselves.
fn family_of<'a>(sample: &'a str, declared: &HashSet<String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count", "_total", "_created"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && declared.contains(base)
        {
            return base;
        }
    }
    sample
}

/// The executors' stored metrics merged into one exposition, leaving out `own` families.
pub fn merge(stored: &[String], own: &HashSet<String>) -> String {
    #[derive(Default)]
    struct Family {
        help: Option<String>,
        kind: Option<String>,
        samples: Vec<String>,
    }
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for text in stored {
        let mut declared = HashSet::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                let mut words = comment.splitn(3, ' ');
                let (Some(kind), Some(name)) = (words.next(), words.next()) else {
                    continue;
                };
                declared.insert(name.to_string());
                let family = families.entry(name.to_string()).or_default();
                match kind {
                    "HELP" => family.help.get_or_insert_with(|| line.to_string()),
                    _ => family.kind.get_or_insert_with(|| line.to_string()),
                };
                continue;
            }
            let Some((name, _, _)) = split_sample(line) else {
                continue;
            };
            let family = family_of(name, &declared).to_string();
            families
                .entry(family)
                .or_default()
                .samples
                .push(line.to_string());
        }
    }
    let mut out = String::new();
    for (name, family) in families {
        if own.contains(&name) || family.samples.is_empty() {
            continue;
        }
        for line in family.help.iter().chain(family.kind.iter()) {
            out.push_str(line);
            out.push('\n');
        }
        for sample in family.samples {
            out.push_str(&sample);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXECUTOR: &str = "# HELP src_executor_processor_total Jobs handled.
# TYPE src_executor_processor_total counter
src_executor_processor_total{op=\"handle\",queue=\"codeintel\"} 3
# HELP src_executor_processor_duration_seconds Time to handle.
# TYPE src_executor_processor_duration_seconds histogram
src_executor_processor_duration_seconds_bucket{queue=\"codeintel\",le=\"30\"} 2
src_executor_processor_duration_seconds_bucket{queue=\"codeintel\",le=\"+Inf\"} 3
src_executor_processor_duration_seconds_sum{queue=\"codeintel\"} 12.5
src_executor_processor_duration_seconds_count{queue=\"codeintel\"} 3
# HELP process_cpu_seconds_total CPU.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1.5
src_weird{label=\"has } brace\"} 1
not a sample
src_bad_value 12abc
";

    #[test]
    fn samples_get_the_executors_labels_and_runtime_families_go() {
        let stored = ingest("host-\"1\"", EXECUTOR);
        assert!(stored.contains(
            "src_executor_processor_total{op=\"handle\",queue=\"codeintel\",sg_instance=\"host-\\\"1\\\"\",sg_job=\"sourcegraph-executors\"} 3"
        ), "{stored}");
        assert!(stored.contains("src_weird{label=\"has } brace\",sg_instance="));
        assert!(!stored.contains("process_cpu"));
        assert!(!stored.contains("not a sample") && !stored.contains("src_bad_value"));
    }

    #[test]
    fn executors_merge_into_one_family_each() {
        let stored = [ingest("a", EXECUTOR), ingest("b", EXECUTOR)];
        let own: HashSet<String> = ["src_weird".to_string()].into();
        let merged = merge(&stored, &own);
        assert_eq!(
            merged
                .matches("# TYPE src_executor_processor_duration_seconds histogram")
                .count(),
            1
        );
        assert_eq!(
            merged
                .matches("src_executor_processor_duration_seconds_bucket{")
                .count(),
            4
        );
        assert_eq!(merged.matches("sg_instance=\"b\"").count(), 5);
        assert!(
            !merged.contains("src_weird"),
            "the instance's own family wins"
        );
    }
}
