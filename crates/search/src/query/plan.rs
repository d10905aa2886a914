//! From a parsed query to what the searchers run: query-wide settings, and "basic queries" (each a
//! set of repository and file filters with one pattern expression), as Sourcegraph splits an `or`
//! whose operands carry their own filters.

use std::time::Duration;

use regex::bytes::{Regex, RegexBuilder};

use super::parser::{Field, Filter, Node, ParseError, Pattern, PatternType, parse};
use crate::languages::Language;
use crate::lines::LineFinder;

/// Sourcegraph's defaults and bounds.
pub const DEFAULT_COUNT: usize = 500;
pub const MAX_COUNT: usize = 1_000_000;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// More basic queries than this means the boolean structure exploded.
const MAX_BASIC_QUERIES: usize = 64;
/// Compiled regexps may not grow beyond this.
const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

/// Where a pattern may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ContentOrPath,
    Content,
    Path,
}

/// One pattern, compiled.
#[derive(Debug, Clone)]
pub struct Atom {
    pub regex: Regex,
    /// The same regexp, for finding the lines of a text it matches in.
    pub lines: LineFinder,
    /// The pattern as written (for messages and index planning).
    pub text: String,
    pub literal: bool,
    pub scope: Scope,
}

/// A boolean combination of patterns.
#[derive(Debug, Clone)]
pub enum Expr {
    Atom(Atom),
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
}

impl Expr {
    /// The atoms that must match for the expression to hold, outside any negation.
    pub fn positive_atoms(&self) -> Vec<&Atom> {
        let mut out = Vec::new();
        fn walk<'a>(expr: &'a Expr, out: &mut Vec<&'a Atom>) {
            match expr {
                Expr::Atom(atom) => out.push(atom),
                Expr::And(children) | Expr::Or(children) => {
                    children.iter().for_each(|c| walk(c, out))
                }
                Expr::Not(_) => {}
            }
        }
        walk(self, &mut out);
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tristate {
    Yes,
    No,
    Only,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Repo,
    File,
    Content,
}

/// Which kinds of result a query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultType {
    /// Content and path matches (the default).
    FileAndPath,
    /// `type:file`: content matches only.
    File,
    /// `type:path`: path matches only.
    Path,
    /// `type:repo`: repository names.
    Repo,
}

/// Repository and file filters of one basic query.
#[derive(Debug, Clone, Default)]
pub struct Scopes {
    pub repo_include: Vec<Regex>,
    pub repo_exclude: Vec<Regex>,
    /// Revisions to search (`repo:x@a:b`, `rev:`); empty means the default branch.
    pub revisions: Vec<String>,
    pub file_include: Vec<Regex>,
    pub file_exclude: Vec<Regex>,
    pub languages: Vec<Language>,
    pub excluded_languages: Vec<Language>,
}

impl Scopes {
    pub fn repo_matches(&self, name: &str) -> bool {
        self.repo_include
            .iter()
            .all(|r| r.is_match(name.as_bytes()))
            && !self
                .repo_exclude
                .iter()
                .any(|r| r.is_match(name.as_bytes()))
    }

    /// Whether a file path passes the `file:` and `lang:` filters.
    pub fn path_matches(&self, path: &str) -> bool {
        if !self
            .file_include
            .iter()
            .all(|r| r.is_match(path.as_bytes()))
            || self
                .file_exclude
                .iter()
                .any(|r| r.is_match(path.as_bytes()))
        {
            return false;
        }
        if self.languages.is_empty() && self.excluded_languages.is_empty() {
            return true;
        }
        let language = Language::of_path(path);
        self.languages.iter().all(|l| Some(*l) == language)
            && !self.excluded_languages.iter().any(|l| Some(*l) == language)
    }

