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
            let line_start = line_start.max(pos);
            let number = lines.number_at(content, line_start);
            self.push_if_matches(&mut out, number, content, line_start, line_end);
            pos = line_end + 1;
        }
        out
    }

    fn find_by_suffix(&self, by_suffix: &BySuffix, content: &[u8]) -> Vec<LineMatch> {
        let mut out = Vec::new();
        let mut cache = by_suffix.cache();
        let suffix = by_suffix.suffix.as_slice();
        let key = by_suffix.key;
        let mut places = Places::new(content, suffix[key]);
        // How much reverse scanning the line that starts at `scanned_line` has cost so far.
        let (mut scanned_line, mut spent) = (0usize, 0usize);
        while let Some((at, line, line_start)) = places.next() {
            let Some(start) = at.checked_sub(key) else {
                continue;
            };
            if start < line_start || (suffix.len() > 1 && !content[start..].starts_with(suffix)) {
                continue;
            }
            if line_start != scanned_line {
                (scanned_line, spent) = (line_start, 0);
            }
            let budget = (at + 1 - line_start) * SCAN_BUDGET_PER_BYTE + SCAN_BUDGET_SLACK;
            let decided = by_suffix.ends_at(
                &mut cache,
                &content[line_start..],
                start + suffix.len() - line_start,
                budget,
                &mut spent,
            );
            if decided == Some(false) {
                continue;
            }
            let line_end = memchr::memchr(b'\n', &content[at..]).map_or(content.len(), |i| at + i);
            // Out of budget, or a byte the DFA cannot decide on: the engine decides.
            if decided.is_some() || self.regex.is_match(&content[line_start..line_end]) {
                self.push_if_matches(&mut out, line, content, line_start, line_end);
            }
            if line_end == content.len() {
                break;
            }
            places.skip_past(line_end);
        }
        by_suffix.put_back(cache);
        out
    }

    fn push_if_matches(
        &self,
        out: &mut Vec<LineMatch>,
        line_number: usize,
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
                line: line_number,
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

/// The places of one byte in a text, in order, each with the number and start of its line,
/// found 64 bytes at a time. In code such bytes (a `(`) come every few dozen bytes, where a bit
/// scan per place costs much less than a search call per place, and the newlines of the same
/// 64 bytes give each place's line without searching back.
struct Places<'a> {
    text: &'a [u8],
    byte: u8,
    /// Where the current 64 bytes start, and their newlines and places not yet passed.
    base: usize,
    newlines: u64,
    bytes: u64,
    /// The line of the last place passed: its number and start.
    line: usize,
    line_start: usize,
}

impl<'a> Places<'a> {
    fn new(text: &'a [u8], byte: u8) -> Self {
        let mut places = Places {
            text,
            byte,
            base: 0,
            newlines: 0,
            bytes: 0,
            line: 0,
            line_start: 0,
        };
        places.load(0);
        places
    }

    #[inline]
    fn load(&mut self, base: usize) {
        self.base = base;
        let chunk = &self.text[base.min(self.text.len())..(base + 64).min(self.text.len())];
        self.newlines = places_of(chunk, b'\n');
        self.bytes = places_of(chunk, self.byte);
    }

    /// Passes the newlines of the current 64 bytes in `passed`.
    #[inline]
    fn pass_newlines(&mut self, passed: u64) {
        if passed != 0 {
            self.line += passed.count_ones() as usize;
            self.line_start = self.base + 64 - passed.leading_zeros() as usize;
            self.newlines &= !passed;
        }
    }

    /// The next place, with its line's number and start.
    #[inline]
    fn next(&mut self) -> Option<(usize, usize, usize)> {
        loop {
            if self.bytes != 0 {
                let offset = self.bytes.trailing_zeros();
                self.bytes &= self.bytes - 1;
                self.pass_newlines(self.newlines & ((1u64 << offset) - 1));
                return Some((self.base + offset as usize, self.line, self.line_start));
            }
            self.pass_newlines(self.newlines);
            if self.base + 64 >= self.text.len() {
                return None;
            }
            self.load(self.base + 64);
        }
    }

    /// Goes on after `newline`, the end of the current line.
    fn skip_past(&mut self, newline: usize) {
        let next = newline + 1;
        if next >= self.base + 64 {
            self.load(next - next % 64);
        }
        // `next` is within the current 64 bytes.
        let passed = (1u64 << (next - self.base)) - 1;
        self.newlines &= !passed;
        self.bytes &= !passed;
        (self.line, self.line_start) = (self.line + 1, next);
    }
}

