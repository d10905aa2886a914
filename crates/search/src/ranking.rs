//! The order of results within what is sent together. A file's score adds up:
//!
//! | signal | points |
//! |---|---|
//! | a match is a whole word (non-word characters or line ends on both sides) | +1000 |
//! | a matching line looks like a definition (`fn`, `func`, `def`, `class`, `struct`, `type`, `interface`, `enum`, `trait`, `impl`, `const`, `let`, `var`, `module` before the match) | +600 |
//! | the path matches | +500 |
//! | matches in the file, up to 10 | +10 each |
//! | the path looks like a test (`test`, `spec`) | −300 |
//! | the path is vendored or generated (`vendor/`, `node_modules/`, `third_party/`, `.min.`) | −400 |
//! | each directory level | −2 |
//!
//! Ties keep repository, then path order, so the same search lists results the same way.

use crate::matcher::FileMatch;

const DEFINITION_KEYWORDS: &[&str] = &[
    "fn",
    "func",
    "def",
    "class",
    "struct",
    "type",
    "interface",
    "enum",
    "trait",
    "impl",
    "const",
    "let",
    "var",
    "module",
];

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn whole_word(text: &[u8], start: usize, end: usize) -> bool {
    start < end
        && (start == 0 || !is_word_byte(text[start - 1]))
        && (end >= text.len() || !is_word_byte(text[end]))
}

fn looks_like_definition(text: &[u8], start: usize) -> bool {
    let before = String::from_utf8_lossy(&text[..start]);
    before
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|word| DEFINITION_KEYWORDS.contains(&word))
}

/// The score of a file match (higher first).
pub fn score(file: &FileMatch) -> i64 {
    let mut score = 0i64;
    if file
        .lines
        .iter()
        .any(|l| l.ranges.iter().any(|&(s, e)| whole_word(&l.text, s, e)))
    {
        score += 1000;
    }
    if file.lines.iter().any(|l| {
        l.ranges
            .first()
            .is_some_and(|&(s, _)| looks_like_definition(&l.text, s))
    }) {
        score += 600;
    }
    if !file.path_ranges.is_empty() {
        score += 500;
    }
    score += 10 * file.match_count().min(10) as i64;
    let path = file.path.to_ascii_lowercase();
    if path.contains("test") || path.contains("spec") {
        score -= 300;
    }
    if ["vendor/", "node_modules/", "third_party/", ".min."]
        .iter()
        .any(|v| path.contains(v))
    {
        score -= 400;
    }
    score - 2 * path.matches('/').count() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::LineMatch;

    fn file(path: &str, line: &str, range: (usize, usize)) -> FileMatch {
        FileMatch {
            path: path.into(),
            path_ranges: Vec::new(),
            lines: vec![LineMatch {
                line: 0,
                offset: 0,
                text: line.as_bytes().to_vec(),
                ranges: vec![range],
            }],
        }
    }

    #[test]
    fn definitions_and_whole_words_rank_first_tests_and_vendored_last() {
        let definition = file("src/parse.rs", "pub fn parse() {", (7, 12));
        let call = file("src/main.rs", "    parse();", (4, 9));
        let partial = file("src/main.rs", "    parser();", (4, 9));
        let test = file("tests/parse_test.rs", "pub fn parse() {", (7, 12));
        let vendored = file("vendor/x/parse.rs", "pub fn parse() {", (7, 12));
        assert!(score(&definition) > score(&call));
        assert!(score(&call) > score(&partial));
        assert!(score(&definition) > score(&test));
        assert!(score(&test) > score(&vendored));
    }
}
