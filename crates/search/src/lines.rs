//! Finding the lines of a text in which a regexp matches, with the ranges of its matches in each.
//!
//! A match never spans a newline: a line matches when the regexp matches within the line alone,
//! as `rg` reports it. Most regexps are searched over the whole buffer, which the regexp engine
//! does fastest with its own literal prefilters. A regexp with no usable literal prefix but a
//! literal that ends every match (`[a-z]+_[a-z]+\(`) is searched from that suffix instead: each
//! place the suffix occurs is checked by a reverse DFA run back toward its line's start, and the
//! line is skipped as soon as it is decided. The engine does the same internally, but falls back
//! to scanning forward to the next match whenever two suffixes share a run of text (`f(g(`), which
//! on source code means most of the text; here that fallback is bounded by the line.
//!
//! Invariant: the lines found are exactly those in which `regex.find_iter(line)` finds a match,
//! whichever way they were found.

use std::sync::{Arc, Mutex};

use memchr::memmem;
use regex::bytes::Regex;
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

/// A matching line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineMatch {
    /// 0-based line number.
    pub line: usize,
    /// Byte offset of the line's start in the file.
    pub offset: usize,
    /// The line without its newline.
    pub text: Vec<u8>,
    /// Byte ranges of the matches within the line, sorted, not overlapping.
    pub ranges: Vec<(usize, usize)>,
}

/// A regexp, ready to find the lines it matches in.
#[derive(Debug, Clone)]
pub struct LineFinder {
    regex: Regex,
    by_suffix: Option<Arc<BySuffix>>,
}

impl LineFinder {
    /// `pattern` is the regexp `regex` was built from, with the same case sensitivity; both are
    /// compiled in multi-line mode.
    pub fn new(regex: Regex, pattern: &str, case_sensitive: bool) -> LineFinder {
        let by_suffix = BySuffix::new(pattern, case_sensitive).map(Arc::new);
        LineFinder { regex, by_suffix }
    }

    /// Every line of `content` in which the regexp matches, with its ranges.
    pub fn find(&self, content: &[u8]) -> Vec<LineMatch> {
        match &self.by_suffix {
            Some(by_suffix) => self.find_by_suffix(by_suffix, content),
            None => self.find_whole(content),
        }
    }

    fn find_whole(&self, content: &[u8]) -> Vec<LineMatch> {
        let mut out = Vec::new();
        let mut lines = LineCounter::default();
        let mut pos = 0;
        while pos < content.len() {
            let Some(found) = self.regex.find_at(content, pos) else {
                break;
            };
            let start = found.start();
            if start == content.len() && content.last() == Some(&b'\n') {
                // The end of a file that ends with a newline is not a line of its own.
                break;
            }
            let (line_start, line_end) = line_around(content, start, start);
            self.push_if_matches(&mut out, &mut lines, content, line_start.max(pos), line_end);
            pos = line_end + 1;
        }
        out
    }

    fn find_by_suffix(&self, by_suffix: &BySuffix, content: &[u8]) -> Vec<LineMatch> {
        let mut out = Vec::new();
        let mut lines = LineCounter::default();
        let mut cache = by_suffix.cache();
        let mut pos = 0;
        while let Some(found) = by_suffix.suffix.find(&content[pos..]) {
            let hit = pos + found;
            let (line_start, line_end) =
                line_around(content, hit, hit + by_suffix.suffix.needle().len());
            let line = &content[line_start..line_end];
            if by_suffix.line_matches(&mut cache, &self.regex, line, hit - line_start) {
                self.push_if_matches(&mut out, &mut lines, content, line_start, line_end);
            }
            pos = line_end + 1;
            if pos >= content.len() {
                break;
            }
        }
        by_suffix.put_back(cache);
        out
    }

    fn push_if_matches(
        &self,
        out: &mut Vec<LineMatch>,
        lines: &mut LineCounter,
        content: &[u8],
        line_start: usize,
        line_end: usize,
    ) {
        let line = &content[line_start..line_end];
        let ranges: Vec<(usize, usize)> = self
            .regex
            .find_iter(line)
            .map(|m| (m.start(), m.end()))
            .collect();
        if !ranges.is_empty() {
            out.push(LineMatch {
                line: lines.number_at(content, line_start),
                offset: line_start,
                text: line.to_vec(),
                ranges,
            });
        }
    }
}

