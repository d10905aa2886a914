//! Which parts of a shard's documents can match a pattern expression, from the trigram index:
//! each pattern's required literals become trigram lookups (a regexp's through its syntax tree),
//! and patterns that may match a path add the first part of each document whose path matches.
//! Anything the index cannot narrow (a regexp with no usable literal, a negation) leaves every
//! part a candidate; the candidates are always verified against the text.
//!
//! A pattern matches line by line, so its matches in a document are those in each of its parts;
//! `and` and `not` speak of whole documents, so their operands are widened to every part of each
//! document they name (see [`per_part`]).

use regex_syntax::hir::{Hir, HirKind};

use super::IndexError;
use super::format::{Entry, Shard};
use super::trigram::{InLiteral, Masks, Trigram, allowed_starts, in_literal, of_literal};
use crate::query::{Expr, Scope};

/// A set of part numbers, ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartSet {
    All,
    Some(Vec<u32>),
}

impl PartSet {
    fn and(self, other: PartSet) -> PartSet {
        match (self, other) {
            (PartSet::All, x) | (x, PartSet::All) => x,
            (PartSet::Some(a), PartSet::Some(b)) => PartSet::Some(intersect(&a, &b)),
        }
    }

    fn or(self, other: PartSet) -> PartSet {
        match (self, other) {
            (PartSet::All, _) | (_, PartSet::All) => PartSet::All,
            (PartSet::Some(a), PartSet::Some(b)) => PartSet::Some(union(&a, &b)),
        }
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Keeps the parts of `parts` that the shard's postings of `entry` also name, with the starts
/// both allow; those left with none go. Decoding stops past the last of `parts`.
fn intersect_starts(
    shard: &Shard,
    entry: Entry,
    parts: &mut Vec<(u32, u8)>,
    starts: impl Fn(Masks) -> u8,
) -> Result<(), IndexError> {
    // In place: a part is kept at `kept`, never past `i`, the next part to look at.
    let (mut i, mut kept) = (0, 0);
    shard.visit_postings(entry, |posting| {
        while i < parts.len() && parts[i].0 < posting.part {
            i += 1;
        }
        if let Some(&(part, allowed)) = parts.get(i)
            && part == posting.part
        {
            let possible = allowed & starts(posting.masks);
            if possible != 0 {
                parts[kept] = (part, possible);
                kept += 1;
            }
            i += 1;
        }
        i < parts.len()
    })?;
    parts.truncate(kept);
    Ok(())
}

fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out.sort_unstable();
    out.dedup();
    out
}

/// What a regexp requires of a text, as literals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Required {
    Anything,
    Literal(Vec<u8>),
    All(Vec<Required>),
    Any(Vec<Required>),
}

/// The literals a regexp requires, read off its syntax tree.
pub fn required(pattern: &str) -> Required {
    required_and_case(pattern).0
}

/// The literals a regexp requires, and whether they name their case variants too (`(?i)abc`
/// expands to variants that the folded index cannot tell apart, so one stands for all: it must
/// then be looked up without case).
fn required_and_case(pattern: &str) -> (Required, bool) {
    match regex_syntax::Parser::new().parse(pattern) {
        Ok(hir) => {
            let mut expansion = Expansion::default();
            let required = expansion.of_hir(&hir);
            (required, expansion.folded_case)
        }
        Err(_) => (Required::Anything, false),
    }
}

/// A class of at most this many characters is expanded into its characters.
const MAX_CLASS: usize = 16;
/// Sets of exact strings are kept up to this many (distinct as the index sees them, folded).
const MAX_EXACT: usize = 64;

/// Expanding a regexp's parts into the strings they match, noting whether strings that differ
/// only in ASCII case were taken as one.
#[derive(Default)]
struct Expansion {
    folded_case: bool,
}

