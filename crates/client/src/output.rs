//! Printing results: `repo:path:line:text` like grep (coloured on a terminal), or one JSON match
//! per line.

use std::io::Write;

use serde_json::Value;

const MAGENTA: &str = "\x1b[35m";
const GREEN: &str = "\x1b[32m";
const BOLD_RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

/// What the search reported at its end.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub printed: usize,
    pub match_count: u64,
    pub duration_ms: u64,
    pub notes: Vec<String>,
}

pub struct Printer<W: Write> {
    out: W,
    json: bool,
    color: bool,
    pub summary: Summary,
}

impl<W: Write> Printer<W> {
    pub fn new(out: W, json: bool, color: bool) -> Self {
        Printer {
            out,
            json,
            color,
            summary: Summary::default(),
        }
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// Handles one stream event.
    pub fn event(&mut self, name: &str, data: Value) -> std::io::Result<()> {
        match name {
            "matches" => {
                for found in data.as_array().into_iter().flatten() {
                    self.found(found)?;
                }
            }
            "progress" if data["done"] == true => {
                self.summary.match_count = data["matchCount"].as_u64().unwrap_or(0);
                self.summary.duration_ms = data["durationMs"].as_u64().unwrap_or(0);
                for skipped in data["skipped"].as_array().into_iter().flatten() {
                    let title = skipped["title"].as_str().unwrap_or("");
                    let suggestion = skipped["suggested"]["queryExpression"]
                        .as_str()
                        .map(|q| format!(" (try {q})"))
                        .unwrap_or_default();
                    self.summary
                        .notes
                        .push(format!("skipped: {title}{suggestion}"));
                }
            }
            "alert" => self.summary.notes.push(format!(
                "{}: {}",
                data["title"].as_str().unwrap_or("alert"),
                data["description"].as_str().unwrap_or("")
            )),
            "error" => self
                .summary
                .notes
                .push(format!("error: {}", data["message"].as_str().unwrap_or(""))),
            _ => {}
        }
        Ok(())
    }

    fn found(&mut self, found: &Value) -> std::io::Result<()> {
        self.summary.printed += 1;
        if self.json {
            return writeln!(self.out, "{found}");
        }
        let repo = found["repository"].as_str().unwrap_or("");
        let path = found["path"].as_str().unwrap_or("");
        match found["type"].as_str() {
            Some("content") => {
                for chunk in found["chunkMatches"].as_array().into_iter().flatten() {
                    let line = chunk["contentStart"]["line"].as_u64().unwrap_or(0) + 1;
                    let content = chunk["content"].as_str().unwrap_or("");
                    let text = self.highlight(content, chunk);
                    writeln!(
                        self.out,
                        "{}:{}:{}:{text}",
                        self.paint(MAGENTA, repo),
                        self.paint(MAGENTA, path),
                        self.paint(GREEN, &line.to_string()),
                    )?;
                }
                Ok(())
            }
            Some("path") => writeln!(
                self.out,
                "{}:{}",
                self.paint(MAGENTA, repo),
                self.paint(MAGENTA, path)
            ),
            _ => writeln!(self.out, "{}", self.paint(MAGENTA, repo)),
        }
    }

    /// The line with its matched ranges painted (ranges are in characters of the line).
    fn highlight(&self, content: &str, chunk: &Value) -> String {
        if !self.color {
            return content.to_string();
        }
        let chars: Vec<char> = content.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        for range in chunk["ranges"].as_array().into_iter().flatten() {
            let start = (range["start"]["column"].as_u64().unwrap_or(0) as usize).min(chars.len());
            let end = (range["end"]["column"].as_u64().unwrap_or(0) as usize).min(chars.len());
            if start < at || end < start {
                continue;
            }
            out.extend(&chars[at..start]);
            out.push_str(BOLD_RED);
            out.extend(&chars[start..end]);
            out.push_str(RESET);
            at = end;
        }
        out.extend(&chars[at..]);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn content_match() -> Value {
        json!([{
            "type": "content", "repository": "r", "path": "a.rs",
            "chunkMatches": [{"content": "let x = 1;", "contentStart": {"offset": 0, "line": 4, "column": 0},
              "ranges": [{"start": {"offset": 4, "line": 4, "column": 4}, "end": {"offset": 5, "line": 4, "column": 5}}]}]
        }])
    }

    #[test]
    fn grep_style_with_one_based_lines() {
        let mut printer = Printer::new(Vec::new(), false, false);
        printer.event("matches", content_match()).unwrap();
        printer
            .event("matches", json!([{"type": "path", "repository": "r", "path": "b.rs"}, {"type": "repo", "repository": "q"}]))
            .unwrap();
        assert_eq!(
            String::from_utf8(printer.out).unwrap(),
            "r:a.rs:5:let x = 1;\nr:b.rs\nq\n"
        );
    }

    #[test]
    fn colours_mark_the_match() {
        let mut printer = Printer::new(Vec::new(), false, true);
        printer.event("matches", content_match()).unwrap();
        let text = String::from_utf8(printer.out).unwrap();
        assert!(text.contains("let \x1b[1;31mx\x1b[0m = 1;"), "{text:?}");
    }

    #[test]
    fn json_prints_one_match_per_line_and_progress_is_summarised() {
        let mut printer = Printer::new(Vec::new(), true, false);
        printer.event("matches", content_match()).unwrap();
        printer
            .event("progress", json!({"done": true, "matchCount": 1, "durationMs": 3, "skipped": [{"title": "result limit hit", "suggested": {"queryExpression": "count:all"}}]}))
            .unwrap();
        let text = String::from_utf8(printer.out).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert_eq!(
            serde_json::from_str::<Value>(text.trim()).unwrap()["path"],
            "a.rs"
        );
        assert_eq!(
            printer.summary.notes,
            ["skipped: result limit hit (try count:all)"]
        );
    }
}
