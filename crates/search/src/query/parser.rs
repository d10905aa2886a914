//! Sourcegraph's query syntax: terms, quoted phrases, `/regexps/`, `field:value` filters (negated
//! with `-`), `and`/`or`/`not` with parentheses. `and` binds tighter than `or`; adjacent terms are
//! joined by an implicit `and`.

use std::fmt;

/// The largest query accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 64 * 1024;

/// How patterns are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternType {
    /// Terms are ANDed; `"..."` is an exact phrase; `/.../` a regexp (Sourcegraph's default).
    Keyword,
    /// Adjacent terms form one literal string (spaces included); `/.../` is a regexp.
    Standard,
    /// Like standard, but `/.../` is literal too.
    Literal,
    /// Every term is a regexp; adjacent terms match in order on one line.
    Regexp,
}

impl PatternType {
    pub fn name(self) -> &'static str {
        match self {
            PatternType::Keyword => "keyword",
            PatternType::Standard => "standard",
            PatternType::Literal => "literal",
            PatternType::Regexp => "regexp",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value.to_ascii_lowercase().as_str() {
            "keyword" => Some(PatternType::Keyword),
            "standard" => Some(PatternType::Standard),
            "literal" => Some(PatternType::Literal),
            "regexp" | "regex" => Some(PatternType::Regexp),
            _ => None,
        }
    }
}

/// The filters the query language knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Repo,
    File,
    Lang,
    Content,
    Case,
    Type,
    Select,
    Count,
    Timeout,
    Fork,
    Archived,
    PatternType,
    Rev,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name.to_ascii_lowercase().as_str() {
            "repo" | "r" => Field::Repo,
            "file" | "f" | "path" => Field::File,
            "lang" | "l" | "language" => Field::Lang,
            "content" => Field::Content,
            "case" => Field::Case,
            "type" => Field::Type,
            "select" => Field::Select,
            "count" => Field::Count,
            "timeout" => Field::Timeout,
            "fork" => Field::Fork,
            "archived" => Field::Archived,
            "patterntype" => Field::PatternType,
            "rev" | "revision" => Field::Rev,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Field::Repo => "repo",
            Field::File => "file",
            Field::Lang => "lang",
            Field::Content => "content",
            Field::Case => "case",
            Field::Type => "type",
            Field::Select => "select",
            Field::Count => "count",
            Field::Timeout => "timeout",
            Field::Fork => "fork",
            Field::Archived => "archived",
            Field::PatternType => "patterntype",
            Field::Rev => "rev",
        }
    }
}

/// A search pattern as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub value: String,
    /// A regular expression (otherwise a literal string).
    pub regexp: bool,
    /// Byte offset in the query.
    pub start: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: Field,
    pub value: String,
    pub negated: bool,
    pub start: usize,
}

/// The parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Pattern(Pattern),
    Filter(Filter),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// A query that cannot be parsed: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the query.
    pub position: usize,
    /// 1-based character column, for people.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at column {}: {}", self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

