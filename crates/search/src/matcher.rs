//! Matching one file against a pattern expression.
//!
//! Content matches are line-oriented, as `rg` reports them (see [`crate::lines`]); path matches
//! are the pattern's matches in the path; `and`, `or` and `not` combine whole files.

pub use crate::lines::LineMatch;
use crate::query::{Expr, Scope};

/// What matched in one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileMatch {
    pub path: String,
    /// Byte ranges of matches in the path.
    pub path_ranges: Vec<(usize, usize)>,
    pub lines: Vec<LineMatch>,
}

impl FileMatch {
    /// How many matches this counts as toward `count:`: each range, or one for a bare path.
    pub fn match_count(&self) -> usize {
        let ranges: usize = self.lines.iter().map(|l| l.ranges.len().max(1)).sum();
        ranges.max(1)
    }
}

#[derive(Default)]
struct Hits {
    /// Sorted by line number, one entry per line.
    lines: Vec<LineMatch>,
    path: Vec<(usize, usize)>,
}

impl Hits {
    fn merge(&mut self, other: Hits) {
        self.path.extend(other.path);
        if self.lines.is_empty() {
            self.lines = other.lines;
            return;
        }
        let mine = std::mem::take(&mut self.lines);
        let mut theirs = other.lines.into_iter().peekable();
        for mut line in mine {
            while let Some(earlier) = theirs.next_if(|t| t.line < line.line) {
                self.lines.push(earlier);
            }
            if let Some(same) = theirs.next_if(|t| t.line == line.line) {
                line.ranges.extend(same.ranges);
            }
            self.lines.push(line);
        }
        self.lines.extend(theirs);
    }
}

/// Matches a file. `None` means the file does not match; a query with no pattern matches every
/// file that reached here (its filters already passed).
pub fn match_file(expr: Option<&Expr>, path: &str, content: &[u8]) -> Option<FileMatch> {
    let Some(expr) = expr else {
        return Some(FileMatch {
            path: path.to_string(),
            ..Default::default()
        });
    };
    let (matched, hits) = eval(expr, path, content);
    if !matched {
        return None;
    }
    let mut lines = hits.lines;
    for line in &mut lines {
        normalise(&mut line.ranges);
    }
    let mut path_ranges = hits.path;
    normalise(&mut path_ranges);
    Some(FileMatch {
        path: path.to_string(),
        path_ranges,
        lines,
    })
}

/// Sorts ranges and merges the overlapping ones (several patterns may match the same text).
fn normalise(ranges: &mut Vec<(usize, usize)>) {
    ranges.sort_unstable();
    ranges.dedup_by(|(start, end), last| {
        let overlaps = *start < last.1 || (*start == last.1 && start == end);
        if overlaps {
            last.1 = last.1.max(*end);
        }
        overlaps
    });
}

