//! The parser: tokens to a syntax tree that is not yet checked against search attributes.
//!
//! It accepts a little more than Temporal supports (LIKE, REGEXP, `<=>`, functions, IS TRUE,
//! LIMIT) so that the checker can refuse those with Temporal's "not supported" messages
//! instead of a syntax error. Precedence is MySQL's: OR < AND < NOT < comparison.
//! AND and OR chains are kept flat (n-ary) so that a long chain never makes a deep tree.

use crate::error::QueryError;
use crate::lexer::{Kw, Tok, Token, syntax_error, tokenize};

/// Deepest nesting of parentheses and NOT that the parser accepts (Temporal's parser stops at
/// the same depth). It keeps every recursive walk of the tree shallow.
pub(crate) const MAX_NESTING: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    /// A number as written, with a leading `-` if negated.
    Num(String),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Column(String),
    Lit(Lit),
    Tuple(Vec<Operand>),
    Func(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    NullSafeEq,
    Like,
    NotLike,
    Regexp,
    NotRegexp,
    StartsWith,
    NotStartsWith,
    In,
    NotIn,
}

impl RawOp {
    /// The operator as Temporal names it in error messages (upper case).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RawOp::Eq => "=",
            RawOp::Ne => "!=",
            RawOp::Lt => "<",
            RawOp::Le => "<=",
            RawOp::Gt => ">",
            RawOp::Ge => ">=",
            RawOp::NullSafeEq => "<=>",
            RawOp::Like => "LIKE",
            RawOp::NotLike => "NOT LIKE",
            RawOp::Regexp => "REGEXP",
            RawOp::NotRegexp => "NOT REGEXP",
            RawOp::StartsWith => "STARTS_WITH",
            RawOp::NotStartsWith => "NOT STARTS_WITH",
            RawOp::In => "IN",
            RawOp::NotIn => "NOT IN",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IsWhat {
    Null,
    NotNull,
    True,
    NotTrue,
    False,
    NotFalse,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RawExpr {
    And(Vec<RawExpr>),
    Or(Vec<RawExpr>),
    Not(Box<RawExpr>),
    Compare {
        left: Operand,
        op: RawOp,
        right: Operand,
    },
    Between {
        left: Operand,
        from: Operand,
        to: Operand,
        negated: bool,
    },
    Is {
        left: Operand,
        what: IsWhat,
    },
    /// An operand standing alone where a condition belongs (`WHERE WorkflowId`, `WHERE true`).
    Bare(Operand),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawOrder {
    pub column: Operand,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct RawQuery {
    pub filter: Option<RawExpr>,
    pub group_by: Vec<Operand>,
    pub order_by: Vec<RawOrder>,
    pub has_limit: bool,
}

pub(crate) fn parse(input: &str) -> Result<RawQuery, QueryError> {
    let tokens = tokenize(input)?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
    };
    p.query()
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Tok {
        let i = (self.at + ahead).min(self.tokens.len() - 1);
        &self.tokens[i].tok
    }

    fn next(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        tok
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == tok {
            self.next();
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: Kw) -> bool {
        self.eat(&Tok::Kw(kw))
    }

    fn error(&self) -> QueryError {
        let token = &self.tokens[self.at.min(self.tokens.len() - 1)];
        syntax_error(token.pos, Some(&token.text))
    }

    fn expect(&mut self, tok: &Tok) -> Result<(), QueryError> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn expect_kw(&mut self, kw: Kw) -> Result<(), QueryError> {
        self.expect(&Tok::Kw(kw))
    }

    fn enter(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth >= MAX_NESTING {
            let pos = self.tokens[self.at.min(self.tokens.len() - 1)].pos;
            return Err(QueryError::malformed(format!(
                "max nesting level reached at position {}",
                pos + 1
            )));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn query(&mut self) -> Result<RawQuery, QueryError> {
        let mut q = RawQuery::default();
        let starts_with_clause = matches!(
            (self.peek(), self.peek_at(1)),
            (Tok::Kw(Kw::Order | Kw::Group), Tok::Kw(Kw::By))
        );
        if *self.peek() != Tok::Eof && !starts_with_clause {
            q.filter = Some(self.or_expr()?);
        }
        if self.eat_kw(Kw::Group) {
            self.expect_kw(Kw::By)?;
            loop {
                q.group_by.push(self.operand()?);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw(Kw::Order) {
            self.expect_kw(Kw::By)?;
            loop {
                let column = self.operand()?;
                let descending = if self.eat_kw(Kw::Desc) {
                    true
                } else {
                    self.eat_kw(Kw::Asc);
                    false
                };
                q.order_by.push(RawOrder { column, descending });
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        if self.eat_kw(Kw::Limit) {
            // `LIMIT n` or `LIMIT offset, n`; refused later, parsed only to say so.
            self.operand()?;
            if self.eat(&Tok::Comma) {
                self.operand()?;
            }
            q.has_limit = true;
        }
        if *self.peek() != Tok::Eof {
            return Err(self.error());
        }
        Ok(q)
    }

    fn or_expr(&mut self) -> Result<RawExpr, QueryError> {
        let mut items = vec![self.and_expr()?];
        while self.eat_kw(Kw::Or) {
            items.push(self.and_expr()?);
        }
        Ok(flatten(items, true))
    }

    fn and_expr(&mut self) -> Result<RawExpr, QueryError> {
        let mut items = vec![self.not_expr()?];
        while self.eat_kw(Kw::And) {
            items.push(self.not_expr()?);
        }
        Ok(flatten(items, false))
    }

    fn not_expr(&mut self) -> Result<RawExpr, QueryError> {
        if self.eat_kw(Kw::Not) {
            self.enter()?;
            let inner = self.not_expr()?;
            self.leave();
            return Ok(RawExpr::Not(Box::new(inner)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<RawExpr, QueryError> {
        let left = if *self.peek() == Tok::LParen {
            // A parenthesised condition, a tuple, or a parenthesised operand.
            self.next();
            self.enter()?;
            let inner = self.or_expr()?;
            let result = if self.eat(&Tok::Comma) {
                let mut items = vec![bare_operand(inner).ok_or_else(|| self.error())?];
                loop {
                    items.push(self.operand()?);
                    if !self.eat(&Tok::Comma) {
                        break;
                    }
                }
                Operand::Tuple(items)
            } else {
                match inner {
                    RawExpr::Bare(operand) => operand,
                    other => {
                        self.expect(&Tok::RParen)?;
                        self.leave();
                        return Ok(other);
                    }
                }
            };
            self.expect(&Tok::RParen)?;
            self.leave();
            result
        } else {
            self.operand()?
        };
        self.postfix(left)
    }

    fn postfix(&mut self, left: Operand) -> Result<RawExpr, QueryError> {
        let simple = match self.peek() {
            Tok::Eq => Some(RawOp::Eq),
            Tok::Ne => Some(RawOp::Ne),
            Tok::Lt => Some(RawOp::Lt),
            Tok::Le => Some(RawOp::Le),
            Tok::Gt => Some(RawOp::Gt),
            Tok::Ge => Some(RawOp::Ge),
            Tok::NullSafeEq => Some(RawOp::NullSafeEq),
            Tok::Kw(Kw::Like) => Some(RawOp::Like),
            Tok::Kw(Kw::Regexp) => Some(RawOp::Regexp),
            Tok::Kw(Kw::StartsWith) => Some(RawOp::StartsWith),
            _ => None,
        };
        if let Some(op) = simple {
            self.next();
            return self.compare_rest(left, op);
        }
        let negated = matches!(self.peek(), Tok::Kw(Kw::Not))
            && matches!(
                self.peek_at(1),
                Tok::Kw(Kw::In | Kw::Between | Kw::Like | Kw::Regexp | Kw::StartsWith)
            );
        let before = self.at;
        if negated {
            self.next();
        }
        match self.next() {
            Tok::Kw(Kw::Like) => self.compare_rest(left, RawOp::NotLike),
            Tok::Kw(Kw::Regexp) => self.compare_rest(left, RawOp::NotRegexp),
            Tok::Kw(Kw::StartsWith) => self.compare_rest(left, RawOp::NotStartsWith),
            Tok::Kw(Kw::In) => {
                if *self.peek() != Tok::LParen {
                    return Err(self.error());
                }
                let right = self.operand()?;
                let right = match right {
                    Operand::Tuple(_) => right,
                    single => Operand::Tuple(vec![single]),
                };
                let op = if negated { RawOp::NotIn } else { RawOp::In };
                Ok(RawExpr::Compare { left, op, right })
            }
            Tok::Kw(Kw::Between) => {
                let from = self.operand()?;
                self.expect_kw(Kw::And)?;
                let to = self.operand()?;
                Ok(RawExpr::Between {
                    left,
                    from,
                    to,
                    negated,
                })
            }
            Tok::Kw(Kw::Is) => {
                let not = self.eat_kw(Kw::Not);
                let at_what = self.at;
                let what = match (self.next(), not) {
                    (Tok::Kw(Kw::Null), false) => IsWhat::Null,
                    (Tok::Kw(Kw::Null), true) => IsWhat::NotNull,
                    (Tok::Kw(Kw::True), false) => IsWhat::True,
                    (Tok::Kw(Kw::True), true) => IsWhat::NotTrue,
                    (Tok::Kw(Kw::False), false) => IsWhat::False,
                    (Tok::Kw(Kw::False), true) => IsWhat::NotFalse,
                    _ => {
                        self.at = at_what;
                        return Err(self.error());
                    }
                };
                Ok(RawExpr::Is { left, what })
            }
            _ => {
                // Not a postfix operator: the operand stands alone. Step back so the caller
                // sees the token that follows it.
                self.at = before;
                Ok(RawExpr::Bare(left))
            }
        }
    }

    fn compare_rest(&mut self, left: Operand, op: RawOp) -> Result<RawExpr, QueryError> {
        let right = self.operand()?;
        if matches!(op, RawOp::Like | RawOp::NotLike) && self.eat_kw(Kw::Escape) {
            self.operand()?;
        }
        Ok(RawExpr::Compare { left, op, right })
    }

    /// A value or column: a literal, a (signed) number, a name, a function call, or a
    /// parenthesised list of operands.
    fn operand(&mut self) -> Result<Operand, QueryError> {
        let start = self.at;
        match self.next() {
            Tok::Str(s) => Ok(Operand::Lit(Lit::Str(s))),
            Tok::Num(n) => Ok(Operand::Lit(Lit::Num(n))),
            Tok::Kw(Kw::True) => Ok(Operand::Lit(Lit::Bool(true))),
            Tok::Kw(Kw::False) => Ok(Operand::Lit(Lit::Bool(false))),
            Tok::Kw(Kw::Null) => Ok(Operand::Lit(Lit::Null)),
            sign @ (Tok::Minus | Tok::Plus) => match self.next() {
                Tok::Num(n) if sign == Tok::Minus => Ok(Operand::Lit(Lit::Num(negate(&n)))),
                Tok::Num(n) => Ok(Operand::Lit(Lit::Num(n))),
                _ => {
                    self.at = start + 1;
                    Err(self.error())
                }
            },
            Tok::Ident { name, quoted } => {
                if !quoted && *self.peek() == Tok::LParen {
                    self.next();
                    self.enter()?;
                    if !self.eat(&Tok::RParen) {
                        loop {
                            if !self.eat(&Tok::Kw(Kw::Null)) {
                                self.or_expr()?;
                            }
                            if !self.eat(&Tok::Comma) {
                                break;
                            }
                        }
                        self.expect(&Tok::RParen)?;
                    }
                    self.leave();
                    return Ok(Operand::Func(name));
                }
                Ok(Operand::Column(name))
            }
            Tok::LParen => {
                self.enter()?;
                let mut items = Vec::new();
                loop {
                    items.push(self.operand()?);
                    if !self.eat(&Tok::Comma) {
                        break;
                    }
                }
                self.expect(&Tok::RParen)?;
                self.leave();
                if items.len() == 1 {
                    Ok(items.remove(0))
                } else {
                    Ok(Operand::Tuple(items))
                }
            }
            _ => {
                self.at = start;
                Err(self.error())
            }
        }
    }
}

fn negate(n: &str) -> String {
    match n.strip_prefix('-') {
        Some(rest) => rest.to_owned(),
        None => format!("-{n}"),
    }
}

fn bare_operand(expr: RawExpr) -> Option<Operand> {
    match expr {
        RawExpr::Bare(operand) => Some(operand),
        _ => None,
    }
}

fn flatten(mut items: Vec<RawExpr>, or: bool) -> RawExpr {
    if items.len() == 1 {
        return items.remove(0);
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            RawExpr::Or(inner) if or => flat.extend(inner),
            RawExpr::And(inner) if !or => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if or {
        RawExpr::Or(flat)
    } else {
        RawExpr::And(flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(n: &str) -> Operand {
        Operand::Column(n.to_owned())
    }

    fn s(v: &str) -> Operand {
        Operand::Lit(Lit::Str(v.to_owned()))
    }

    fn eq(c: &str, v: &str) -> RawExpr {
        RawExpr::Compare {
            left: col(c),
            op: RawOp::Eq,
            right: s(v),
        }
    }

    fn filter(q: &str) -> RawExpr {
        parse(q).expect("parses").filter.expect("has a filter")
    }

    #[test]
    fn precedence_is_or_and_not() {
        assert_eq!(
            filter("a = 'x' OR b = 'y' AND NOT c = 'z'"),
            RawExpr::Or(vec![
                eq("a", "x"),
                RawExpr::And(vec![eq("b", "y"), RawExpr::Not(Box::new(eq("c", "z")))]),
            ])
        );
        assert_eq!(
            filter("(a = 'x' OR b = 'y') AND c = 'z'"),
            RawExpr::And(vec![
                RawExpr::Or(vec![eq("a", "x"), eq("b", "y")]),
                eq("c", "z"),
            ])
        );
    }

    #[test]
    fn chains_stay_flat() {
        let q = (0..10_000)
            .map(|i| format!("a = '{i}'"))
            .collect::<Vec<_>>()
            .join(" AND ");
        match filter(&q) {
            RawExpr::And(items) => assert_eq!(items.len(), 10_000),
            other => panic!("not flat: {other:?}"),
        }
    }

    #[test]
    fn postfix_forms() {
        assert_eq!(
            filter("a NOT IN ('x', 'y')"),
            RawExpr::Compare {
                left: col("a"),
                op: RawOp::NotIn,
                right: Operand::Tuple(vec![s("x"), s("y")]),
            }
        );
        assert_eq!(
            filter("a IN ('x')"),
            RawExpr::Compare {
                left: col("a"),
                op: RawOp::In,
                right: Operand::Tuple(vec![s("x")]),
            }
        );
        assert_eq!(
            filter("a NOT BETWEEN 1 AND -2"),
            RawExpr::Between {
                left: col("a"),
                from: Operand::Lit(Lit::Num("1".into())),
                to: Operand::Lit(Lit::Num("-2".into())),
                negated: true,
            }
        );
        assert_eq!(
            filter("a is not null"),
            RawExpr::Is {
                left: col("a"),
                what: IsWhat::NotNull
            }
        );
        assert_eq!(
            filter("a NOT STARTS_WITH 'x'"),
            RawExpr::Compare {
                left: col("a"),
                op: RawOp::NotStartsWith,
                right: s("x"),
            }
        );
        assert_eq!(filter("(a) = 'x'"), eq("a", "x"));
        assert_eq!(
            filter("coalesce(a, 'b')"),
            RawExpr::Bare(Operand::Func("coalesce".into()))
        );
    }

    #[test]
    fn clauses() {
        let q = parse("order by StartTime desc, CloseTime").expect("parses");
        assert_eq!(q.filter, None);
        assert_eq!(
            q.order_by,
            vec![
                RawOrder {
                    column: col("StartTime"),
                    descending: true
                },
                RawOrder {
                    column: col("CloseTime"),
                    descending: false
                },
            ]
        );
        let q = parse("a = 'x' GROUP BY ExecutionStatus LIMIT 10").expect("parses");
        assert_eq!(q.group_by, vec![col("ExecutionStatus")]);
        assert!(q.has_limit);
        assert_eq!(parse("").expect("empty"), RawQuery::default());
        assert_eq!(parse("   ").expect("blank"), RawQuery::default());
    }

    #[test]
    fn syntax_errors() {
        for q in [
            "a =",
            "a = 'x' AND",
            "(a = 'x'",
            "a = 'x')",
            "a IN 'x'",
            "a IN ()",
            "a BETWEEN 1",
            "a IS",
            "a IS 'x'",
            "AND",
            "a = 'x' b = 'y'",
            "order by",
            "a = - 'x'",
            "a = 'x' ORDER StartTime",
        ] {
            let e = parse(q).expect_err(q);
            assert!(
                e.to_string()
                    .starts_with("invalid query: malformed SQL query: syntax error at position "),
                "{q}: {e}"
            );
        }
        assert_eq!(
            parse("a = 'x' b").expect_err("junk").detail(),
            "syntax error at position 9 near 'b'"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = format!("{}a = 'x'{}", "(".repeat(500), ")".repeat(500));
        let e = parse(&deep).expect_err("too deep");
        assert!(e.detail().starts_with("max nesting level reached"), "{e}");
        let nots = format!("{}a = 'x'", "NOT ".repeat(500));
        assert!(parse(&nots).is_err());
        let ok = format!("{}a = 'x'{}", "(".repeat(50), ")".repeat(50));
        assert_eq!(parse(&ok).expect("50 deep").filter, Some(eq("a", "x")));
    }
}
