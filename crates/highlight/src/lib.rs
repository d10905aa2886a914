//! Syntax highlighting of source files into HTML.
//!
//! Owns: choosing a file's language (by file name, extension, then first line such as a shebang),
//! turning its text into one HTML fragment per line with short CSS classes (`c` comment, `s`
//! string, `k` keyword, ... see [`CLASSES`]), and the style sheet for those classes in light and
//! dark themes. Grammars are syntect's default set.
//!
//! Invariants: the work per file is bounded. A file over [`Limits::max_bytes`] is not
//! highlighted, a line over [`Limits::max_line_bytes`] is shown plain, and lines past
//! [`Limits::time_budget`] are shown plain, each with the reason reported; text is always
//! HTML-escaped, so highlighted output can be put into a page as it is. The output never depends
//! on how the work was split: a large file is highlighted in chunks on several threads from a
//! guessed parser state, and any chunk whose guess proves wrong is highlighted again from the
//! true state.

use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use syntect::highlighting::{
    Color, HighlightIterator, HighlightState, Highlighter as ThemeHighlighter, ScopeSelectors,
    StyleModifier, Theme, ThemeItem, ThemeSettings,
};
use syntect::parsing::{ParseState, ScopeStack, SyntaxReference, SyntaxSet};

/// How much work one file may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Larger files are shown as plain text.
    pub max_bytes: usize,
    /// Longer lines are shown as plain text (minified code would otherwise cost seconds).
    pub max_line_bytes: usize,
    /// Lines not reached by then are shown as plain text.
    pub time_budget: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 2 * 1024 * 1024,
            max_line_bytes: 2_000,
            time_budget: Duration::from_secs(2),
        }
    }
}

/// Why some or all of a file is plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlainReason {
    /// No grammar fits the file.
    UnknownLanguage,
    TooLarge {
        bytes: usize,
        limit: usize,
    },
    /// Lines this long were left plain.
    LongLines {
        count: usize,
        limit: usize,
    },
    /// The time budget ran out at this 0-based line; it and the lines after are plain.
    TimedOut {
        line: usize,
    },
    /// The grammar failed at this 0-based line; it and the lines after are plain.
    GrammarError {
        line: usize,
    },
}

impl std::fmt::Display for PlainReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlainReason::UnknownLanguage => write!(f, "no syntax highlighting for this language"),
            PlainReason::TooLarge { bytes, limit } => write!(
                f,
                "file too large to highlight ({bytes} bytes; the limit is {limit})"
            ),
            PlainReason::LongLines { count, limit } => write!(
                f,
                "{count} line(s) longer than {limit} bytes shown without highlighting"
            ),
            PlainReason::TimedOut { line } => write!(
                f,
                "highlighting took too long; shown plain from line {}",
                line + 1
            ),
            PlainReason::GrammarError { line } => {
                write!(f, "the grammar failed; shown plain from line {}", line + 1)
            }
        }
    }
}

/// A highlighted file: one HTML fragment per line, without the line break.
#[derive(Debug, Clone)]
pub struct Highlighted {
    /// The grammar's name, when one was used.
    pub language: Option<String>,
    pub lines: Vec<String>,
    pub plain: Option<PlainReason>,
}

/// The CSS classes a token can get, and the scopes that give them (the most specific scope
/// selector wins, as in a theme).
pub const CLASSES: &[(&str, &str)] = &[
    ("c", "comment, punctuation.definition.comment"),
    (
        "s",
        "string, constant.character, punctuation.definition.string",
    ),
    ("n", "constant, constant.numeric, constant.language"),
    (
        "k",
        "keyword, storage, storage.type, storage.modifier, variable.language",
    ),
    ("o", "keyword.operator"),
    (
        "f",
        "entity.name.function, support.function, variable.function, meta.function-call.identifier",
    ),
    (
        "t",
        "entity.name.type, entity.name.class, entity.name.struct, entity.name.enum, entity.name.trait, entity.name.interface, support.type, support.class, entity.other.inherited-class",
    ),
    (
        "m",
        "entity.name.macro, support.macro, support.function.macro, meta.preprocessor, keyword.other.preprocessor",
    ),
    ("g", "entity.name.tag, entity.name.section, markup.heading"),
    (
        "a",
        "entity.other.attribute-name, meta.attribute, meta.annotation, variable.annotation",
    ),
    ("v", "variable.parameter, variable.other.member"),
    ("i", "markup.inserted"),
    ("d", "markup.deleted"),
    ("e", "invalid"),
];