fn eval(expr: &Expr, path: &str, content: &[u8]) -> (bool, Hits) {
    match expr {
        Expr::Atom(atom) => {
            let mut hits = Hits::default();
            if matches!(atom.scope, Scope::Path | Scope::ContentOrPath) {
                hits.path = atom
                    .regex
                    .find_iter(path.as_bytes())
                    .map(|m| (m.start(), m.end()))
                    .collect();
            }
            if matches!(atom.scope, Scope::Content | Scope::ContentOrPath) {
                hits.lines = atom.lines.find(content);
            }
            let matched = !hits.path.is_empty() || !hits.lines.is_empty();
            (matched, hits)
        }
        Expr::And(children) => {
            let mut all = Hits::default();
            for child in children {
                let (matched, hits) = eval(child, path, content);
                if !matched {
                    return (false, Hits::default());
                }
                all.merge(hits);
            }
            (true, all)
        }
        Expr::Or(children) => {
            let mut any = false;
            let mut all = Hits::default();
            for child in children {
                let (matched, hits) = eval(child, path, content);
                if matched {
                    any = true;
                    all.merge(hits);
                }
            }
            (any, all)
        }
        Expr::Not(inner) => {
            let (matched, _) = eval(inner, path, content);
            (!matched, Hits::default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::{PatternType, plan};

    fn run(query: &str, path: &str, content: &str) -> Option<FileMatch> {
        let plan = plan(query, PatternType::Keyword).unwrap();
        match_file(plan.basics[0].pattern.as_ref(), path, content.as_bytes())
    }

    fn lines(m: &FileMatch) -> Vec<usize> {
        m.lines.iter().map(|l| l.line).collect()
    }

    #[test]
    fn lines_and_ranges_like_rg() {
        let m = run("case:yes foo", "a.txt", "foo foo\nbar\nxfoo\n").unwrap();
        assert_eq!(lines(&m), [0, 2]);
        assert_eq!(m.lines[0].ranges, [(0, 3), (4, 7)]);
        assert_eq!(m.lines[1].offset, 12);
        assert_eq!(m.lines[1].text, b"xfoo");
        assert_eq!(m.match_count(), 3);
    }

    #[test]
    fn matches_never_span_lines() {
        let m = run(r"case:yes /a\sb/", "x", "a\nb\na b\n");
        assert_eq!(lines(&m.unwrap()), [2]);
        assert!(run(r"/a\nb/", "x", "a\nb\n").is_none());
    }

    #[test]
    fn anchors_work_per_line() {
        let m = run("/^fn [a-z]+$/", "x.rs", "fn main\n  fn inner\nfn end").unwrap();
        assert_eq!(lines(&m), [0, 2]);
    }

    #[test]
    fn keyword_terms_match_in_content_or_path() {
        let m = run("main parser", "src/parser.rs", "fn main() {}\n").unwrap();
        assert_eq!(lines(&m), [0]);
        assert_eq!(m.path_ranges, [(4, 10)]);
        assert!(run("main lexer", "src/parser.rs", "fn main() {}\n").is_none());
    }

    #[test]
    fn boolean_operators() {
        let text = "alpha\nbeta\ngamma\n";
        assert_eq!(lines(&run("alpha or gamma", "x", text).unwrap()), [0, 2]);
        assert!(run("alpha and delta", "x", text).is_none());
        assert_eq!(lines(&run("beta not delta", "x", text).unwrap()), [1]);
        assert!(run("beta not alpha", "x", text).is_none());
        assert!(run("-content:alpha", "x", text).is_none());
        assert!(run("-content:delta", "x", text).is_some());
    }

    #[test]
    fn case_is_ignored_by_default() {
        assert_eq!(lines(&run("HELLO", "x", "hello\nHeLLo\n").unwrap()), [0, 1]);
        assert!(run("case:yes HELLO", "x", "hello\n").is_none());
    }

    #[test]
    fn overlapping_ranges_from_several_patterns_merge() {
        let m = run("abc or bcd", "x", "abcd\n").unwrap();
        assert_eq!(m.lines[0].ranges, [(0, 4)]);
        // Lines found by either side come out in order, once each.
        let text = "one\ntwo\none two\ntwo\none\n";
        let m = run("one or two", "x", text).unwrap();
        assert_eq!(lines(&m), [0, 1, 2, 3, 4]);
        assert_eq!(m.lines[2].ranges, [(0, 3), (4, 7)]);
        let m = run("two and (one or two)", "x", text).unwrap();
        assert_eq!(lines(&m), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_end_of_a_file_is_not_an_extra_line() {
        let m = run("case:yes /^$/", "x", "a\n\nb\n").unwrap();
        assert_eq!(lines(&m), [1]);
        assert!(run("case:yes /^$/", "x", "a\r\n").is_none());
    }

    #[test]
    fn no_trailing_newline_and_crlf() {
        let m = run("case:yes end", "x", "a\r\nthe end").unwrap();
        assert_eq!(lines(&m), [1]);
        let m = run("case:yes /a$/", "x", "a\r\nb a\n").unwrap();
        assert_eq!(lines(&m), [1], "like rg, a CR stays part of its line");
    }
}