    pub fn has_file_filters(&self) -> bool {
        !(self.file_include.is_empty()
            && self.file_exclude.is_empty()
            && self.languages.is_empty()
            && self.excluded_languages.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct BasicQuery {
    pub scopes: Scopes,
    pub pattern: Option<Expr>,
}

/// A query ready to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub basics: Vec<BasicQuery>,
    pub pattern_type: PatternType,
    pub case_sensitive: bool,
    pub result_type: ResultType,
    pub select: Option<Select>,
    /// `None` for `count:all`.
    pub count: Option<usize>,
    pub timeout: Duration,
    pub fork: Tristate,
    pub archived: Tristate,
    /// A feature the query asks for that Quarry does not have yet.
    pub unsupported: Option<String>,
}

/// Parses and plans a query.
pub fn plan(query: &str, default_type: PatternType) -> Result<Plan, ParseError> {
    let (node, pattern_type) = parse(query, default_type)?;
    let mut settings = Plan {
        basics: Vec::new(),
        pattern_type,
        case_sensitive: false,
        result_type: ResultType::FileAndPath,
        select: None,
        count: Some(DEFAULT_COUNT),
        timeout: DEFAULT_TIMEOUT,
        fork: Tristate::No,
        archived: Tristate::No,
        unsupported: None,
    };
    let mut globals = Vec::new();
    collect_globals(&node, &mut globals);
    for filter in &globals {
        apply_global(query, filter, &mut settings)?;
    }
    let partials = partials(query, &node)?;
    let scope = match settings.result_type {
        ResultType::File => Scope::Content,
        ResultType::Path => Scope::Path,
        ResultType::FileAndPath | ResultType::Repo => Scope::ContentOrPath,
    };
    for partial in partials {
        let scopes = compile_scopes(query, &partial.filters, settings.case_sensitive)?;
        let pattern = match partial.pattern {
            Some(p) => Some(compile_expr(query, &p, scope, settings.case_sensitive)?),
            None => None,
        };
        settings.basics.push(BasicQuery { scopes, pattern });
    }
    Ok(settings)
}

fn is_global(field: Field) -> bool {
    matches!(
        field,
        Field::Case
            | Field::Type
            | Field::Select
            | Field::Count
            | Field::Timeout
            | Field::Fork
            | Field::Archived
            | Field::PatternType
    )
}

fn collect_globals<'a>(node: &'a Node, out: &mut Vec<&'a Filter>) {
    match node {
        Node::Filter(f) if is_global(f.field) => out.push(f),
        Node::And(children) | Node::Or(children) => {
            children.iter().for_each(|c| collect_globals(c, out))
        }
        Node::Not(inner) => collect_globals(inner, out),
        _ => {}
    }
}

fn err(query: &str, filter: &Filter, message: String) -> ParseError {
    let position = filter.start.min(query.len());
    ParseError {
        position,
        column: query[..position].chars().count() + 1,
        message,
    }
}

fn tristate(query: &str, filter: &Filter) -> Result<Tristate, ParseError> {
    match filter.value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(Tristate::Yes),
        "no" | "false" => Ok(Tristate::No),
        "only" => Ok(Tristate::Only),
        other => Err(err(
            query,
            filter,
            format!(
                "{}: expected yes, no or only, got `{other}`",
                filter.field.name()
            ),
        )),
    }
}

fn apply_global(query: &str, filter: &Filter, plan: &mut Plan) -> Result<(), ParseError> {
    let value = filter.value.as_str();
    match filter.field {
        Field::Case => {
            plan.case_sensitive = match value.to_ascii_lowercase().as_str() {
                "yes" | "true" => true,
                "no" | "false" => false,
                _ => {
                    return Err(err(
                        query,
                        filter,
                        format!("case: expected yes or no, got `{value}`"),
                    ));
                }
            }
        }
        Field::Type => {
            plan.result_type = match value.to_ascii_lowercase().as_str() {
                "file" => ResultType::File,
                "path" => ResultType::Path,
                "repo" => ResultType::Repo,
                kind @ ("symbol" | "diff" | "commit") => {
                    plan.unsupported = Some(format!(
                        "type:{kind} search is not supported yet; search file contents (type:file), paths (type:path) or repositories (type:repo)"
                    ));
                    ResultType::FileAndPath
                }
                _ => {
                    return Err(err(
                        query,
                        filter,
                        format!(
                            "type: expected file, path, repo, symbol, diff or commit, got `{value}`"
                        ),
                    ));
                }
            }
        }
        Field::Select => {
            plan.select = Some(match value.to_ascii_lowercase().as_str() {
                "repo" => Select::Repo,
                "file" => Select::File,
                "content" => Select::Content,
                _ => {
                    return Err(err(
                        query,
                        filter,
                        format!("select: expected repo, file or content, got `{value}`"),
                    ));
                }
            })
        }
        Field::Count => {
            plan.count = if value.eq_ignore_ascii_case("all") {
                None
            } else {
                match value.parse::<usize>() {
                    Ok(n) if (1..=MAX_COUNT).contains(&n) => Some(n),
                    _ => {
                        return Err(err(
                            query,
                            filter,
                            format!(
                                "count: expected a number from 1 to {MAX_COUNT} or `all`, got `{value}`"
                            ),
                        ));
                    }
                }
            }
        }
        Field::Timeout => {
            let timeout = parse_duration(value).ok_or_else(|| {
                err(
                    query,
                    filter,
                    format!("timeout: expected a duration such as 10s or 1m, got `{value}`"),
                )
            })?;
            if timeout.is_zero() || timeout > MAX_TIMEOUT {
                return Err(err(
                    query,
                    filter,
                    "timeout: must be more than 0 and at most 1m".into(),
                ));
            }
            plan.timeout = timeout;
        }
        Field::Fork => plan.fork = tristate(query, filter)?,
        Field::Archived => plan.archived = tristate(query, filter)?,
        _ => {}
    }
    Ok(())
}