impl Expansion {
    fn of_hir(&mut self, hir: &Hir) -> Required {
        match hir.kind() {
            HirKind::Capture(capture) => self.of_hir(&capture.sub),
            HirKind::Repetition(repetition) if repetition.min == 1 && repetition.max == Some(1) => {
                self.of_hir(&repetition.sub)
            }
            // Repeated text is required, but cannot be joined with both of its neighbours.
            HirKind::Repetition(repetition) if repetition.min >= 1 => {
                match self.of_hir(&repetition.sub) {
                    Required::Anything => Required::Anything,
                    inner => Required::All(vec![inner]),
                }
            }
            HirKind::Concat(parts) => {
                let mut all = Vec::new();
                // The strings one of which the text holds at this point, each joined to the next.
                let mut run: Vec<Vec<u8>> = vec![Vec::new()];
                for part in parts {
                    let (unit, repeated) = match part.kind() {
                        HirKind::Repetition(r) if r.min >= 1 => {
                            (self.exact(&r.sub), r.min != 1 || r.max != Some(1))
                        }
                        _ => (self.exact(part), false),
                    };
                    match unit {
                        Some(strings) => {
                            run = match self.product(&run, &strings) {
                                Some(joined) => joined,
                                None => {
                                    push_strings(&mut all, run);
                                    strings.clone()
                                }
                            };
                            // Only the last repetition touches what follows.
                            if repeated {
                                push_strings(&mut all, std::mem::replace(&mut run, strings));
                            }
                        }
                        None => {
                            push_strings(&mut all, std::mem::replace(&mut run, vec![Vec::new()]));
                            match self.of_hir(part) {
                                Required::Anything => {}
                                other => all.push(other),
                            }
                        }
                    }
                }
                push_strings(&mut all, run);
                match all.len() {
                    0 => Required::Anything,
                    1 => all.remove(0),
                    _ => Required::All(all),
                }
            }
            HirKind::Alternation(options) => match self.exact(hir) {
                Some(strings) => of_strings(strings),
                None => {
                    let options: Vec<Required> = options.iter().map(|o| self.of_hir(o)).collect();
                    if options.contains(&Required::Anything) {
                        Required::Anything
                    } else {
                        Required::Any(options)
                    }
                }
            },
            _ => self.exact(hir).map_or(Required::Anything, of_strings),
        }
    }

    /// Every string a part of a regexp can match, when they are few: literals, small classes, and
    /// concatenations and alternations of those.
    fn exact(&mut self, hir: &Hir) -> Option<Vec<Vec<u8>>> {
        match hir.kind() {
            HirKind::Literal(literal) => Some(vec![literal.0.to_vec()]),
            HirKind::Capture(capture) => self.exact(&capture.sub),
            HirKind::Repetition(r) if r.min == 1 && r.max == Some(1) => self.exact(&r.sub),
            HirKind::Class(regex_syntax::hir::Class::Unicode(class)) => self.small_class(
                class
                    .ranges()
                    .iter()
                    .flat_map(|r| r.start()..=r.end())
                    .map(|c| c.to_string().into_bytes()),
            ),
            HirKind::Class(regex_syntax::hir::Class::Bytes(class)) => self.small_class(
                class
                    .ranges()
                    .iter()
                    .flat_map(|r| r.start()..=r.end())
                    .map(|b| vec![b]),
            ),
            HirKind::Concat(parts) => parts.iter().try_fold(vec![Vec::new()], |run, part| {
                let strings = self.exact(part)?;
                self.product(&run, &strings)
            }),
            HirKind::Alternation(options) => {
                let mut strings = Vec::new();
                for option in options {
                    strings.extend(self.exact(option)?);
                }
                let strings = self.distinct(strings);
                (strings.len() <= MAX_EXACT).then_some(strings)
            }
            _ => None,
        }
    }

    /// A class's members as strings, unless it has more than [`MAX_CLASS`].
    fn small_class(&mut self, members: impl Iterator<Item = Vec<u8>>) -> Option<Vec<Vec<u8>>> {
        let strings: Vec<Vec<u8>> = members.take(MAX_CLASS + 1).collect();
        (strings.len() <= MAX_CLASS).then(|| self.distinct(strings))
    }

