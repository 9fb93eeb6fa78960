//! Parser for the Search API `criteria` parameter:
//! `(Field:op:value)`, groups joined with `and`/`or`, e.g.
//! `((Phone:equals:+4915112345678)or(Mobile:equals:+4915112345678))`.
//! `(`, `)` and `,` inside values are escaped with `\`.

/// A parsed criteria expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Criteria {
    Cond {
        field: String,
        op: String,
        /// More than one value only for `in` (comma separated).
        values: Vec<String>,
    },
    And(Box<Criteria>, Box<Criteria>),
    Or(Box<Criteria>, Box<Criteria>),
}

/// Why a criteria string was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CriteriaError {
    #[error("invalid query formed at position {0}")]
    Syntax(usize),
    #[error("unsupported operator {operator} for {field}")]
    Operator { field: String, operator: String },
    #[error("more than {0} criteria")]
    TooMany(usize),
}

pub const OPERATORS: &[&str] = &[
    "equals",
    "not_equal",
    "starts_with",
    "in",
    "not_in",
    "greater_than",
    "greater_equal",
    "less_than",
    "less_equal",
    "between",
];

/// Zoho's v8 OAS names 15 as the limit (the v7 docs say 10).
pub const MAX_CRITERIA: usize = 15;

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    count: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), CriteriaError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(CriteriaError::Syntax(self.pos))
        }
    }

    fn skip_ws(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// sequence := group (("and"|"or") group)*   — evaluated left to right.
    fn sequence(&mut self) -> Result<Criteria, CriteriaError> {
        let mut left = self.group()?;
        loop {
            self.skip_ws();
            let rest = &self.s[self.pos..];
            let is =
                |kw: &[u8]| rest.len() >= kw.len() && rest[..kw.len()].eq_ignore_ascii_case(kw);
            if is(b"and") {
                self.pos += 3;
                self.skip_ws();
                let right = self.group()?;
                left = Criteria::And(Box::new(left), Box::new(right));
            } else if is(b"or") {
                self.pos += 2;
                self.skip_ws();
                let right = self.group()?;
                left = Criteria::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    /// group := "(" (sequence | condition) ")"
    fn group(&mut self) -> Result<Criteria, CriteriaError> {
        self.skip_ws();
        self.expect(b'(')?;
        self.skip_ws();
        let inner = if self.peek() == Some(b'(') {
            self.sequence()?
        } else {
            self.condition()?
        };
        self.skip_ws();
        self.expect(b')')?;
        Ok(inner)
    }

    fn condition(&mut self) -> Result<Criteria, CriteriaError> {
        self.count += 1;
        if self.count > MAX_CRITERIA {
            return Err(CriteriaError::TooMany(MAX_CRITERIA));
        }
        let start = self.pos;
        // Field and operator cannot contain escapes; the value can.
        let mut raw: Vec<u8> = Vec::new();
        let mut values: Vec<String> = Vec::new();
        let mut colons = 0;
        let mut field = String::new();
        let mut op = String::new();
        loop {
            match self.peek() {
                None => return Err(CriteriaError::Syntax(self.pos)),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c) => {
                            raw.push(c);
                            self.pos += 1;
                        }
                        None => return Err(CriteriaError::Syntax(self.pos)),
                    }
                }
                Some(b')') => break,
                Some(b'(') => return Err(CriteriaError::Syntax(self.pos)),
                Some(b':') if colons < 2 => {
                    let part = String::from_utf8_lossy(&raw).trim().to_string();
                    if colons == 0 {
                        field = part;
                    } else {
                        op = part;
                    }
                    raw.clear();
                    colons += 1;
                    self.pos += 1;
                }
                Some(b',') if colons == 2 => {
                    values.push(String::from_utf8_lossy(&raw).to_string());
                    raw.clear();
                    self.pos += 1;
                }
                Some(c) => {
                    raw.push(c);
                    self.pos += 1;
                }
            }
        }
        if colons < 2 || field.is_empty() {
            return Err(CriteriaError::Syntax(start));
        }
        values.push(String::from_utf8_lossy(&raw).to_string());
        let op_l = op.to_ascii_lowercase();
        if !OPERATORS.contains(&op_l.as_str()) {
            return Err(CriteriaError::Operator {
                field,
                operator: op,
            });
        }
        if !matches!(op_l.as_str(), "in" | "not_in" | "between") && values.len() > 1 {
            // An unescaped comma outside `in` is part of the value on Zoho's
            // side only when escaped; treat it as malformed like Zoho does.
            return Err(CriteriaError::Syntax(start));
        }
        Ok(Criteria::Cond {
            field,
            op: op_l,
            values,
        })
    }
}

/// Parses a full criteria string (outer parentheses optional around a
/// sequence).
pub fn parse(s: &str) -> Result<Criteria, CriteriaError> {
    let mut p = Parser {
        s: s.trim().as_bytes(),
        pos: 0,
        count: 0,
    };
    let c = p.sequence()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(CriteriaError::Syntax(p.pos));
    }
    Ok(c)
}

impl Criteria {
    /// Every field named in the expression.
    pub fn fields(&self) -> Vec<&str> {
        match self {
            Criteria::Cond { field, .. } => vec![field.as_str()],
            Criteria::And(a, b) | Criteria::Or(a, b) => {
                let mut v = a.fields();
                v.extend(b.fields());
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_simple_and_or() {
        assert_eq!(
            parse("(Phone:equals:+4915112345678)"),
            Ok(Criteria::Cond {
                field: "Phone".into(),
                op: "equals".into(),
                values: vec!["+4915112345678".into()]
            })
        );
        let c = parse("((Phone:equals:1)or(Mobile:starts_with:2))").expect("parses");
        assert!(matches!(c, Criteria::Or(_, _)));
        assert_eq!(c.fields(), vec!["Phone", "Mobile"]);
        let c = parse("(Last_Name:equals:a)and(First_Name:equals:b)").expect("parses");
        assert!(matches!(c, Criteria::And(_, _)));
    }

    #[test]
    fn escapes_and_errors() {
        let c = parse(r"(Company:equals:A\(B\)\,C)").expect("parses");
        assert_eq!(
            c,
            Criteria::Cond {
                field: "Company".into(),
                op: "equals".into(),
                values: vec!["A(B),C".into()]
            }
        );
        assert!(parse("(Phone:equals:1").is_err());
        assert!(parse("Phone:equals:1").is_err());
        assert!(matches!(
            parse("(Phone:like:1)"),
            Err(CriteriaError::Operator { .. })
        ));
        assert!(parse("(Phone:equals:1)xor(Mobile:equals:2)").is_err());
    }
}
