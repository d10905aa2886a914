//! The query language.

mod parser;
mod plan;

pub use parser::{Field, Filter, MAX_QUERY_LEN, Node, ParseError, Pattern, PatternType, parse};
pub use plan::{
    Atom, BasicQuery, DEFAULT_COUNT, DEFAULT_TIMEOUT, Expr, MAX_TIMEOUT, Plan, ResultType, Scope,
    Scopes, Select, Tristate, parse_duration, plan,
};