/// The start and end (before its newline) of the line holding `content[start..end]`.
fn line_around(content: &[u8], start: usize, end: usize) -> (usize, usize) {
    let line_start = memchr::memrchr(b'\n', &content[..start]).map_or(0, |i| i + 1);
    let line_end = memchr::memchr(b'\n', &content[end..]).map_or(content.len(), |i| end + i);
    (line_start, line_end)
}

/// Line numbers of increasing line starts, counting each newline once.
#[derive(Default)]
struct LineCounter {
    counted_to: usize,
    number: usize,
}

impl LineCounter {
    fn number_at(&mut self, content: &[u8], line_start: usize) -> usize {
        self.number += memchr::memchr_iter(b'\n', &content[self.counted_to..line_start]).count();
        self.counted_to = line_start;
        self.number
    }
}

/// Reverse scans may read this many times their line's length (plus a little) before the line
/// is handed to the regexp engine instead: a line with many suffixes is not read over and over.
const SCAN_BUDGET_PER_BYTE: usize = 4;
const SCAN_BUDGET_SLACK: usize = 256;

/// Searching from a literal suffix every match ends with.
#[derive(Debug)]
struct BySuffix {
    suffix: memmem::Finder<'static>,
    /// The regexp reversed, anchored at the suffix's end, reporting any match.
    reverse: DFA,
    caches: Mutex<Vec<Cache>>,
}

