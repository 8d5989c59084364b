//! Parsing with the PostgreSQL dialect of `sqlparser`: exactly one statement, bounded length
//! and nesting depth.

use sqlparser::ast::{Query, Statement};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::refusal::{Checked, Refusal};

/// Deepest nesting the parser follows (sub-queries, parentheses, expressions).
pub(crate) const MAX_DEPTH: usize = 40;

/// Stack of the thread that parses, checks and prints a model's statement: enough for
/// [`MAX_DEPTH`] in unoptimised builds, whose frames are large. Reserved, not committed.
const CHECK_STACK: usize = 64 * 1024 * 1024;

/// Runs `f` (parsing, checking and printing one statement) on a thread with a stack of its
/// own, so deep nesting is refused instead of overflowing the caller's stack; a panic in the
/// parser becomes a refusal.
pub(crate) fn on_check_stack<T: Send>(f: impl FnOnce() -> Checked<T> + Send) -> Checked<T> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("logline-sql-check".into())
            .stack_size(CHECK_STACK)
            .spawn_scoped(scope, f)
            .map_err(|e| Refusal::Other(format!("the SQL checker could not start: {e}")))?;
        handle
            .join()
            .unwrap_or_else(|_| Err(Refusal::Other("the SQL checker failed on this SQL".into())))
    })
}

/// The one statement in `sql`.
pub(crate) fn parse_statement(sql: &str, max_bytes: usize) -> Checked<Statement> {
    if sql.len() > max_bytes {
        return Err(Refusal::TooLong {
            len: sql.len(),
            max: max_bytes,
        });
    }
    if sql.contains('\0') {
        return Err(Refusal::Other("the SQL contains a NUL character".into()));
    }
    let mut statements = Parser::new(&PostgreSqlDialect {})
        .with_recursion_limit(MAX_DEPTH)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements())
        .map_err(|e| Refusal::Parse(e.to_string()))?;
    if statements.len() != 1 {
        return Err(Refusal::StatementCount(statements.len()));
    }
    statements.pop().ok_or(Refusal::StatementCount(0))
}

/// `sql` as a query (trusted text built by the tools).
pub(crate) fn parse_query(sql: &str) -> Checked<Query> {
    match parse_statement(sql, usize::MAX)? {
        Statement::Query(q) => Ok(*q),
        other => Err(Refusal::Other(format!("not a query: {other}"))),
    }
}

/// A short name of a statement's kind, for refusals.
pub(crate) fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let mut words = text.split_whitespace().take(2);
    let first = words.next().unwrap_or("?").to_ascii_uppercase();
    match first.as_str() {
        "CREATE" | "DROP" | "ALTER" => {
            format!(
                "{first} {}",
                words.next().unwrap_or("").to_ascii_uppercase()
            )
        }
        _ => first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_only() {
        assert!(parse_statement("SELECT 1;", 100).is_ok());
        assert_eq!(
            parse_statement("SELECT 1; SELECT 2", 100).unwrap_err(),
            Refusal::StatementCount(2)
        );
        assert_eq!(
            parse_statement("", 100).unwrap_err(),
            Refusal::StatementCount(0)
        );
        assert!(matches!(
            parse_statement("SELECT 1", 3).unwrap_err(),
            Refusal::TooLong { .. }
        ));
    }

    #[test]
    fn deep_nesting_is_a_refusal_not_a_stack_overflow() {
        let nested = |open: &str, close: &str, n: usize| {
            format!("SELECT {}1{}", open.repeat(n), close.repeat(n))
        };
        for n in [5, 12] {
            let sql = nested("(SELECT ", " FROM t)", n);
            assert!(
                on_check_stack(|| parse_statement(&sql, usize::MAX)).is_ok(),
                "{n}"
            );
        }
        for sql in [
            nested("(", ")", 5000),
            nested("(SELECT ", " FROM t)", 39),
            nested("(SELECT ", " FROM t)", 500),
            nested("ARRAY[", "]", 300),
            nested("- ", "", 300),
            nested("NOT ", "", 300),
            nested("CASE WHEN true THEN ", " END", 300),
        ] {
            assert!(
                matches!(
                    on_check_stack(|| parse_statement(&sql, usize::MAX)),
                    Err(Refusal::Parse(_))
                ),
                "{}",
                &sql[..40]
            );
        }
    }
}