fn error(query: &str, position: usize, message: impl Into<String>) -> ParseError {
    let position = position.min(query.len());
    ParseError {
        position,
        column: query[..position].chars().count() + 1,
        message: message.into(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open(usize),
    Close(usize),
    And(usize),
    Or(usize),
    Not(usize),
    /// A term: `raw` is the text as written (quotes and slashes included).
    Term {
        raw: String,
        decoded: String,
        quoted: bool,
        slashed: bool,
        start: usize,
    },
    Filter(Filter),
}

struct Lexer<'a> {
    query: &'a str,
    pos: usize,
    /// Open groups, so that a `)` ending a term closes a group only when one is open.
    depth: usize,
    /// Parentheses are ordinary characters (a query without operators whose parentheses do not
    /// balance, such as `#[derive(Debug, Clone)]`, is read this way).
    literal_parens: bool,
}

impl<'a> Lexer<'a> {
    fn peek(&self) -> Option<char> {
        self.query[self.pos..].chars().next()
    }

    fn at_boundary(&self, at: usize) -> bool {
        match self.query[at..].chars().next() {
            None => true,
            Some(c) => c.is_whitespace() || (c == ')' && self.depth > 0),
        }
    }

    fn tokens(mut self) -> Result<Vec<Token>, ParseError> {
        let mut tokens = Vec::new();
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else if self.literal_parens && (c == '(' || c == ')') {
                tokens.push(self.word()?);
            } else if c == '(' {
                self.pos += 1;
                self.depth += 1;
                tokens.push(Token::Open(start));
            } else if c == ')' {
                if self.depth == 0 {
                    return Err(error(
                        self.query,
                        start,
                        "unbalanced parentheses: this `)` has no matching `(`",
                    ));
                }
                self.pos += 1;
                self.depth -= 1;
                tokens.push(Token::Close(start));
            } else if c == '"' || c == '\'' {
                let decoded = self.quoted(c)?;
                tokens.push(Token::Term {
                    raw: self.query[start..self.pos].to_string(),
                    decoded,
                    quoted: true,
                    slashed: false,
                    start,
                });
            } else if let Some(token) = self.slashed()? {
                tokens.push(token);
            } else {
                tokens.push(self.word()?);
            }
        }
        Ok(tokens)
    }

    /// A quoted string starting at the current position; `\` escapes the next character.
    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.query[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, escaped @ ('"' | '\'' | '\\'))) => value.push(escaped),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => break,
                },
                c if c == quote => {
                    self.pos += i + 1;
                    return Ok(value);
                }
                c => value.push(c),
            }
        }
        Err(error(
            self.query,
            start,
            format!("unterminated quoted string: expected a closing {quote}"),
        ))
    }

    /// `/regexp/`, when the slash-delimited text ends at a token boundary.
    fn slashed(&mut self) -> Result<Option<Token>, ParseError> {
        let start = self.pos;
        if !self.query[start..].starts_with('/') {
            return Ok(None);
        }
        let body = start + 1;
        let mut escaped = false;
        for (i, c) in self.query[body..].char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' => escaped = true,
                '/' => {
                    let end = body + i + 1;
                    if i > 0 && self.at_boundary(end) {
                        self.pos = end;
                        return Ok(Some(Token::Term {
                            raw: self.query[start..end].to_string(),
                            decoded: self.query[body..body + i].to_string(),
                            quoted: false,
                            slashed: true,
                            start,
                        }));
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }

    /// A bare word up to white space: an operator, a filter or a term. Parentheses inside a word
    /// belong to it while balanced (`foo(bar)`); a `)` beyond that closes an open group.
    fn word(&mut self) -> Result<Token, ParseError> {
        let start = self.pos;
        let mut inner = 0usize;
        let mut end = self.query.len();
        for (i, c) in self.query[start..].char_indices() {
            if c.is_whitespace() {
                end = start + i;
                break;
            }
            if self.literal_parens {
                continue;
            }
            if c == '(' {
                inner += 1;
            } else if c == ')' {
                if inner > 0 {
                    inner -= 1;
                } else if self.depth > 0 {
                    end = start + i;
                    break;
                } else {
                    return Err(error(
                        self.query,
                        start + i,
                        "unbalanced parentheses: this `)` has no matching `(` (quote the term to search for it)",
                    ));
                }
            }
        }
        let word = &self.query[start..end];
        self.pos = end;
        match word {
            "and" | "AND" => return Ok(Token::And(start)),
            "or" | "OR" => return Ok(Token::Or(start)),
            "not" | "NOT" => return Ok(Token::Not(start)),
            _ => {}
        }
        if let Some(filter) = self.filter(word, start)? {
            return Ok(filter);
        }
        Ok(Token::Term {
            raw: word.to_string(),
            decoded: word.to_string(),
            quoted: false,
            slashed: false,
            start,
        })
    }

    fn filter(&mut self, word: &str, start: usize) -> Result<Option<Token>, ParseError> {
        let (negated, rest) = match word.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, word),
        };
        let Some((name, value)) = rest.split_once(':') else {
            return Ok(None);
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            return Ok(None);
        }
        let Some(field) = Field::parse(name) else {
            // `http://...`, `std::vec` and `TODO:` are patterns, not filters.
            if value.is_empty() || value.starts_with('/') || value.starts_with(':') {
                return Ok(None);
            }
            return Err(error(
                self.query,
                start,
                format!(
                    "unknown filter `{name}:`; known filters are repo:, file:, lang:, content:, case:, type:, select:, count:, timeout:, fork:, archived:, patterntype: and rev: (quote the term to search for it: \"{word}\")"
                ),
            ));
        };
        let value_start = start + word.len() - value.len();
        let value = if value.starts_with('"') || value.starts_with('\'') {
            // A quoted value may contain spaces: re-read it from its opening quote.
            self.pos = value_start;
            let quote = value.chars().next().unwrap_or('"');
            let decoded = self.quoted(quote)?;
            if !self.at_boundary(self.pos) {
                return Err(error(
                    self.query,
                    self.pos,
                    "expected white space after the quoted value",
                ));
            }
            decoded
        } else {
            value.to_string()
        };
        Ok(Some(Token::Filter(Filter {
            field,
            value,
            negated,
            start,
        })))
    }
}

