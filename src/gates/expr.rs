//! The judgement grammar of a gate: `value < 0.01`, `value >= 0.05 || value == 0`.
//! Only `value`, numbers, `< <= > >= == !=`, `&& ||` and parentheses: small
//! enough to read at a glance, parsed once when the gate is declared so a
//! typo is a usage error before anything is deployed.

use std::fmt;

/// A parsed condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// `value OP number` (either side may be `value` or a number).
    Cmp(Operand, Op, Operand),
    /// Both hold.
    And(Box<Cond>, Box<Cond>),
    /// Either holds.
    Or(Box<Cond>, Box<Cond>),
}

/// One side of a comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Operand {
    /// The measured value.
    Value,
    /// A literal.
    Num(f64),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
            Op::Ne => "!=",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Value,
    Num(f64),
    Op(Op),
    And,
    Or,
    Open,
    Close,
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let two = s.get(i..i + 2).unwrap_or("");
        let tok = match c {
            b' ' | b'\t' | b'\n' => {
                i += 1;
                continue;
            }
            b'(' => Tok::Open,
            b')' => Tok::Close,
            _ if two == "&&" => Tok::And,
            _ if two == "||" => Tok::Or,
            _ if two == "<=" => Tok::Op(Op::Le),
            _ if two == ">=" => Tok::Op(Op::Ge),
            _ if two == "==" => Tok::Op(Op::Eq),
            _ if two == "!=" => Tok::Op(Op::Ne),
            b'<' => Tok::Op(Op::Lt),
            b'>' => Tok::Op(Op::Gt),
            b'0'..=b'9' | b'.' | b'-' | b'+' => {
                let start = i;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_digit()
                        || b[i] == b'.'
                        || b[i] == b'e'
                        || b[i] == b'E'
                        || ((b[i] == b'-' || b[i] == b'+') && matches!(b[i - 1], b'e' | b'E')))
                {
                    i += 1;
                }
                let text = &s[start..i];
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("'{text}' at column {} is not a number", start + 1))?;
                if !n.is_finite() {
                    return Err(format!("'{text}' at column {} is not finite", start + 1));
                }
                out.push((start, Tok::Num(n)));
                continue;
            }
            _ if s[i..].starts_with("value") => {
                let end = i + 5;
                if b.get(end)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    return Err(unknown_word(s, i));
                }
                out.push((i, Tok::Value));
                i = end;
                continue;
            }
            _ if c == b'=' => {
                return Err(format!(
                    "'=' at column {} assigns; compare with '=='",
                    i + 1
                ))
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => return Err(unknown_word(s, i)),
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(format!(
                    "'{ch}' at column {} is not part of the grammar",
                    i + 1
                ));
            }
        };
        let len = match tok {
            Tok::And | Tok::Or | Tok::Op(Op::Le | Op::Ge | Op::Eq | Op::Ne) => 2,
            _ => 1,
        };
        out.push((i, tok));
        i += len;
    }
    Ok(out)
}

fn unknown_word(s: &str, at: usize) -> String {
    let word: String = s[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!(
        "'{word}' at column {}: the only name is `value` (the measurement)",
        at + 1
    )
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    at: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|(_, t)| t)
    }
    fn col(&self) -> usize {
        self.toks.get(self.at).map_or(self.len, |(c, _)| *c) + 1
    }
    fn or(&mut self) -> Result<Cond, String> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            left = Cond::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }
    fn and(&mut self) -> Result<Cond, String> {
        let mut left = self.atom()?;
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            left = Cond::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }
    fn atom(&mut self) -> Result<Cond, String> {
        if self.peek() == Some(&Tok::Open) {
            self.at += 1;
            let inner = self.or()?;
            if self.peek() != Some(&Tok::Close) {
                return Err(format!("column {}: expected ')'", self.col()));
            }
            self.at += 1;
            return Ok(inner);
        }
        let a = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => {
                return Err(format!(
                    "column {}: expected a comparison (< <= > >= == !=)",
                    self.col()
                ))
            }
        };
        self.at += 1;
        let b = self.operand()?;
        if !matches!((a, b), (Operand::Value, _) | (_, Operand::Value)) {
            return Err("a comparison must involve `value`".into());
        }
        Ok(Cond::Cmp(a, op, b))
    }
    fn operand(&mut self) -> Result<Operand, String> {
        let r = match self.peek() {
            Some(Tok::Value) => Operand::Value,
            Some(Tok::Num(n)) => Operand::Num(*n),
            _ => {
                return Err(format!(
                    "column {}: expected `value` or a number",
                    self.col()
                ))
            }
        };
        self.at += 1;
        Ok(r)
    }
}

impl Cond {
    /// Parse a condition; the error names the column and what was expected.
    pub fn parse(s: &str) -> Result<Cond, String> {
        let toks = lex(s)?;
        if toks.is_empty() {
            return Err("the condition is empty (e.g. \"value < 0.01\")".into());
        }
        let mut p = Parser {
            toks,
            at: 0,
            len: s.len(),
        };
        let c = p.or()?;
        if p.at < p.toks.len() {
            return Err(format!(
                "column {}: unexpected text after the condition",
                p.col()
            ));
        }
        Ok(c)
    }

    /// Whether the condition holds for `value` (never for NaN: NaN is
    /// judged by `on_empty` before a condition sees it).
    pub fn holds(&self, value: f64) -> bool {
        let get = |o: &Operand| match o {
            Operand::Value => value,
            Operand::Num(n) => *n,
        };
        match self {
            Cond::Cmp(a, op, b) => {
                let (a, b) = (get(a), get(b));
                match op {
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                }
            }
            Cond::And(x, y) => x.holds(value) && y.holds(value),
            Cond::Or(x, y) => x.holds(value) || y.holds(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_reads_comparisons_and_connectives() {
        let c = Cond::parse("value < 0.01").unwrap();
        assert!(c.holds(0.0) && !c.holds(0.01));
        let c = Cond::parse("value >= 0.05 || value == -1").unwrap();
        assert!(c.holds(0.05) && c.holds(-1.0) && !c.holds(0.04));
        let c = Cond::parse("(value > 1 && value <= 3) || 10 < value").unwrap();
        assert!(c.holds(2.0) && c.holds(11.0) && !c.holds(5.0));
        let c = Cond::parse("value != 200").unwrap();
        assert!(c.holds(503.0) && !c.holds(200.0));
        // && binds tighter than ||.
        let c = Cond::parse("value < 1 || value > 5 && value < 6").unwrap();
        assert!(c.holds(0.5) && c.holds(5.5) && !c.holds(7.0));
        assert!(Cond::parse("value < 1e-3").unwrap().holds(0.0001));
        assert!(!Cond::parse("value < 1").unwrap().holds(f64::NAN));
    }

    #[test]
    fn mistakes_are_named_with_their_column() {
        for (bad, want) in [
            ("", "empty"),
            ("value = 1", "compare with '=='"),
            ("rate < 1", "'rate' at column 1"),
            ("values < 1", "'values' at column 1"),
            ("value <", "column 8: expected `value` or a number"),
            ("value 1", "expected a comparison"),
            ("1 < 2", "must involve `value`"),
            ("(value < 1", "expected ')'"),
            ("value < 1 value", "unexpected text"),
            ("value < 1 & value > 0", "'&' at column 11"),
            ("value < 1..2", "not a number"),
        ] {
            let e = Cond::parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
    }
}