/// Go-style durations: `500ms`, `10s`, `1m30s`, `1h`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.')?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => number / 1000.0,
            "s" => number,
            "m" => number * 60.0,
            "h" => number * 3600.0,
            _ => return None,
        };
        total += Duration::from_secs_f64(seconds);
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A pattern expression before compilation.
#[derive(Debug, Clone)]
enum PatternNode {
    Atom(Pattern, Option<Scope>),
    And(Vec<PatternNode>),
    Or(Vec<PatternNode>),
    Not(Box<PatternNode>),
}

#[derive(Debug, Clone, Default)]
struct Partial {
    filters: Vec<Filter>,
    pattern: Option<PatternNode>,
}

fn position_error(query: &str, position: usize, message: &str) -> ParseError {
    let position = position.min(query.len());
    ParseError {
        position,
        column: query[..position].chars().count() + 1,
        message: message.to_string(),
    }
}

fn first_position(node: &Node) -> usize {
    match node {
        Node::Pattern(p) => p.start,
        Node::Filter(f) => f.start,
        Node::And(c) | Node::Or(c) => c.first().map_or(0, first_position),
        Node::Not(inner) => first_position(inner),
    }
}

fn content_atom(filter: &Filter) -> PatternNode {
    let atom = PatternNode::Atom(
        Pattern {
            value: filter.value.clone(),
            regexp: false,
            start: filter.start,
        },
        Some(Scope::Content),
    );
    if filter.negated {
        PatternNode::Not(Box::new(atom))
    } else {
        atom
    }
}

fn and_patterns(a: Option<PatternNode>, b: Option<PatternNode>) -> Option<PatternNode> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(PatternNode::And(mut left)), Some(right)) => {
            left.push(right);
            Some(PatternNode::And(left))
        }
        (Some(left), Some(right)) => Some(PatternNode::And(vec![left, right])),
    }
}

fn partials(query: &str, node: &Node) -> Result<Vec<Partial>, ParseError> {
    match node {
        Node::Pattern(p) => Ok(vec![Partial {
            filters: Vec::new(),
            pattern: Some(PatternNode::Atom(p.clone(), None)),
        }]),
        Node::Filter(f) if is_global(f.field) => Ok(vec![Partial::default()]),
        Node::Filter(f) if f.field == Field::Content => Ok(vec![Partial {
            filters: Vec::new(),
            pattern: Some(content_atom(f)),
        }]),
        Node::Filter(f) => Ok(vec![Partial {
            filters: vec![f.clone()],
            pattern: None,
        }]),
        Node::Not(inner) => match inner.as_ref() {
            Node::Filter(f) => {
                let mut negated = f.clone();
                negated.negated = !negated.negated;
                partials(query, &Node::Filter(negated))
            }
            other => {
                let mut parts = partials(query, other)?;
                match (parts.len(), parts.first_mut()) {
                    (1, Some(part)) if part.filters.is_empty() => Ok(vec![Partial {
                        filters: Vec::new(),
                        pattern: part.pattern.take().map(|p| PatternNode::Not(Box::new(p))),
                    }]),
                    _ => Err(position_error(
                        query,
                        first_position(other),
                        "`not` applies to terms and single filters, not to groups with filters",
                    )),
                }
            }
        },
        Node::And(children) => {
            let mut acc = vec![Partial::default()];
            for child in children {
                let parts = partials(query, child)?;
                let mut next = Vec::with_capacity(acc.len() * parts.len());
                for left in &acc {
                    for right in &parts {
                        let mut filters = left.filters.clone();
                        filters.extend(right.filters.iter().cloned());
                        next.push(Partial {
                            filters,
                            pattern: and_patterns(left.pattern.clone(), right.pattern.clone()),
                        });
                    }
                }
                if next.len() > MAX_BASIC_QUERIES {
                    return Err(position_error(
                        query,
                        first_position(node),
                        "the query expands to too many combinations of filters; use fewer `or`s with filters",
                    ));
                }
                acc = next;
            }
            Ok(acc)
        }
        Node::Or(children) => {
            let mut all = Vec::new();
            for child in children {
                all.push(partials(query, child)?);
            }
            let pure = all.iter().all(|parts| {
                parts.len() == 1 && parts[0].filters.is_empty() && parts[0].pattern.is_some()
            });
            if pure {
                let patterns = all
                    .into_iter()
                    .filter_map(|mut parts| parts.pop().and_then(|p| p.pattern))
                    .collect();
                return Ok(vec![Partial {
                    filters: Vec::new(),
                    pattern: Some(PatternNode::Or(patterns)),
                }]);
            }
            let flat: Vec<Partial> = all.into_iter().flatten().collect();
            if flat.len() > MAX_BASIC_QUERIES {
                return Err(position_error(
                    query,
                    first_position(node),
                    "the query expands to too many combinations of filters; use fewer `or`s with filters",
                ));
            }
            Ok(flat)
        }
    }
}