/// Parses a query. `default_type` applies unless the query says `patterntype:`.
pub fn parse(query: &str, default_type: PatternType) -> Result<(Node, PatternType), ParseError> {
    if query.len() > MAX_QUERY_LEN {
        return Err(error(
            query,
            0,
            format!("the query is longer than {} KB", MAX_QUERY_LEN / 1024),
        ));
    }
    let tokens = match (Lexer {
        query,
        pos: 0,
        depth: 0,
        literal_parens: false,
    })
    .tokens()
    {
        Ok(tokens) => tokens,
        Err(e) if e.message.starts_with("unbalanced parentheses") => {
            // Without operators, parentheses that do not balance can only be meant literally.
            let literal = Lexer {
                query,
                pos: 0,
                depth: 0,
                literal_parens: true,
            }
            .tokens()?;
            if literal
                .iter()
                .any(|t| matches!(t, Token::And(_) | Token::Or(_) | Token::Not(_)))
            {
                return Err(e);
            }
            literal
        }
        Err(e) => return Err(e),
    };
    let mut pattern_type = default_type;
    for token in &tokens {
        if let Token::Filter(f) = token
            && f.field == Field::PatternType
        {
            pattern_type = PatternType::parse(&f.value).ok_or_else(|| {
                error(
                    query,
                    f.start,
                    format!(
                        "patterntype: expected keyword, standard, literal or regexp, got `{}`",
                        f.value
                    ),
                )
            })?;
        }
    }
    let mut parser = Parser {
        query,
        tokens,
        next: 0,
        pattern_type,
    };
    let node = if parser.tokens.is_empty() {
        Node::And(Vec::new())
    } else {
        let node = parser.or_expr()?;
        if let Some(token) = parser.tokens.get(parser.next) {
            return Err(error(
                query,
                token_start(token),
                "unexpected token: expected a term, a filter or an operator",
            ));
        }
        node
    };
    Ok((node, pattern_type))
}

fn token_start(token: &Token) -> usize {
    match token {
        Token::Open(p) | Token::Close(p) | Token::And(p) | Token::Or(p) | Token::Not(p) => *p,
        Token::Term { start, .. } => *start,
        Token::Filter(f) => f.start,
    }
}

