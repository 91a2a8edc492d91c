//! Splits a query into tokens.
//!
//! The token rules follow the MySQL dialect Temporal's parser (a Vitess fork) reads: keywords
//! in any case, names bare or in backticks, strings in single or double quotes with doubled
//! quotes and backslash escapes, `!=` and `<>` as the same operator, `&&` and `||` for AND and
//! OR.

use crate::error::QueryError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A bare or backticked name. `quoted` is true for backticks, which are never keywords.
    Ident {
        name: String,
        quoted: bool,
    },
    Str(String),
    /// A number as written (digits, maybe a fraction and exponent); typed later.
    Num(String),
    Kw(Kw),
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    NullSafeEq,
    LParen,
    RParen,
    Comma,
    Minus,
    Plus,
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    And,
    Or,
    Not,
    In,
    Is,
    Null,
    Between,
    Like,
    Regexp,
    StartsWith,
    Escape,
    Order,
    Group,
    By,
    Asc,
    Desc,
    Limit,
    True,
    False,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("and", Kw::And),
    ("or", Kw::Or),
    ("not", Kw::Not),
    ("in", Kw::In),
    ("is", Kw::Is),
    ("null", Kw::Null),
    ("between", Kw::Between),
    ("like", Kw::Like),
    ("regexp", Kw::Regexp),
    ("starts_with", Kw::StartsWith),
    ("escape", Kw::Escape),
    ("order", Kw::Order),
    ("group", Kw::Group),
    ("by", Kw::By),
    ("asc", Kw::Asc),
    ("desc", Kw::Desc),
    ("limit", Kw::Limit),
    ("true", Kw::True),
    ("false", Kw::False),
];

/// Whether a bare word would read as a keyword rather than a name.
pub(crate) fn is_keyword(word: &str) -> bool {
    let lower = word.to_ascii_lowercase();
    KEYWORDS.iter().any(|(k, _)| *k == lower)
}

/// Whether a name can be written without backticks.
pub(crate) fn is_bare_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_ident_start) && chars.all(is_ident_char) && !is_keyword(name)
}

/// A token and where it starts (a char index, for error positions) and its source text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: usize,
    pub text: String,
}

pub(crate) fn syntax_error(pos: usize, near: Option<&str>) -> QueryError {
    match near {
        Some(text) if !text.is_empty() => QueryError::malformed(format!(
            "syntax error at position {} near '{}'",
            pos + 1,
            text
        )),
        _ => QueryError::malformed(format!("syntax error at position {}", pos + 1)),
    }
}

pub(crate) fn tokenize(input: &str) -> Result<Vec<Token>, QueryError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let three: String = chars[i..chars.len().min(i + 3)].iter().collect();
        let (tok, len) = if three == "<=>" {
            (Tok::NullSafeEq, 3)
        } else if two == "!=" || two == "<>" {
            (Tok::Ne, 2)
        } else if two == "<=" {
            (Tok::Le, 2)
        } else if two == ">=" {
            (Tok::Ge, 2)
        } else if two == "&&" {
            (Tok::Kw(Kw::And), 2)
        } else if two == "||" {
            (Tok::Kw(Kw::Or), 2)
        } else {
            match c {
                '=' => (Tok::Eq, 1),
                '<' => (Tok::Lt, 1),
                '>' => (Tok::Gt, 1),
                '(' => (Tok::LParen, 1),
                ')' => (Tok::RParen, 1),
                ',' => (Tok::Comma, 1),
                '-' => (Tok::Minus, 1),
                '+' => (Tok::Plus, 1),
                '\'' | '"' => {
                    let (s, len) = string(&chars, i)?;
                    (Tok::Str(s), len)
                }
                '`' => {
                    let (name, len) = backticked(&chars, i)?;
                    (Tok::Ident { name, quoted: true }, len)
                }
                c if c.is_ascii_digit()
                    || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
                {
                    let len = number(&chars, i);
                    let text: String = chars[i..i + len].iter().collect();
                    // A number running into a letter (`1abc`) is not a token boundary.
                    if chars.get(i + len).is_some_and(|&c| is_ident_char(c)) {
                        return Err(syntax_error(i + len, Some(&text)));
                    }
                    (Tok::Num(text), len)
                }
                c if is_ident_start(c) => {
                    let mut len = 0;
                    while chars.get(i + len).is_some_and(|&c| is_ident_char(c)) {
                        len += 1;
                    }
                    let name: String = chars[i..i + len].iter().collect();
                    let lower = name.to_ascii_lowercase();
                    match KEYWORDS.iter().find(|(k, _)| *k == lower) {
                        Some((_, kw)) => (Tok::Kw(*kw), len),
                        None => (
                            Tok::Ident {
                                name,
                                quoted: false,
                            },
                            len,
                        ),
                    }
                }
                _ => return Err(syntax_error(i, Some(&c.to_string()))),
            }
        };
        i += len;
        out.push(Token {
            tok,
            pos: start,
            text: chars[start..i].iter().collect(),
        });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: chars.len(),
        text: String::new(),
    });
    Ok(out)
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '$'
}