/// The style sheet for [`CLASSES`], light by default and dark when the system prefers it; rules
/// apply inside an element with class `hl`.
pub const CSS: &str = "
.hl .c { color: #6a737d; font-style: italic; }
.hl .s { color: #0a6b2c; }
.hl .n { color: #0550ae; }
.hl .k { color: #a0107b; }
.hl .o { color: #8f3f00; }
.hl .f { color: #6f42c1; }
.hl .t { color: #005c5c; }
.hl .m { color: #8f3f00; }
.hl .g { color: #116329; font-weight: 600; }
.hl .a { color: #7a5200; }
.hl .v { color: #953800; }
.hl .i { color: #116329; background: #e6ffec; }
.hl .d { color: #82071e; background: #ffebe9; }
.hl .e { color: #b42318; text-decoration: underline wavy; }
@media (prefers-color-scheme: dark) {
.hl .c { color: #8b949e; }
.hl .s { color: #7ee787; }
.hl .n { color: #79c0ff; }
.hl .k { color: #ff7bca; }
.hl .o { color: #ffa657; }
.hl .f { color: #d2a8ff; }
.hl .t { color: #56d4dd; }
.hl .m { color: #ffa657; }
.hl .g { color: #7ee787; }
.hl .a { color: #e3b341; }
.hl .v { color: #ffa657; }
.hl .i { color: #aff5b4; background: #033a16; }
.hl .d { color: #ffdcd7; background: #67060c; }
.hl .e { color: #ff8a80; }
}
";

/// Extensions syntect's default grammars lack, read with the closest grammar they have.
const EXTENSION_ALIASES: &[(&str, &str)] = &[
    ("ts", "js"),
    ("tsx", "js"),
    ("mts", "js"),
    ("cts", "js"),
    ("jsx", "js"),
    ("mjs", "js"),
    ("cjs", "js"),
    ("jsonc", "json"),
    ("kt", "java"),
    ("kts", "java"),
    ("h", "c"),
];

/// Files known by their whole name.
const FILE_NAMES: &[(&str, &str)] = &[
    ("Makefile", "Makefile"),
    ("GNUmakefile", "Makefile"),
    ("makefile", "Makefile"),
    ("Gemfile", "Ruby"),
    ("Rakefile", "Ruby"),
    ("BUILD", "Python"),
    ("BUILD.bazel", "Python"),
    ("WORKSPACE", "Python"),
    ("CMakeLists.txt", "Makefile"),
    (".bashrc", "Bourne Again Shell (bash)"),
    (".profile", "Bourne Again Shell (bash)"),
];

/// Below this many lines a file is highlighted on one thread.
const PARALLEL_MIN_LINES: usize = 1_500;

/// How far past an even split to look for a line that likely starts at the top level.
const SPLIT_SEARCH_LINES: usize = 300;

/// Highlights files. Cheap to share between threads; grammars are loaded once.
pub struct Highlighter {
    syntaxes: SyntaxSet,
    theme: Theme,
    limits: Limits,
}

impl Default for Highlighter {
    fn default() -> Self {
        Highlighter::new(Limits::default())
    }
}

/// The parser and scope state between two lines.
#[derive(Clone, PartialEq, Eq)]
struct LineState {
    parse: ParseState,
    highlight: HighlightState,
}

/// The output of highlighting a run of lines.
struct Chunk {
    lines: Vec<String>,
    long_lines: usize,
    /// Where and why highlighting stopped, if it did.
    stopped: Option<PlainReason>,
}

impl Highlighter {
    pub fn new(limits: Limits) -> Self {
        Highlighter {
            syntaxes: SyntaxSet::load_defaults_newlines(),
            theme: class_theme(),
            limits,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The grammar for a file: by its name, its extension, then its first line (shebangs, mode
    /// lines).
    fn syntax_for(&self, path: &str, code: &str) -> Option<&SyntaxReference> {
        let name = path.rsplit('/').next().unwrap_or(path);
        if let Some((_, grammar)) = FILE_NAMES.iter().find(|(n, _)| *n == name)
            && let Some(syntax) = self.syntaxes.find_syntax_by_name(grammar)
        {
            return Some(syntax);
        }
        if let Some((_, extension)) = name.rsplit_once('.') {
            let extension = EXTENSION_ALIASES
                .iter()
                .find(|(alias, _)| alias.eq_ignore_ascii_case(extension))
                .map_or(extension, |(_, target)| target);
            if let Some(syntax) = self.syntaxes.find_syntax_by_extension(extension) {
                return Some(syntax);
            }
            let lower = extension.to_ascii_lowercase();
            if let Some(syntax) = self.syntaxes.find_syntax_by_extension(&lower) {
                return Some(syntax);
            }
        }
        let first_line = code.lines().next().unwrap_or("");
        self.syntaxes
            .find_syntax_by_first_line(&first_line[..floor_char_boundary(first_line, 512)])
    }

    /// The name of the grammar a file would be highlighted with.
    pub fn language(&self, path: &str, code: &str) -> Option<String> {
        self.syntax_for(path, code).map(|s| s.name.clone())
    }

    /// Highlights a file. Never fails: what cannot be highlighted is escaped plain text, and
    /// `plain` says why.
    pub fn highlight(&self, path: &str, code: &str) -> Highlighted {
        self.highlight_in_parts(path, code).0
    }

    /// Highlights a file, and says how many parts had to be highlighted again because the
    /// part before them did not end where their helper guessed.
    fn highlight_in_parts(&self, path: &str, code: &str) -> (Highlighted, usize) {
        let lines: Vec<&str> = split_lines(code);
        if code.len() > self.limits.max_bytes {
            let plain = Highlighted {
                language: None,
                lines: lines.iter().map(|l| escape_line(l)).collect(),
                plain: Some(PlainReason::TooLarge {
                    bytes: code.len(),
                    limit: self.limits.max_bytes,
                }),
            };
            return (plain, 0);
        }
        let Some(syntax) = self.syntax_for(path, code) else {
            let plain = Highlighted {
                language: None,
                lines: lines.iter().map(|l| escape_line(l)).collect(),
                plain: Some(PlainReason::UnknownLanguage),
            };
            return (plain, 0);
        };
        let deadline = Instant::now() + self.limits.time_budget;
        let bounds = chunk_bounds(&lines);
        let parts: Vec<&[&str]> = bounds.windows(2).map(|w| &lines[w[0]..w[1]]).collect();
        let mut state = self.initial_state(syntax);
        let resting = self.resting_state(syntax);
        let mut redone = 0;
        let mut out = Highlighted {
            language: Some(syntax.name.clone()),
            lines: Vec::with_capacity(lines.len()),
            plain: None,
        };
        let mut long_lines = 0;
        // Parser states cannot cross threads, so this thread highlights the first part and
        // helpers the others, each guessing that its part starts at rest (the top level, past
        // the first line). This thread then takes a helper's lines when the part before really
        // ended at rest, and otherwise highlights the part itself from the true state.
        std::thread::scope(|scope| {
            let helpers: Vec<_> = parts
                .iter()
                .skip(1)
                .map(|part| {
                    scope.spawn(move || {
                        let mut guess = self.resting_state(syntax);
                        let chunk = self.highlight_chunk(part, &mut guess, deadline);
                        let ends_at_rest = guess == self.resting_state(syntax);
                        (chunk, ends_at_rest)
                    })
                })
                .collect();
            let mut helpers = helpers.into_iter();
            for (index, part) in parts.iter().enumerate() {
                let helper = if index == 0 { None } else { helpers.next() };
                let chunk = match helper.map(|h| h.join()) {
                    Some(Ok((chunk, ends_at_rest))) if state == resting => {
                        if ends_at_rest || index + 1 == parts.len() {
                            state = resting.clone();
                            chunk
                        } else {
                            // Right, but the state it ends in is needed for the next part.
                            self.highlight_chunk(part, &mut state, deadline)
                        }
                    }
                    Some(_) => {
                        redone += 1;
                        self.highlight_chunk(part, &mut state, deadline)
                    }
                    None => self.highlight_chunk(part, &mut state, deadline),
                };
                long_lines += chunk.long_lines;
                out.lines.extend(chunk.lines);
                if let Some(reason) = chunk.stopped {
                    let offset = bounds[index];
                    out.plain = Some(match reason {
                        PlainReason::TimedOut { line } => PlainReason::TimedOut {
                            line: line + offset,
                        },
                        PlainReason::GrammarError { line } => PlainReason::GrammarError {
                            line: line + offset,
                        },
                        other => other,
                    });
                    let done = out.lines.len();
                    out.lines
                        .extend(lines[done..].iter().map(|l| escape_line(l)));
                    return;
                }
            }
            if long_lines > 0 {
                out.plain = Some(PlainReason::LongLines {
                    count: long_lines,
                    limit: self.limits.max_line_bytes,
                });
            }
        });
        (out, redone)
    }

    /// The state at the top level past the first line: the initial state after one empty line
    /// (a parser remembers whether it is on the first line, where some grammars differ).
    fn resting_state(&self, syntax: &SyntaxReference) -> LineState {
        let mut state = self.initial_state(syntax);
        let far = Instant::now() + Duration::from_secs(3600);
        self.highlight_chunk(&["\n"], &mut state, far);
        state
    }

    fn initial_state(&self, syntax: &SyntaxReference) -> LineState {
        LineState {
            parse: ParseState::new(syntax),
            highlight: HighlightState::new(&ThemeHighlighter::new(&self.theme), ScopeStack::new()),
        }
    }

    /// Highlights lines from a state until they end, the deadline passes or the grammar fails.
    fn highlight_chunk(&self, lines: &[&str], state: &mut LineState, deadline: Instant) -> Chunk {
        let theme = ThemeHighlighter::new(&self.theme);
        let mut out = Vec::with_capacity(lines.len());
        let mut long_lines = 0;
        for (index, line) in lines.iter().enumerate() {
            if line.len() > self.limits.max_line_bytes {
                long_lines += 1;
                out.push(escape_line(line));
                continue;
            }
            // Checking the clock every line would cost more than it saves.
            if index % 64 == 0 && Instant::now() > deadline {
                return Chunk {
                    lines: out,
                    long_lines,
                    stopped: Some(PlainReason::TimedOut { line: index }),
                };
            }
            let ops = match state.parse.parse_line(line, &self.syntaxes) {
                Ok(ops) => ops,
                Err(_) => {
                    return Chunk {
                        lines: out,
                        long_lines,
                        stopped: Some(PlainReason::GrammarError { line: index }),
                    };
                }
            };
            let mut html = String::with_capacity(line.len() * 2);
            let mut open: Option<&str> = None;
            for (style, text) in HighlightIterator::new(&mut state.highlight, &ops, line, &theme) {
                let text = text.trim_end_matches(['\n', '\r']);
                if text.is_empty() {
                    continue;
                }
                let class = class_of(style.foreground);
                if class != open {
                    if open.is_some() {
                        html.push_str("</span>");
                    }
                    if let Some(class) = class {
                        let _ = write!(html, "<span class=\"{class}\">");
                    }
                    open = class;
                }
                escape_into(&mut html, text);
            }
            if open.is_some() {
                html.push_str("</span>");
            }
            out.push(html);
        }
        Chunk {
            lines: out,
            long_lines,
            stopped: None,
        }
    }
}

/// Highlighted lines as one HTML table in the shape of Sourcegraph's syntect_server: a row per
/// line with a line-number cell (`data-line`, 1-based) and a code cell.
pub fn table_html(lines: &[String]) -> String {
    let mut html = String::with_capacity(lines.iter().map(|l| l.len() + 80).sum::<usize>() + 64);
    html.push_str("<table class=\"hl\"><tbody>");
    for (index, line) in lines.iter().enumerate() {
        let _ = write!(
            html,
            "<tr><td class=\"line\" data-line=\"{}\"></td><td class=\"code\"><div>{line}</div></td></tr>",
            index + 1
        );
    }
    html.push_str("</tbody></table>");
    html
}

/// Splits text into lines, each keeping its line break (a final line without one counts).
fn split_lines(code: &str) -> Vec<&str> {
    code.split_inclusive('\n').collect()
}

/// Where to cut a file into chunks for parallel highlighting: one per available core, each cut
/// moved to just after a blank line followed by an unindented one (likely the top level) when
/// one is near.
fn chunk_bounds(lines: &[&str]) -> Vec<usize> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if lines.len() < PARALLEL_MIN_LINES || workers < 2 {
        return vec![0, lines.len()];
    }
    let mut bounds = vec![0];
    for part in 1..workers {
        let even = lines.len() * part / workers;
        let end = (even + SPLIT_SEARCH_LINES).min(lines.len());
        let cut = (even.max(1)..end)
            .find(|&i| {
                lines[i - 1].trim().is_empty()
                    && lines[i].chars().next().is_some_and(|c| !c.is_whitespace())
            })
            .unwrap_or(even);
        if cut > *bounds.last().unwrap_or(&0) {
            bounds.push(cut);
        }
    }
    bounds.push(lines.len());
    bounds
}

/// A theme whose colours are class numbers: the red channel indexes [`CLASSES`] (0: none).
fn class_theme() -> Theme {
    let scopes = CLASSES
        .iter()
        .enumerate()
        .filter_map(|(index, (_, selectors))| {
            let scope = ScopeSelectors::from_str(selectors).ok()?;
            Some(ThemeItem {
                scope,
                style: StyleModifier {
                    foreground: Some(class_color(index + 1)),
                    background: None,
                    font_style: None,
                },
            })
        })
        .collect();
    Theme {
        name: Some("classes".into()),
        author: None,
        settings: ThemeSettings {
            foreground: Some(class_color(0)),
            ..ThemeSettings::default()
        },
        scopes,
    }
}

fn class_color(number: usize) -> Color {
    Color {
        r: u8::try_from(number).unwrap_or(0),
        g: 0,
        b: 0,
        a: 255,
    }
}

fn class_of(color: Color) -> Option<&'static str> {
    let number = usize::from(color.r);
    (number > 0).then(|| CLASSES.get(number - 1).map(|(class, _)| *class))?
}

fn escape_line(line: &str) -> String {
    let mut html = String::with_capacity(line.len() + 16);
    escape_into(&mut html, line.trim_end_matches(['\n', '\r']));
    html
}

/// Appends text escaped for HTML.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn floor_char_boundary(text: &str, limit: usize) -> usize {
    let mut end = limit.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip_tags(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    #[test]
    fn rust_keywords_strings_and_comments_get_classes() {
        let highlighter = Highlighter::default();
        let out = highlighter.highlight(
            "src/main.rs",
            "// hello\nfn main() {\n    let s = \"<b>\";\n}\n",
        );
        assert_eq!(out.language.as_deref(), Some("Rust"));
        assert_eq!(out.plain, None);
        assert_eq!(out.lines.len(), 4);
        assert!(
            out.lines[0].starts_with("<span class=\"c\">"),
            "{}",
            out.lines[0]
        );
        assert!(
            out.lines[1].contains("<span class=\"k\">fn</span>"),
            "{}",
            out.lines[1]
        );
        assert!(out.lines[2].contains("&lt;b&gt;"), "{}", out.lines[2]);
        assert!(!out.lines[2].contains("<b>"));
    }

    #[test]
    fn languages_come_from_names_extensions_and_shebangs() {
        let highlighter = Highlighter::default();
        assert_eq!(
            highlighter.language("a/b.py", "").as_deref(),
            Some("Python")
        );
        assert_eq!(
            highlighter.language("Makefile", "").as_deref(),
            Some("Makefile")
        );
        assert_eq!(
            highlighter
                .language("bin/run", "#!/usr/bin/env python3\nprint(1)\n")
                .as_deref(),
            Some("Python")
        );
        assert_eq!(
            highlighter.language("web/app.ts", "").as_deref(),
            Some("JavaScript")
        );
        assert_eq!(highlighter.language("notes", "just words"), None);
        let out = highlighter.highlight("notes", "a < b\n");
        assert_eq!(out.plain, Some(PlainReason::UnknownLanguage));
        assert_eq!(out.lines, vec!["a &lt; b".to_string()]);
    }

    #[test]
    fn text_survives_highlighting_unchanged() {
        let code =
            "fn f<'a>(x: &'a str) -> &'a str {\n    x // \"quoted\" & <tag>\n}\n\n/* unterminated";
        let out = Highlighter::default().highlight("x.rs", code);
        let text: Vec<String> = out.lines.iter().map(|l| strip_tags(l)).collect();
        let expected: Vec<&str> = code.lines().collect();
        assert_eq!(text, expected);
    }

    #[test]
    fn limits_fall_back_to_plain_text() {
        let highlighter = Highlighter::new(Limits {
            max_bytes: 100,
            max_line_bytes: 20,
            time_budget: Duration::from_secs(5),
        });
        let big = "x".repeat(200);
        let out = highlighter.highlight("a.rs", &big);
        assert_eq!(
            out.plain,
            Some(PlainReason::TooLarge {
                bytes: 200,
                limit: 100
            })
        );
        let out =
            highlighter.highlight("a.rs", "fn a() {}\nlet x = \"a very long line indeed\";\n");
        assert_eq!(
            out.plain,
            Some(PlainReason::LongLines {
                count: 1,
                limit: 20
            })
        );
        assert!(out.lines[0].contains("class"));
        assert!(!out.lines[1].contains("class"));

        let timed = Highlighter::new(Limits {
            time_budget: Duration::ZERO,
            ..Limits::default()
        });
        let code = "fn a() {}\n".repeat(200);
        let out = timed.highlight("a.rs", &code);
        assert_eq!(out.plain, Some(PlainReason::TimedOut { line: 0 }));
        assert_eq!(out.lines.len(), 200);
    }

    #[test]
    fn a_file_split_across_threads_highlights_as_in_one_piece() {
        // A string that spans a would-be cut point: the second chunk's guessed start state is
        // wrong, and it must be redone from the real one.
        let mut code = String::new();
        for i in 0..2_000 {
            code.push_str(&format!("fn f{i}() -> u32 {{ {i} }}\n\n"));
            if i == 999 {
                code.push_str("const S: &str = \"\n\nfn not_code() {}\n\n\";\n\n");
            }
        }
        let highlighter = Highlighter::default();
        let lines = split_lines(&code);
        let mut start =
            highlighter.initial_state(highlighter.syntax_for("a.rs", &code).expect("rust"));
        let whole = highlighter.highlight_chunk(
            &lines,
            &mut start,
            Instant::now() + Duration::from_secs(60),
        );
        let (split, redone) = highlighter.highlight_in_parts("a.rs", &code);
        assert_eq!(split.plain, None);
        assert_eq!(split.lines, whole.lines);
        if chunk_bounds(&lines).len() > 2 {
            assert_eq!(
                redone, 1,
                "the part that starts inside the string is done again"
            );
            // Without the string, every helper's guess holds.
            let plain_code: String = (0..4_000).map(|i| format!("fn f{i}() {{}}\n\n")).collect();
            let (_, redone) = highlighter.highlight_in_parts("a.rs", &plain_code);
            assert_eq!(redone, 0, "helpers' parts are used as they are");
        }
        let not_code = split
            .lines
            .iter()
            .find(|l| l.contains("not_code"))
            .expect("line present");
        assert!(not_code.starts_with("<span class=\"s\">"), "{not_code}");
    }

    #[test]
    fn table_html_numbers_lines() {
        let html = table_html(&["a".into(), "<span class=\"k\">b</span>".into()]);
        assert!(html.contains("data-line=\"2\""));
        assert!(html.starts_with("<table class=\"hl\">"));
    }
}