struct Parser<'a> {
    query: &'a str,
    tokens: Vec<Token>,
    next: usize,
    pattern_type: PatternType,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next)
    }

    fn or_expr(&mut self) -> Result<Node, ParseError> {
        let mut operands = vec![self.and_expr()?];
        while let Some(Token::Or(at)) = self.peek() {
            let at = *at;
            self.next += 1;
            if matches!(
                self.peek(),
                None | Some(Token::Close(_) | Token::Or(_) | Token::And(_))
            ) {
                return Err(error(self.query, at, "expected a term after `or`"));
            }
            operands.push(self.and_expr()?);
        }
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Node::Or(operands)
        })
    }

    fn and_expr(&mut self) -> Result<Node, ParseError> {
        let mut operands: Vec<Node> = Vec::new();
        // Bare terms written next to each other, for standard and regexp patterns.
        let mut run: Vec<(usize, usize, String)> = Vec::new();
        loop {
            match self.peek() {
                None | Some(Token::Close(_)) | Some(Token::Or(_)) => break,
                Some(Token::And(at)) => {
                    let at = *at;
                    if operands.is_empty() && run.is_empty() {
                        return Err(error(self.query, at, "expected a term before `and`"));
                    }
                    self.next += 1;
                    if matches!(
                        self.peek(),
                        None | Some(Token::Close(_) | Token::Or(_) | Token::And(_))
                    ) {
                        return Err(error(self.query, at, "expected a term after `and`"));
                    }
                    self.flush_run(&mut run, &mut operands);
                }
                Some(Token::Term {
                    raw,
                    decoded,
                    quoted,
                    slashed,
                    start,
                }) if self.joins_runs()
                    && !*slashed
                    && !(*quoted && self.pattern_type == PatternType::Regexp) =>
                {
                    let (raw, decoded, quoted, start) =
                        (raw.clone(), decoded.clone(), *quoted, *start);
                    self.next += 1;
                    let text = match self.pattern_type {
                        PatternType::Regexp => decoded,
                        _ if quoted => raw,
                        _ => decoded,
                    };
                    run.push((start, start + text.len(), text));
                }
                Some(_) => {
                    self.flush_run(&mut run, &mut operands);
                    operands.push(self.unary()?);
                }
            }
        }
        self.flush_run(&mut run, &mut operands);
        Ok(if operands.len() == 1 {
            operands.remove(0)
        } else {
            Node::And(operands)
        })
    }

    fn joins_runs(&self) -> bool {
        matches!(
            self.pattern_type,
            PatternType::Standard | PatternType::Literal | PatternType::Regexp
        )
    }

    /// Turns a run of adjacent bare terms into one pattern: the literal text as written between
    /// them (standard, literal), or the terms in order on one line (regexp).
    fn flush_run(&self, run: &mut Vec<(usize, usize, String)>, operands: &mut Vec<Node>) {
        if run.is_empty() {
            return;
        }
        let start = run[0].0;
        let pattern = match self.pattern_type {
            PatternType::Regexp => Pattern {
                value: run
                    .iter()
                    .map(|(_, _, text)| text.as_str())
                    .collect::<Vec<_>>()
                    .join(".*?"),
                regexp: true,
                start,
            },
            _ => {
                let end = run.last().map_or(start, |r| r.1);
                let value = if run.len() == 1 {
                    run[0].2.clone()
                } else {
                    self.query[start..end].to_string()
                };
                Pattern {
                    value,
                    regexp: false,
                    start,
                }
            }
        };
        run.clear();
        operands.push(Node::Pattern(pattern));
    }

    fn unary(&mut self) -> Result<Node, ParseError> {
        match self.peek().cloned() {
            Some(Token::Not(at)) => {
                self.next += 1;
                match self.peek() {
                    None | Some(Token::Close(_) | Token::Or(_) | Token::And(_)) => {
                        Err(error(self.query, at, "expected a term after `not`"))
                    }
                    _ => Ok(Node::Not(Box::new(self.unary()?))),
                }
            }
            Some(Token::Open(at)) => {
                self.next += 1;
                if matches!(self.peek(), Some(Token::Close(_))) {
                    return Err(error(
                        self.query,
                        at,
                        "empty parentheses: expected a term inside",
                    ));
                }
                let inner = self.or_expr()?;
                match self.peek() {
                    Some(Token::Close(_)) => {
                        self.next += 1;
                        Ok(inner)
                    }
                    _ => Err(error(
                        self.query,
                        at,
                        "unbalanced parentheses: this `(` is never closed",
                    )),
                }
            }
            Some(Token::Filter(filter)) => {
                self.next += 1;
                Ok(Node::Filter(filter))
            }
            Some(Token::Term {
                raw,
                decoded,
                quoted,
                slashed,
                start,
            }) => {
                self.next += 1;
                let regexp = match self.pattern_type {
                    PatternType::Regexp => !quoted,
                    PatternType::Literal => false,
                    PatternType::Keyword | PatternType::Standard => slashed,
                };
                let value = match self.pattern_type {
                    PatternType::Literal if slashed => raw,
                    PatternType::Standard | PatternType::Literal if quoted => raw,
                    _ => decoded,
                };
                Ok(Node::Pattern(Pattern {
                    value,
                    regexp,
                    start,
                }))
            }
            Some(token) => Err(error(
                self.query,
                token_start(&token),
                "expected a term or a filter",
            )),
            None => Err(error(self.query, self.query.len(), "expected a term")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyword(query: &str) -> Node {
        parse(query, PatternType::Keyword).unwrap().0
    }

    fn lit(value: &str, start: usize) -> Node {
        Node::Pattern(Pattern {
            value: value.into(),
            regexp: false,
            start,
        })
    }

    fn filter(field: Field, value: &str, negated: bool, start: usize) -> Node {
        Node::Filter(Filter {
            field,
            value: value.into(),
            negated,
            start,
        })
    }

    #[test]
    fn keyword_terms_are_anded_with_phrases_and_regexps() {
        assert_eq!(
            keyword(r#"foo "bar baz" /a+b/"#),
            Node::And(vec![
                lit("foo", 0),
                lit("bar baz", 4),
                Node::Pattern(Pattern {
                    value: "a+b".into(),
                    regexp: true,
                    start: 14
                }),
            ])
        );
    }

    #[test]
    fn and_binds_tighter_than_or_and_not_is_unary() {
        assert_eq!(
            keyword("a or b and not c"),
            Node::Or(vec![
                lit("a", 0),
                Node::And(vec![lit("b", 5), Node::Not(Box::new(lit("c", 15)))]),
            ])
        );
    }

    #[test]
    fn filters_and_negated_filters() {
        assert_eq!(
            keyword(r#"repo:^github\.com/a$ -file:_test\.go lang:go content:"x y" count:all"#),
            Node::And(vec![
                filter(Field::Repo, r"^github\.com/a$", false, 0),
                filter(Field::File, r"_test\.go", true, 21),
                filter(Field::Lang, "go", false, 37),
                filter(Field::Content, "x y", false, 45),
                filter(Field::Count, "all", false, 59),
            ])
        );
    }

    #[test]
    fn parentheses_group_and_belong_to_words_when_balanced() {
        assert_eq!(
            keyword("(a or b) fmt.Println()"),
            Node::And(vec![
                Node::Or(vec![lit("a", 1), lit("b", 6)]),
                lit("fmt.Println()", 9),
            ])
        );
        assert_eq!(
            keyword("(foo(x))"),
            lit("foo(x)", 1),
            "a word's own parentheses stay with it"
        );
        assert_eq!(
            keyword("repo:(a|b)"),
            filter(Field::Repo, "(a|b)", false, 0)
        );
    }

    #[test]
    fn urls_paths_and_rust_paths_are_patterns() {
        assert_eq!(keyword("http://x.y/z"), lit("http://x.y/z", 0));
        assert_eq!(keyword("std::vec"), lit("std::vec", 0));
        assert_eq!(keyword("TODO:"), lit("TODO:", 0));
        assert_eq!(keyword("/usr/bin/env"), lit("/usr/bin/env", 0));
    }

    #[test]
    fn standard_joins_adjacent_terms_with_their_spacing() {
        let (node, kind) = parse("foo  bar.baz or x", PatternType::Standard).unwrap();
        assert_eq!(kind, PatternType::Standard);
        assert_eq!(node, Node::Or(vec![lit("foo  bar.baz", 0), lit("x", 16)]));
        let (node, _) = parse(r#""quoted" /re/"#, PatternType::Standard).unwrap();
        assert_eq!(
            node,
            Node::And(vec![
                lit("\"quoted\"", 0),
                Node::Pattern(Pattern {
                    value: "re".into(),
                    regexp: true,
                    start: 9
                })
            ])
        );
    }

    #[test]
    fn patterntype_in_the_query_wins() {
        let (node, kind) = parse("patterntype:regexp foo bar", PatternType::Keyword).unwrap();
        assert_eq!(kind, PatternType::Regexp);
        assert_eq!(
            node,
            Node::And(vec![
                filter(Field::PatternType, "regexp", false, 0),
                Node::Pattern(Pattern {
                    value: "foo.*?bar".into(),
                    regexp: true,
                    start: 19
                })
            ])
        );
        let (node, _) = parse("patterntype:literal /a/", PatternType::Keyword).unwrap();
        assert_eq!(
            node,
            Node::And(vec![
                filter(Field::PatternType, "literal", false, 0),
                lit("/a/", 20)
            ])
        );
    }

    #[test]
    fn errors_name_the_position_and_what_was_expected() {
        for (query, column, expected) in [
            ("(a or b", 1, "never closed"),
            ("a or b)", 7, "no matching `(`"),
            ("(a and b", 1, "never closed"),
            ("a or", 3, "expected a term after `or`"),
            ("and a", 1, "expected a term before `and`"),
            ("foo \"bar", 5, "unterminated"),
            ("x bogus:value", 3, "unknown filter `bogus:`"),
            ("patterntype:fuzzy x", 1, "patterntype"),
            ("a ()", 3, "empty parentheses"),
            ("not", 1, "expected a term after `not`"),
        ] {
            let err = parse(query, PatternType::Keyword).unwrap_err();
            assert_eq!(err.column, column, "{query}: {err}");
            assert!(err.message.contains(expected), "{query}: {err}");
        }
        let long = "a".repeat(MAX_QUERY_LEN + 1);
        assert!(
            parse(&long, PatternType::Keyword)
                .unwrap_err()
                .message
                .contains("longer")
        );
    }

    #[test]
    fn unbalanced_parentheses_without_operators_are_literal() {
        assert_eq!(
            keyword("#[derive(Debug, Clone)]"),
            Node::And(vec![lit("#[derive(Debug,", 0), lit("Clone)]", 16)])
        );
        assert_eq!(keyword("memcpy("), lit("memcpy(", 0));
        assert_eq!(keyword("x)"), lit("x)", 0));
    }

    #[test]
    fn empty_query_is_an_empty_and() {
        assert_eq!(keyword("   "), Node::And(vec![]));
    }
}