    /// Each of `left` followed by each of `right`, unless that makes too many.
    fn product(&mut self, left: &[Vec<u8>], right: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        if left.len() * right.len() > MAX_EXACT * 4 {
            return None;
        }
        let joined = left
            .iter()
            .flat_map(|l| right.iter().map(move |r| [l.as_slice(), r].concat()))
            .collect();
        let joined = self.distinct(joined);
        (joined.len() <= MAX_EXACT).then_some(joined)
    }

    /// The strings, one of each that the index cannot tell apart (it folds ASCII letters).
    fn distinct(&mut self, strings: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut seen = std::collections::HashMap::new();
        let mut kept = Vec::with_capacity(strings.len());
        for string in strings {
            match seen.entry(string.to_ascii_lowercase()) {
                std::collections::hash_map::Entry::Occupied(first) => {
                    self.folded_case |= *first.get() != string;
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(string.clone());
                    kept.push(string);
                }
            }
        }
        kept
    }
}

/// The requirement that a text hold one of `strings`: nothing when one is too short for a
/// trigram.
fn of_strings(strings: Vec<Vec<u8>>) -> Required {
    if strings.is_empty() || strings.iter().any(|s| s.len() < 3) {
        return Required::Anything;
    }
    let mut literals: Vec<Required> = strings.into_iter().map(Required::Literal).collect();
    if literals.len() == 1 {
        literals.remove(0)
    } else {
        Required::Any(literals)
    }
}

fn push_strings(all: &mut Vec<Required>, strings: Vec<Vec<u8>>) {
    match of_strings(strings) {
        Required::Anything => {}
        required => all.push(required),
    }
}

/// A guess at how rare a trigram is in source code, from its (folded) bytes: letters common in
/// identifiers and prose count for nothing, digits, rare letters and most punctuation for more.
fn rarity(trigram: u32) -> u32 {
    [trigram >> 16, trigram >> 8, trigram]
        .iter()
        .map(|&byte| match byte as u8 {
            b'e' | b't' | b'a' | b'o' | b'i' | b'n' | b's' | b'r' | b'h' | b'l' | b'c' | b'd'
            | b'u' | b' ' => 0,
            b'm' | b'p' | b'f' | b'g' | b'y' | b'w' | b'b' | b'v' | b'k' | b'_' | b'.' | b','
            | b'(' | b')' | b';' | b'\t' => 1,
            _ => 2,
        })
        .sum()
}

/// A literal's trigrams, likeliest missing first, and where the literal holds each.
#[derive(Debug)]
struct LiteralLookup {
    trigrams: Vec<Trigram>,
    occurrences: Vec<Vec<InLiteral>>,
}

impl LiteralLookup {
    /// `None` when the literal is too short to have a trigram.
    fn new(bytes: &[u8], case_sensitive: bool) -> Option<LiteralLookup> {
        let mut trigrams = of_literal(bytes, case_sensitive);
        if trigrams.is_empty() {
            return None;
        }
        trigrams.sort_by_key(|&t| std::cmp::Reverse(rarity(t)));
        let all = in_literal(bytes, case_sensitive);
        let occurrences = trigrams
            .iter()
            .map(|&trigram| {
                all.iter()
                    .filter(|o| o.trigram == trigram)
                    .copied()
                    .collect()
            })
            .collect();
        Some(LiteralLookup {
            trigrams,
            occurrences,
        })
    }