fn number(chars: &[char], start: usize) -> usize {
    let digits = |mut i: usize| {
        while chars.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        i
    };
    let mut i = digits(start);
    if chars.get(i) == Some(&'.') {
        i = digits(i + 1);
    }
    if matches!(chars.get(i), Some('e') | Some('E')) {
        let mut j = i + 1;
        if matches!(chars.get(j), Some('+') | Some('-')) {
            j += 1;
        }
        if chars.get(j).is_some_and(|c| c.is_ascii_digit()) {
            i = digits(j);
        }
    }
    i - start
}

/// A quoted string starting at `start`; returns its value and its length in chars.
fn string(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            let text: String = chars[start + 1..].iter().collect();
            return Err(syntax_error(chars.len(), Some(&text)));
        };
        if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                out.push(quote);
                i += 2;
                continue;
            }
            return Ok((out, i + 1 - start));
        }
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else {
                let text: String = chars[start + 1..].iter().collect();
                return Err(syntax_error(chars.len(), Some(&text)));
            };
            match e {
                '0' => out.push('\0'),
                'b' => out.push('\u{8}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'Z' => out.push('\u{1a}'),
                // MySQL keeps the backslash before LIKE wildcards.
                '%' | '_' => {
                    out.push('\\');
                    out.push(e);
                }
                other => out.push(other),
            }
            i += 2;
            continue;
        }
        out.push(c);
        i += 1;
    }
}

fn backticked(chars: &[char], start: usize) -> Result<(String, usize), QueryError> {
    let mut out = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            let text: String = chars[start + 1..].iter().collect();
            return Err(syntax_error(chars.len(), Some(&text)));
        };
        if c == '`' {
            if chars.get(i + 1) == Some(&'`') {
                out.push('`');
                i += 2;
                continue;
            }
            if out.is_empty() {
                return Err(syntax_error(start, Some("``")));
            }
            return Ok((out, i + 1 - start));
        }
        out.push(c);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .expect("valid tokens")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    fn ident(name: &str) -> Tok {
        Tok::Ident {
            name: name.to_owned(),
            quoted: false,
        }
    }

    #[test]
    fn operators_and_keywords() {
        assert_eq!(
            toks("a != 1 <> 2 <= >= <=> < > = && || AnD oR nOt"),
            vec![
                ident("a"),
                Tok::Ne,
                Tok::Num("1".into()),
                Tok::Ne,
                Tok::Num("2".into()),
                Tok::Le,
                Tok::Ge,
                Tok::NullSafeEq,
                Tok::Lt,
                Tok::Gt,
                Tok::Eq,
                Tok::Kw(Kw::And),
                Tok::Kw(Kw::Or),
                Tok::Kw(Kw::And),
                Tok::Kw(Kw::Or),
                Tok::Kw(Kw::Not),
                Tok::Eof,
            ]
        );
        assert_eq!(toks("STARTS_WITH")[0], Tok::Kw(Kw::StartsWith));
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(toks("'it''s'")[0], Tok::Str("it's".into()));
        assert_eq!(toks(r#""say ""hi""""#)[0], Tok::Str(r#"say "hi""#.into()));
        assert_eq!(toks(r"'a\'b\\c\nd'")[0], Tok::Str("a'b\\c\nd".into()));
        assert_eq!(toks(r"'50\%'")[0], Tok::Str(r"50\%".into()));
        assert_eq!(toks("'héllo wörld'")[0], Tok::Str("héllo wörld".into()));
        assert_eq!(toks("\"\"")[0], Tok::Str(String::new()));
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            toks("`Order` `a``b` 12 1.5 .5 1e3 2.5E-2"),
            vec![
                Tok::Ident {
                    name: "Order".into(),
                    quoted: true
                },
                Tok::Ident {
                    name: "a`b".into(),
                    quoted: true
                },
                Tok::Num("12".into()),
                Tok::Num("1.5".into()),
                Tok::Num(".5".into()),
                Tok::Num("1e3".into()),
                Tok::Num("2.5E-2".into()),
                Tok::Eof,
            ]
        );
    }

    #[test]
    fn errors_name_the_position() {
        let e = tokenize("WorkflowId = 'foo").expect_err("unterminated");
        assert_eq!(
            e.to_string(),
            "invalid query: malformed SQL query: syntax error at position 18 near 'foo'"
        );
        let e = tokenize("a ; b").expect_err("bad char");
        assert_eq!(e.detail(), "syntax error at position 3 near ';'");
        assert!(tokenize("1abc").is_err());
        assert!(tokenize("``").is_err());
        assert!(tokenize("`abc").is_err());
        assert!(tokenize("'abc\\").is_err());
    }
}