/// A bit for each byte of `chunk` (at most 64) that equals `byte`.
fn places_of(chunk: &[u8], byte: u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if let Ok(block) = <&[u8; 64]>::try_from(chunk) {
        return places_in_block(block, byte);
    }
    chunk
        .iter()
        .enumerate()
        .fold(0, |bits, (i, &b)| bits | (u64::from(b == byte) << i))
}

/// [`places_of`] a whole block, sixteen bytes per vector compare.
#[cfg(target_arch = "x86_64")]
fn places_in_block(block: &[u8; 64], byte: u8) -> u64 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of every x86_64 target, and the 16 bytes each load reads are
    // within `block` (i < 4); an unaligned load may read them at any address.
    unsafe {
        let wanted = _mm_set1_epi8(byte as i8);
        (0..4).fold(0, |bits, i| {
            let bytes = _mm_loadu_si128(block.as_ptr().add(i * 16).cast::<__m128i>());
            let found = _mm_movemask_epi8(_mm_cmpeq_epi8(bytes, wanted)) as u16;
            bits | (u64::from(found) << (i * 16))
        })
    }
}

/// How common a byte is in source code, roughly: spaces, then letters and digits, then the
/// punctuation of most statements. A suffix is looked for by its least common byte.
fn commonness(byte: u8) -> u8 {
    match byte {
        b' ' | b'\t' => 4,
        b'a'..=b'z' | b'0'..=b'9' => 3,
        b'A'..=b'Z' | b'_' | b'.' | b',' | b';' | b'(' | b')' | b'=' => 2,
        _ => 1,
    }
}

/// Reverse scans may read this many times their line's length (plus a little) before the line
/// is handed to the regexp engine instead: a line with many suffixes is not read over and over.
const SCAN_BUDGET_PER_BYTE: usize = 4;
const SCAN_BUDGET_SLACK: usize = 256;

/// Searching from a literal suffix every match ends with.
#[derive(Debug)]
struct BySuffix {
    suffix: Vec<u8>,
    /// Which byte of the suffix is looked for: the one likely rarest in code.
    key: usize,
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
        let key = (0..suffix.len())
            .min_by_key(|&i| commonness(suffix[i]))
            .unwrap_or(0);
        Some(BySuffix {
            suffix: suffix.to_vec(),
            key,
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

    /// Whether a match of the regexp ends at `end` in `line`, which starts a line; `None`:
    /// undecided by the DFA, or before the bytes read in the line (`spent`, counted on) reach
    /// `budget`.
    fn ends_at(
        &self,
        cache: &mut Cache,
        line: &[u8],
        end: usize,
        budget: usize,
        spent: &mut usize,
    ) -> Option<bool> {
        let input = Input::new(line).range(..end).anchored(Anchored::Yes);
        let dfa = &self.reverse;
        let mut state = dfa.start_state_reverse(cache, &input).ok()?;
        let mut at = end;
        while at > 0 {
            if *spent >= budget {
                return None;
            }
            *spent += 1;
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
    fn suffix_search_agrees_with_the_regexp_on_lines_of_every_length() {
        // Lines from empty to several hundred bytes, so that suffixes, line starts and line
        // ends fall at every offset of the 64-byte blocks the search reads.
        let mut rng = fastrand::Rng::with_seed(7);
        let words = [
            "a_b", "c_d_e(", "(", "x", " ", "f_g_h_i(", " = 0;", "é", "\t", "_(",
        ];
        let mut text: String = (0..3000)
            .map(|_| {
                let mut line: String = (0..rng.usize(0..40))
                    .map(|_| words[rng.usize(..words.len())])
                    .collect();
                line.push('\n');
                line
            })
            .collect();
        text.push_str("last_line_without_a_newline(");
        for pattern in [r"[a-z]+_[a-z]+_[a-z]+\(", r"\w+ = 0;", r"\w_\("] {
            for case_sensitive in [true, false] {
                let finder = finder(pattern, case_sensitive);
                assert!(finder.by_suffix.is_some(), "{pattern}");
                let (found, expected) = both_ways(&finder, &text);
                assert_eq!(
                    found, expected,
                    "{pattern}, case sensitive: {case_sensitive}"
                );
                assert!(found.len() > 100, "{pattern}");
            }
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