    fn find(&self, shard: &Shard) -> Result<PartSet, IndexError> {
        // A trigram the shard lacks settles it without reading anything: the presence bits of
        // all the trigrams are checked first. Then the dictionary is searched in rounds, the
        // likeliest missing first (4, then 8, 16, ...); the unions of the round's entries may
        // rule the shard out, else its lists are read shortest first: most shards are ruled out
        // by a few lists, and a long literal's other trigrams then cost them no dictionary
        // search. Reading stops once no part is left.
        if !self.trigrams.iter().all(|&t| shard.may_have(t)) {
            return Ok(PartSet::Some(Vec::new()));
        }
        // Each part keeps the starts (mod 8) at which the literal could be, as far as the
        // trigrams read so far say; one with none left cannot hold it.
        let mut parts: Option<Vec<(u32, u8)>> = None;
        // The starts the dictionary's unions of masks allow, as far as the trigrams looked up
        // so far say: none left rules the shard out before any list is read.
        let mut allowed_by_unions = 0xff;
        let mut round = 0..FIRST_ROUND.min(self.trigrams.len());
        while !round.is_empty() {
            let Some(entries) = shard.entries(&self.trigrams[round.clone()]) else {
                return Ok(PartSet::Some(Vec::new()));
            };
            for (entry, i) in entries.iter().zip(round.clone()) {
                allowed_by_unions &= allowed_starts(entry.union, &self.occurrences[i]);
            }
            if allowed_by_unions == 0 {
                return Ok(PartSet::Some(Vec::new()));
            }
            let mut counted: Vec<(Entry, usize)> = entries.into_iter().zip(round.clone()).collect();
            counted.sort_unstable_by_key(|&(entry, i)| (entry.count, i));
            for (entry, i) in counted {
                let at = &self.occurrences[i];
                let starts = |masks: Masks| allowed_starts(masks, at);
                let left = match &mut parts {
                    None => {
                        let mut first = Vec::with_capacity(entry.count as usize);
                        shard.visit_postings(entry, |posting| {
                            let possible = starts(posting.masks);
                            if possible != 0 {
                                first.push((posting.part, possible));
                            }
                            true
                        })?;
                        parts.insert(first)
                    }
                    Some(parts) => {
                        intersect_starts(shard, entry, parts, starts)?;
                        parts
                    }
                };
                if left.is_empty() {
                    return Ok(PartSet::Some(Vec::new()));
                }
            }
            round = round.end..(round.end + round.len() * 2).min(self.trigrams.len());
        }
        Ok(PartSet::Some(
            parts
                .unwrap_or_default()
                .into_iter()
                .map(|(part, _)| part)
                .collect(),
        ))
    }
}

/// How many of a literal's trigrams a shard's dictionary is first searched for.
const FIRST_ROUND: usize = 4;

/// What a pattern requires, as index lookups.
#[derive(Debug)]
enum Lookup {
    Anything,
    Literal(LiteralLookup),
    All(Vec<Lookup>),
    Any(Vec<Lookup>),
}

impl Lookup {
    fn new(required: &Required, case_sensitive: bool) -> Lookup {
        match required {
            Required::Anything => Lookup::Anything,
            Required::Literal(bytes) => {
                LiteralLookup::new(bytes, case_sensitive).map_or(Lookup::Anything, Lookup::Literal)
            }
            Required::All(parts) => Lookup::All(
                parts
                    .iter()
                    .map(|p| Lookup::new(p, case_sensitive))
                    .collect(),
            ),
            Required::Any(parts) => Lookup::Any(
                parts
                    .iter()
                    .map(|p| Lookup::new(p, case_sensitive))
                    .collect(),
            ),
        }
    }

    fn find(&self, shard: &Shard) -> Result<PartSet, IndexError> {
        Ok(match self {
            Lookup::Anything => PartSet::All,
            Lookup::Literal(literal) => literal.find(shard)?,
            Lookup::All(parts) => {
                let mut set = PartSet::All;
                for part in parts {
                    set = set.and(part.find(shard)?);
                    if set == PartSet::Some(Vec::new()) {
                        break;
                    }
                }
                set
            }
            Lookup::Any(parts) => {
                let mut set = PartSet::Some(Vec::new());
                for part in parts {
                    set = set.or(part.find(shard)?);
                    if set == PartSet::All {
                        break;
                    }
                }
                set
            }
        })
    }
}

/// The index's side of a query's pattern expression, worked out once for every shard searched:
/// which parts may hold a match.
#[derive(Debug)]
pub struct CandidatePlan {
    root: Node,
}