fn build_regex(text: &str, case_sensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(text)
        .case_insensitive(!case_sensitive)
        .multi_line(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

fn regex_error(
    query: &str,
    position: usize,
    what: &str,
    text: &str,
    e: regex::Error,
) -> ParseError {
    let detail = match e {
        regex::Error::CompiledTooBig(_) => "it is too large to run".to_string(),
        other => other
            .to_string()
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string(),
    };
    position_error(
        query,
        position,
        &format!("invalid {what} `{text}`: {detail}"),
    )
}

fn compile_expr(
    query: &str,
    node: &PatternNode,
    scope: Scope,
    case_sensitive: bool,
) -> Result<Expr, ParseError> {
    Ok(match node {
        PatternNode::Atom(pattern, own_scope) => {
            let text = if pattern.regexp {
                pattern.value.clone()
            } else {
                regex::escape(&pattern.value)
            };
            let regex = build_regex(&text, case_sensitive)
                .map_err(|e| regex_error(query, pattern.start, "regexp", &pattern.value, e))?;
            Expr::Atom(Atom {
                lines: LineFinder::new(regex.clone(), &text, case_sensitive),
                regex,
                text: pattern.value.clone(),
                literal: !pattern.regexp,
                scope: own_scope.unwrap_or(scope),
            })
        }
        PatternNode::And(children) => Expr::And(
            children
                .iter()
                .map(|c| compile_expr(query, c, scope, case_sensitive))
                .collect::<Result<_, _>>()?,
        ),
        PatternNode::Or(children) => Expr::Or(
            children
                .iter()
                .map(|c| compile_expr(query, c, scope, case_sensitive))
                .collect::<Result<_, _>>()?,
        ),
        PatternNode::Not(inner) => {
            Expr::Not(Box::new(compile_expr(query, inner, scope, case_sensitive)?))
        }
    })
}

fn compile_scopes(
    query: &str,
    filters: &[Filter],
    case_sensitive: bool,
) -> Result<Scopes, ParseError> {
    let mut scopes = Scopes::default();
    for filter in filters {
        match filter.field {
            Field::Repo => {
                let (pattern, revisions) = match filter.value.split_once('@') {
                    Some((pattern, revs)) => (pattern, Some(revs)),
                    None => (filter.value.as_str(), None),
                };
                if let Some(revs) = revisions {
                    if filter.negated {
                        return Err(err(query, filter, "-repo: cannot name revisions".into()));
                    }
                    for rev in revs.split(':').filter(|r| !r.is_empty()) {
                        scopes.revisions.push(rev.to_string());
                    }
                }
                // Repository names are matched case-insensitively, as Sourcegraph does.
                let regex = build_regex(pattern, false)
                    .map_err(|e| regex_error(query, filter.start, "repo: regexp", pattern, e))?;
                if filter.negated {
                    scopes.repo_exclude.push(regex);
                } else {
                    scopes.repo_include.push(regex);
                }
            }
            Field::Rev => {
                if filter.negated {
                    return Err(err(query, filter, "rev: cannot be negated".into()));
                }
                scopes.revisions.extend(
                    filter
                        .value
                        .split(':')
                        .filter(|r| !r.is_empty())
                        .map(str::to_string),
                );
            }
            Field::File => {
                let regex = build_regex(&filter.value, case_sensitive).map_err(|e| {
                    regex_error(query, filter.start, "file: regexp", &filter.value, e)
                })?;
                if filter.negated {
                    scopes.file_exclude.push(regex);
                } else {
                    scopes.file_include.push(regex);
                }
            }
            Field::Lang => {
                let language = Language::named(&filter.value).ok_or_else(|| {
                    err(
                        query,
                        filter,
                        format!("lang: unknown language `{}`", filter.value),
                    )
                })?;
                if filter.negated {
                    scopes.excluded_languages.push(language);
                } else {
                    scopes.languages.push(language);
                }
            }
            _ => {}
        }
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyword(query: &str) -> Plan {
        plan(query, PatternType::Keyword).unwrap()
    }

    #[test]
    fn defaults_are_sourcegraphs() {
        let plan = keyword("foo");
        assert_eq!(plan.count, Some(500));
        assert_eq!(plan.timeout, Duration::from_secs(10));
        assert!(!plan.case_sensitive);
        assert_eq!(plan.fork, Tristate::No);
        assert_eq!(plan.basics.len(), 1);
    }

    #[test]
    fn global_settings_are_read() {
        let plan = keyword("foo case:yes count:all timeout:1m type:file select:repo fork:yes");
        assert!(plan.case_sensitive);
        assert_eq!(plan.count, None);
        assert_eq!(plan.timeout, Duration::from_secs(60));
        assert_eq!(plan.result_type, ResultType::File);
        assert_eq!(plan.select, Some(Select::Repo));
        assert_eq!(plan.fork, Tristate::Yes);
        let Some(Expr::Atom(atom)) = &plan.basics[0].pattern else {
            panic!("one atom");
        };
        assert_eq!(atom.scope, Scope::Content);
    }

    #[test]
    fn or_with_filters_splits_into_basic_queries() {
        let plan = keyword("file:main.c char c or (int i and int j)");
        assert_eq!(plan.basics.len(), 2);
        assert_eq!(plan.basics[0].scopes.file_include.len(), 1);
        assert_eq!(plan.basics[1].scopes.file_include.len(), 0);
        let plan = keyword("repo:a (x or y)");
        assert_eq!(plan.basics.len(), 1, "an or of patterns stays one query");
        assert!(matches!(plan.basics[0].pattern, Some(Expr::Or(_))));
        let plan = keyword("(repo:a or repo:b) x");
        assert_eq!(plan.basics.len(), 2);
    }

    #[test]
    fn repo_revisions_and_exclusions() {
        let plan = keyword("repo:^api$@main:v1.0 -repo:old x");
        let scopes = &plan.basics[0].scopes;
        assert_eq!(scopes.revisions, ["main", "v1.0"]);
        assert!(scopes.repo_matches("API"));
        assert!(!scopes.repo_matches("old-api"));
    }

    #[test]
    fn files_and_languages() {
        let plan = keyword("lang:rust -file:test x");
        let scopes = &plan.basics[0].scopes;
        assert!(scopes.path_matches("src/lib.rs"));
        assert!(!scopes.path_matches("tests/lib.rs"));
        assert!(!scopes.path_matches("src/lib.go"));
    }

    #[test]
    fn content_filter_and_negation() {
        let plan = keyword(r#"content:"a b" -content:c not d"#);
        let Some(Expr::And(parts)) = &plan.basics[0].pattern else {
            panic!("and of three");
        };
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[0], Expr::Atom(a) if a.scope == Scope::Content && a.text == "a b"));
        assert!(matches!(&parts[1], Expr::Not(_)));
        assert!(matches!(&parts[2], Expr::Not(_)));
    }

    #[test]
    fn literal_patterns_are_escaped() {
        let plan = keyword("a.b(");
        let Some(Expr::Atom(atom)) = &plan.basics[0].pattern else {
            panic!("one atom");
        };
        assert!(atom.regex.is_match(b"x a.b( y"));
        assert!(!atom.regex.is_match(b"axb("));
    }

    #[test]
    fn unsupported_types_are_flagged_not_refused() {
        let plan = keyword("type:symbol foo");
        assert!(plan.unsupported.unwrap().contains("not supported yet"));
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (query, expected) in [
            ("count:-1 x", "count:"),
            ("count:0 x", "count:"),
            ("timeout:2m x", "at most 1m"),
            ("timeout:soon x", "duration"),
            ("lang:klingon x", "unknown language"),
            ("/(unclosed/", "invalid regexp"),
            ("file:( x", "invalid file: regexp"),
            ("case:maybe x", "case:"),
            ("select:everything x", "select:"),
            ("fork:perhaps x", "fork:"),
            ("not (repo:a x)", "`not` applies"),
        ] {
            let e = plan(query, PatternType::Keyword).unwrap_err();
            assert!(e.message.contains(expected), "{query}: {e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), None);
    }
}