impl BySuffix {
    /// `None` when the regexp engine's own prefilter is the better start (a usable literal
    /// prefix), or when no literal ends every match.
    fn new(pattern: &str, case_sensitive: bool) -> Option<BySuffix> {
        let hir = regex_syntax::ParserBuilder::new()
            .case_insensitive(!case_sensitive)
            .multi_line(true)
            .build()
            .parse(pattern)
            .ok()?;
        let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
        let usable_prefix = prefixes.literals().is_some_and(|literals| {
            !literals.is_empty()
                && literals.iter().all(|l| !l.as_bytes().is_empty())
                && (prefixes.min_literal_len() >= Some(2) || literals.len() <= 3)
        });
        if usable_prefix {
            return None;
        }
        let suffixes = Extractor::new().kind(ExtractKind::Suffix).extract(&hir);
        let suffix = suffixes.longest_common_suffix()?;
        if suffix.is_empty() || suffix.contains(&b'\n') {
            return None;
        }
        let reverse = DFA::builder()
            .syntax(
                syntax::Config::new()
                    .case_insensitive(!case_sensitive)
                    .multi_line(true),
            )
            .thompson(thompson::Config::new().reverse(true))
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true),
            )
            .build(pattern)
            .ok()?;
        Some(BySuffix {
            suffix: memmem::Finder::new(suffix).into_owned(),
            reverse,
            caches: Mutex::new(Vec::new()),
        })
    }

    fn cache(&self) -> Cache {
        let reused = self.caches.lock().ok().and_then(|mut caches| caches.pop());
        reused.unwrap_or_else(|| self.reverse.create_cache())
    }

    fn put_back(&self, cache: Cache) {
        if let Ok(mut caches) = self.caches.lock() {
            caches.push(cache);
        }
    }

    /// Whether the regexp matches in `line`, whose first suffix starts at `first_hit`.
    fn line_matches(
        &self,
        cache: &mut Cache,
        regex: &Regex,
        line: &[u8],
        first_hit: usize,
    ) -> bool {
        let mut budget = line.len() * SCAN_BUDGET_PER_BYTE + SCAN_BUDGET_SLACK;
        let mut hit = first_hit;
        loop {
            match self.ends_at(cache, line, hit + self.suffix.needle().len(), &mut budget) {
                Some(true) => return true,
                Some(false) => {}
                // Out of budget, or a byte the DFA cannot decide on: the engine decides.
                None => return regex.is_match(line),
            }
            match self.suffix.find(&line[hit + 1..]) {
                Some(next) => hit += 1 + next,
                None => return false,
            }
        }
    }

    /// Whether a match of the regexp ends at `end` in `line` (`None`: undecided).
    fn ends_at(
        &self,
        cache: &mut Cache,
        line: &[u8],
        end: usize,
        budget: &mut usize,
    ) -> Option<bool> {
        let input = Input::new(line).range(..end).anchored(Anchored::Yes);
        let dfa = &self.reverse;
        let mut state = dfa.start_state_reverse(cache, &input).ok()?;
        let mut at = end;
        while at > 0 {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            at -= 1;
            state = dfa.next_state(cache, state, line[at]).ok()?;
            if state.is_tagged() {
                if state.is_match() {
                    return Some(true);
                }
                if state.is_dead() {
                    return Some(false);
                }
                if state.is_quit() {
                    return None;
                }
            }
        }
        let state = dfa.next_eoi_state(cache, state).ok()?;
        Some(state.is_match())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::bytes::RegexBuilder;

    fn finder(pattern: &str, case_sensitive: bool) -> LineFinder {
        let regex = RegexBuilder::new(pattern)
            .case_insensitive(!case_sensitive)
            .multi_line(true)
            .build()
            .unwrap();
        LineFinder::new(regex, pattern, case_sensitive)
    }

    /// Line numbers with their ranges.
    type Found = Vec<(usize, Vec<(usize, usize)>)>;

    /// The lines and ranges found, and the same found line by line with the regexp alone.
    fn both_ways(finder: &LineFinder, text: &str) -> (Found, Found) {
        let found = finder
            .find(text.as_bytes())
            .into_iter()
            .map(|m| (m.line, m.ranges))
            .collect();
        let expected = text
            .split_terminator('\n')
            .enumerate()
            .filter_map(|(number, line)| {
                let ranges: Vec<_> = finder
                    .regex
                    .find_iter(line.as_bytes())
                    .map(|m| (m.start(), m.end()))
                    .collect();
                (!ranges.is_empty()).then_some((number, ranges))
            })
            .collect();
        (found, expected)
    }

    #[test]
    fn suffix_search_is_chosen_only_without_a_usable_prefix() {
        assert!(finder(r"[a-z]+_[a-z]+\(", true).by_suffix.is_some());
        assert!(finder(r"[a-z]+_[a-z]+\(", false).by_suffix.is_some());
        assert!(finder(r"\w+ = 0;", true).by_suffix.is_some());
        assert!(
            finder(r"fn \w+\(", true).by_suffix.is_none(),
            "a literal prefix"
        );
        assert!(finder(r"[a-z]+", true).by_suffix.is_none(), "no suffix");
        assert!(
            finder(r"\w+\n", true).by_suffix.is_none(),
            "a suffix across lines"
        );
    }

    #[test]
    fn suffix_search_finds_what_the_regexp_finds_line_by_line() {
        let text = "let x = call_this_now(a);\nf(g(h_i_j_k(\nno_match here\n\
                    nested(one_two_three_four(x), five_six_seven_eight(y))\n\
                    x_y(z_w(\nA_B_C_D(\nend_of_the_file(";
        for case_sensitive in [true, false] {
            let finder = finder(r"[a-z]+_[a-z]+_[a-z]+_[a-z]+\(", case_sensitive);
            assert!(finder.by_suffix.is_some());
            let (found, expected) = both_ways(&finder, text);
            assert_eq!(found, expected, "case sensitive: {case_sensitive}");
            assert!(!found.is_empty());
        }
    }

    #[test]
    fn anchors_and_word_boundaries_hold_at_line_edges() {
        let text = "ab = 0;\n  cd = 0;\nx\nef = 0;x\nnaïve = 0;\n";
        for pattern in [r"^\w+ = 0;", r"\b\w+ = 0;$", r"\w+ = 0;"] {
            let finder = finder(pattern, true);
            assert!(finder.by_suffix.is_some(), "{pattern}");
            let (found, expected) = both_ways(&finder, text);
            assert_eq!(found, expected, "{pattern}");
        }
    }

    #[test]
    fn a_line_full_of_suffixes_is_decided_within_its_budget() {
        let line = "a(".repeat(20_000);
        let text = format!("{line}\nxy_zw(\n");
        let finder = finder(r"[a-z]+_[a-z]+\(", true);
        let (found, expected) = both_ways(&finder, &text);
        assert_eq!(found, expected);
        assert_eq!(found.len(), 1);
    }

    #[test]
    fn whole_buffer_search_numbers_lines_and_skips_spanning_matches() {
        let finder = finder(r"a\sb", true);
        let found = finder.find(b"a\nb\na b\n");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].line, found[0].offset), (2, 4));
    }
}