#[derive(Debug)]
enum Node {
    Everything,
    Atom {
        /// `None` for a pattern that matches paths only.
        content: Option<Lookup>,
        /// The pattern, where it may match a path.
        path: Option<PathPattern>,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// A pattern where it may match a path.
#[derive(Debug)]
struct PathPattern {
    regex: regex::bytes::Regex,
    /// Trigrams every path it matches holds, folded (none when unknown).
    trigrams: Vec<Trigram>,
}

impl CandidatePlan {
    pub fn new(expr: Option<&Expr>, case_sensitive: bool) -> CandidatePlan {
        CandidatePlan {
            root: expr.map_or(Node::Everything, |e| Node::new(e, case_sensitive)),
        }
    }

    /// The parts of a shard that may hold a match.
    pub fn candidates(&self, shard: &Shard) -> Result<PartSet, IndexError> {
        self.root.candidates(shard)
    }
}

impl Node {
    fn new(expr: &Expr, case_sensitive: bool) -> Node {
        let all = |children: &[Expr]| {
            children
                .iter()
                .map(|c| Node::new(c, case_sensitive))
                .collect()
        };
        match expr {
            Expr::Atom(atom) => Node::Atom {
                content: match atom.scope {
                    Scope::Path => None,
                    _ if atom.literal => Some(Lookup::new(
                        &Required::Literal(atom.text.as_bytes().to_vec()),
                        case_sensitive,
                    )),
                    _ => {
                        let (required, folded_case) = required_and_case(&atom.text);
                        Some(Lookup::new(&required, case_sensitive && !folded_case))
                    }
                },
                path: (atom.scope != Scope::Content).then(|| PathPattern {
                    regex: atom.regex.clone(),
                    // A literal's (folded) trigrams, which a path it matches must hold.
                    trigrams: if atom.literal {
                        of_literal(atom.text.as_bytes(), false)
                    } else {
                        Vec::new()
                    },
                }),
            },
            Expr::And(children) => Node::And(all(children)),
            Expr::Or(children) => Node::Or(all(children)),
            Expr::Not(_) => Node::Everything,
        }
    }

    fn candidates(&self, shard: &Shard) -> Result<PartSet, IndexError> {
        Ok(match self {
            Node::Everything => PartSet::All,
            Node::Atom { content, path } => {
                let content = match content {
                    Some(lookup) => lookup.find(shard)?,
                    None => PartSet::Some(Vec::new()),
                };
                match path {
                    Some(PathPattern { regex, trigrams })
                        if content != PartSet::All && shard.paths_may_have(trigrams) =>
                    {
                        let first_parts = shard
                            .docs_with_matching_path(regex)
                            .into_iter()
                            .map(|doc| shard.parts_of(doc).start)
                            .collect();
                        content.or(PartSet::Some(first_parts))
                    }
                    _ => content,
                }
            }
            Node::And(children) => {
                let mut set = PartSet::All;
                for child in children {
                    set = set.and(whole_docs(shard, child.candidates(shard)?));
                }
                set
            }
            Node::Or(children) => {
                let mut set = PartSet::Some(Vec::new());
                for child in children {
                    set = set.or(child.candidates(shard)?);
                }
                set
            }
        })
    }
}

/// Whether `expr`'s matches in a document are the union of its matches in each part (a pattern,
/// or patterns joined by `or`): then only the candidate parts need reading.
pub fn per_part(expr: &Expr) -> bool {
    match expr {
        Expr::Atom(_) => true,
        Expr::Or(children) => children.iter().all(per_part),
        Expr::And(_) | Expr::Not(_) => false,
    }
}

/// Every part of each document that has a part in `set`.
pub fn whole_docs(shard: &Shard, set: PartSet) -> PartSet {
    match set {
        PartSet::All => PartSet::All,
        PartSet::Some(parts) => {
            let mut out = Vec::with_capacity(parts.len());
            for part in parts {
                let doc = shard.parts()[part as usize].doc;
                let whole = shard.parts_of(doc);
                // Parts arrive ascending: a document already widened ends where `out` does.
                if out.last().is_none_or(|&last| last < whole.start) {
                    out.extend(whole);
                }
            }
            PartSet::Some(out)
        }
    }
}

/// Whether the index can narrow a search for `expr` at all: some content pattern that must match
/// holds literal text of three or more characters. When it cannot, every file is scanned.
pub fn narrows(expr: &Expr) -> bool {
    fn literal_narrows(required: &Required) -> bool {
        match required {
            Required::Anything => false,
            Required::Literal(bytes) => bytes.len() >= 3,
            Required::All(parts) => parts.iter().any(literal_narrows),
            Required::Any(parts) => !parts.is_empty() && parts.iter().all(literal_narrows),
        }
    }
    match expr {
        Expr::Atom(atom) if atom.scope == Scope::Path => true,
        Expr::Atom(atom) if atom.literal => atom.text.len() >= 3,
        Expr::Atom(atom) => literal_narrows(&required(&atom.text)),
        Expr::And(children) => children.iter().any(narrows),
        Expr::Or(children) => !children.is_empty() && children.iter().all(narrows),
        Expr::Not(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> Required {
        Required::Literal(s.as_bytes().to_vec())
    }

    #[test]
    fn queries_without_literals_are_known_not_to_narrow() {
        use crate::query::{PatternType, plan};
        let narrows_query = |q: &str| {
            let plan = plan(q, PatternType::Keyword).unwrap();
            narrows(plan.basics[0].pattern.as_ref().unwrap())
        };
        assert!(narrows_query("needle"));
        assert!(narrows_query("/impl.*Iterator/"));
        assert!(narrows_query("fn and needle"));
        assert!(!narrows_query("fn"));
        assert!(narrows_query("/0x[0-9a-f]{16}/"));
        assert!(!narrows_query("/[a-z]+_[a-z]+_[a-z]+\\(/"));
        assert!(!narrows_query("needle or fn"));
        assert!(!narrows_query("-content:needle"));
    }

    #[test]
    fn positions_rule_out_documents_with_the_trigrams_in_another_order() {
        use crate::index::format::ShardBuilder;
        let texts: [&[u8]; 4] = [
            b"pub struct Config { x: u8 }\n",
            b"pub struct Other;\nimpl Config for Other {}\n",
            b"// a struct Config that is pub\npub struct X;\n",
            b"nothing here\n",
        ];
        let dir = tempfile::tempdir().unwrap();
        let mut builder = ShardBuilder::default();
        for (i, text) in texts.iter().enumerate() {
            builder
                .add(
                    format!("{i}.rs"),
                    format!("{i:040}"),
                    text.len() as u64,
                    0,
                    text,
                )
                .unwrap();
        }
        let path = dir.path().join("0.qix");
        builder.write(&path).unwrap();
        let shard = Shard::open(&path).unwrap();
        let candidates = |literal: &str, case_sensitive: bool| {
            Lookup::new(&lit(literal), case_sensitive)
                .find(&shard)
                .unwrap()
        };
        // Documents 1 and 2 hold every trigram of the phrase, never in its order.
        assert_eq!(
            candidates("pub struct Config", true),
            PartSet::Some(vec![0])
        );
        assert_eq!(
            candidates("PUB STRUCT CONFIG", false),
            PartSet::Some(vec![0])
        );
        // No literal of any text is ever ruled out of its own document.
        for (doc, text) in texts.iter().enumerate() {
            for start in 0..text.len() {
                for end in start + 3..=text.len() {
                    let literal = String::from_utf8_lossy(&text[start..end]).into_owned();
                    match candidates(&literal, true) {
                        PartSet::All => {}
                        PartSet::Some(docs) => {
                            assert!(docs.contains(&(doc as u32)), "{literal:?} in {doc}")
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn paths_are_matched_only_in_shards_whose_paths_may_hold_the_literal() {
        use crate::index::format::ShardBuilder;
        use crate::query::{PatternType, plan};
        let dir = tempfile::tempdir().unwrap();
        let mut builder = ShardBuilder::default();
        for (i, path) in ["src/Config_Loader.rs", "src/main.rs"].iter().enumerate() {
            builder
                .add(path.to_string(), format!("{i:040}"), 3, 0, b"x\n")
                .unwrap();
        }
        let path = dir.path().join("0.qix");
        builder.write(&path).unwrap();
        let shard = Shard::open(&path).unwrap();
        let candidates = |query: &str| {
            let plan = plan(query, PatternType::Keyword).unwrap();
            CandidatePlan::new(plan.basics[0].pattern.as_ref(), plan.case_sensitive)
                .candidates(&shard)
                .unwrap()
        };
        // Found by its path alone, in any case; the content holds neither literal.
        assert_eq!(candidates("config_loader"), PartSet::Some(vec![0]));
        assert_eq!(candidates("main.rs"), PartSet::Some(vec![1]));
        assert_eq!(candidates("case:yes Config_Loader"), PartSet::Some(vec![0]));
        // Case is left to the path pattern itself.
        assert_eq!(candidates("case:yes config_loader"), PartSet::Some(vec![]));
        assert!(!shard.paths_may_have(&of_literal(b"zzqq", false)));
        assert!(shard.paths_may_have(&of_literal(b"LOADER", false)));
        assert_eq!(candidates("zzqq"), PartSet::Some(vec![]));
    }

    #[test]
    fn rare_looking_trigrams_are_looked_up_first() {
        use crate::index::trigram::pack;
        let of = |t: &[u8; 3]| rarity(pack(t[0], t[1], t[2]));
        assert!(of(b"EVP") > of(b"ent"));
        assert!(of(b"x86") > of(b"_ct"));
        assert!(of(b"_ct") > of(b"the"));
    }

    #[test]
    fn literals_are_read_off_regexps() {
        let any = |strings: &[&str]| Required::Any(strings.iter().map(|s| lit(s)).collect());
        assert_eq!(required("hello"), lit("hello"));
        assert_eq!(required(r"foo\.bar"), lit("foo.bar"));
        assert_eq!(
            required(r"impl.*Iterator for"),
            Required::All(vec![lit("impl"), lit("Iterator for")])
        );
        assert_eq!(required("(abc|def)x"), any(&["abcx", "defx"]));
        assert_eq!(required("(abc|d*)"), Required::Anything);
        // The last `a` of `a+` is followed by `bc`; `xa` is too short to look up.
        assert_eq!(required("xa+bc"), lit("abc"));
        assert_eq!(required("x(ab)?y"), Required::Anything);
        assert_eq!(required("[a-z]+_[a-z]+"), Required::Anything);
        assert_eq!(required("(unclosed"), Required::Anything);
        // Small classes are expanded: `0x` and one hex digit, then digits too many to expand.
        let hex: Vec<String> = "0123456789abcdef"
            .chars()
            .map(|c| format!("0x{c}"))
            .collect();
        let hex: Vec<&str> = hex.iter().map(String::as_str).collect();
        assert_eq!(required("0x[0-9a-f]{16}"), any(&hex));
        assert_eq!(
            required("v[12]_(ab|cd)"),
            any(&["v1_ab", "v1_cd", "v2_ab", "v2_cd"])
        );
        // Variants in ASCII case are one lookup: the index folds them.
        assert_eq!(required("(?i)needle"), lit("NEEDLE"));
        assert_eq!(required("[Ff]oo[Bb]ar"), lit("FooBar"));
        // Other case variants are not the same text.
        assert!(matches!(required("(?i)class"), Required::Any(v) if v.len() == 4));
        // Variants folded together are then looked up without case.
        let folds = |pattern: &str| required_and_case(pattern).1;
        assert!(folds("(?i)needle"));
        assert!(folds("[Ff]oo"));
        assert!(folds("(abc|ABC)"));
        assert!(folds("(a|aB)(bc|c)"), "`abc` and `aBc`");
        assert!(!folds(r"\w+_test"));
        assert!(!folds("Needle[0-9]"));
        assert!(!folds("(abc|abc)"));
    }
}
