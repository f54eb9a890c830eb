//! Reading user formulas before the series engine sees them.
//!
//! The engine's own parser aborts on nothing we let through: every formula is tokenised and
//! parsed here first, and re-emitted in a normalised form the engine reads exactly:
//!
//! * decimal literals become exact rationals (`0.66` → `33/50`, `1e-3` → `1/1000`);
//! * functions the engine lacks, or expands slowly or inexactly, become `exp` forms
//!   (`tanh(u)` → `(exp(2*u)-1)/(exp(2*u)+1)`, `sigmoid(u)` → `1/(1+exp(-u))`, …);
//! * unknown names, non-analytic functions (`abs`, `max`, …), unbalanced parentheses,
//!   missing operands and absurd sizes are [`Error::Parse`] with a reason.

use num_bigint::BigInt;
use num_rational::BigRational;

use crate::{Error, Result};

/// Longest formula accepted, in bytes.
const MAX_LENGTH: usize = 10_000;
/// Deepest nesting of parentheses and operators accepted.
const MAX_DEPTH: usize = 200;
/// Largest decimal exponent accepted in a literal such as `1e-300`.
const MAX_DECIMAL_EXPONENT: i64 = 4_000;

/// The functions a formula may use, for error messages.
pub(crate) const KNOWN_NAMES: &str = "the variable x; the constants pi and e; the functions exp, \
     log (ln), sqrt, erf, erfc, sin, cos, tan, sinh, cosh, tanh, sigmoid and softplus";

/// Parses `input` and returns it in the engine's syntax.
pub(crate) fn normalise(input: &str) -> Result<String> {
    let fail = |reason: String| Error::Parse {
        formula: input.to_owned(),
        reason,
    };
    if input.len() > MAX_LENGTH {
        return Err(fail(format!(
            "the formula is {} bytes long; at most {MAX_LENGTH} are accepted",
            input.len()
        )));
    }
    let tokens = tokenize(input).map_err(fail)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        depth: 0,
    };
    let node = parser.parse().map_err(fail)?;
    Ok(emit(&node).0)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(BigRational),
    Name(String),
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Open,
    Close,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Number(r) => format!("the number {r}"),
            Token::Name(n) => format!("`{n}`"),
            Token::Plus => "`+`".into(),
            Token::Minus => "`-`".into(),
            Token::Star => "`*`".into(),
            Token::Slash => "`/`".into(),
            Token::Caret => "`^`".into(),
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
            Token::Comma => "`,`".into(),
        }
    }
}

fn tokenize(input: &str) -> std::result::Result<Vec<Token>, String> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'+' => {
                tokens.push(Token::Plus);
                i += 1;
            }
            b'-' => {
                tokens.push(Token::Minus);
                i += 1;
            }
            b'*' if bytes.get(i + 1) == Some(&b'*') => {
                tokens.push(Token::Caret);
                i += 2;
            }
            b'*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            b'/' => {
                tokens.push(Token::Slash);
                i += 1;
            }
            b'^' => {
                tokens.push(Token::Caret);
                i += 1;
            }
            b'(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            b')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            b',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            b'0'..=b'9' | b'.' => {
                let (number, end) = read_number(input, i)?;
                tokens.push(Token::Number(number));
                i = end;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push(Token::Name(input[start..i].to_owned()));
            }
            _ => {
                let ch = input[i..].chars().next().unwrap_or('?');
                return Err(format!(
                    "unexpected character `{ch}` at byte {i}; formulas use {KNOWN_NAMES}, \
                     numbers and + - * / ^ ( )"
                ));
            }
        }
    }
    Ok(tokens)
}

/// Reads a decimal literal (`12`, `0.66`, `.5`, `1e-3`, `2.5E+4`) exactly, from byte `start`.
fn read_number(input: &str, start: usize) -> std::result::Result<(BigRational, usize), String> {
    let bytes = input.as_bytes();
    let mut i = start;
    let mut digits = String::new();
    let mut fraction_digits: i64 = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        digits.push(bytes[i] as char);
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            digits.push(bytes[i] as char);
            fraction_digits += 1;
            i += 1;
        }
    }
    if digits.is_empty() {
        return Err(format!("a lone `.` at byte {start} is not a number"));
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        let negative = match bytes.get(j) {
            Some(b'-') => {
                j += 1;
                true
            }
            Some(b'+') => {
                j += 1;
                false
            }
            _ => false,
        };
        let exponent_start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        // Only an `e` followed by digits is an exponent; otherwise it is left for the parser
        // (which then reports a missing operator, as in `2e`).
        if j > exponent_start {
            let magnitude: i64 = input[exponent_start..j]
                .parse()
                .ok()
                .filter(|m| *m <= MAX_DECIMAL_EXPONENT)
                .ok_or_else(|| {
                    format!(
                        "the exponent of `{}` is too large (at most {MAX_DECIMAL_EXPONENT})",
                        &input[start..j]
                    )
                })?;
            exponent = if negative { -magnitude } else { magnitude };
            i = j;
        }
    }
    let mantissa: BigInt = digits.parse().map_err(|_| "bad number".to_string())?;
    let scale = exponent - fraction_digits;
    let ten = BigInt::from(10);
    let power = |n: i64| num_traits::pow(ten.clone(), n.unsigned_abs() as usize);
    let value = if scale >= 0 {
        BigRational::from_integer(mantissa * power(scale))
    } else {
        BigRational::new(mantissa, power(scale))
    };
    Ok((value, i))
}

/// The functions the engine understands natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builtin {
    Exp,
    Log,
    Sqrt,
    Erf,
    Sin,
    Cos,
}

impl Builtin {
    fn name(self) -> &'static str {
        match self {
            Builtin::Exp => "exp",
            Builtin::Log => "log",
            Builtin::Sqrt => "sqrt",
            Builtin::Erf => "erf",
            Builtin::Sin => "sin",
            Builtin::Cos => "cos",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Number(BigRational),
    X,
    Pi,
    Call(Builtin, Box<Node>),
    Neg(Box<Node>),
    Add(Box<Node>, Box<Node>),
    Sub(Box<Node>, Box<Node>),
    Mul(Box<Node>, Box<Node>),
    Div(Box<Node>, Box<Node>),
    Pow(Box<Node>, Box<Node>),
}

fn int(n: i64) -> Node {
    Node::Number(BigRational::from_integer(BigInt::from(n)))
}
fn call(f: Builtin, u: Node) -> Node {
    Node::Call(f, Box::new(u))
}
fn add(a: Node, b: Node) -> Node {
    Node::Add(Box::new(a), Box::new(b))
}
fn sub(a: Node, b: Node) -> Node {
    Node::Sub(Box::new(a), Box::new(b))
}
fn mul(a: Node, b: Node) -> Node {
    Node::Mul(Box::new(a), Box::new(b))
}
fn div(a: Node, b: Node) -> Node {
    Node::Div(Box::new(a), Box::new(b))
}
fn neg(a: Node) -> Node {
    Node::Neg(Box::new(a))
}

/// `name(u)` rewritten into the engine's functions.
fn apply(name: &str, u: Node) -> std::result::Result<Node, String> {
    use Builtin::*;
    Ok(match name {
        "exp" => call(Exp, u),
        "log" | "ln" => call(Log, u),
        "sqrt" => call(Sqrt, u),
        "erf" => call(Erf, u),
        "sin" => call(Sin, u),
        "cos" => call(Cos, u),
        "erfc" => sub(int(1), call(Erf, u)),
        "tan" => div(call(Sin, u.clone()), call(Cos, u)),
        // The exp forms keep coefficients rational and the expansion fast.
        "tanh" => {
            let e2u = call(Exp, mul(int(2), u));
            div(sub(e2u.clone(), int(1)), add(e2u, int(1)))
        }
        "sinh" => div(sub(call(Exp, u.clone()), call(Exp, neg(u))), int(2)),
        "cosh" => div(add(call(Exp, u.clone()), call(Exp, neg(u))), int(2)),
        "sigmoid" | "logistic" => div(int(1), add(int(1), call(Exp, neg(u)))),
        "softplus" => call(Log, add(int(1), call(Exp, u))),
        "abs" | "max" | "min" | "relu" | "sign" | "sgn" | "floor" | "ceil" | "round"
        | "heaviside" | "step" => {
            return Err(format!(
                "`{name}` has a kink or jump, so it has no Taylor series there; use a \
                 piecewise activation (Relu, LeakyRelu, Elu, Softsign) expanded away from its \
                 kink, softplus as a smooth stand-in, or fit a polynomial on an interval \
                 (polyact::fit)"
            ));
        }
        _ => {
            return Err(format!(
                "unknown function `{name}`; formulas use {KNOWN_NAMES}"
            ));
        }
    })
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    depth: usize,
}

type Parsed = std::result::Result<Node, String>;

impl Parser {
    fn parse(&mut self) -> Parsed {
        if self.tokens.is_empty() {
            return Err("the formula is empty".into());
        }
        let node = self.sum()?;
        match self.peek() {
            None => Ok(node),
            Some(Token::Close) => Err("a `)` has no matching `(`".into()),
            Some(t) => Err(format!(
                "unexpected {} after a complete expression (missing operator? write `2*x`, \
                 not `2x`)",
                t.describe()
            )),
        }
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn descend(&mut self) -> std::result::Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(format!("the formula nests deeper than {MAX_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    fn sum(&mut self) -> Parsed {
        let mut left = self.product()?;
        loop {
            match self.peek() {
                Some(Token::Plus) => {
                    self.next();
                    left = add(left, self.product()?);
                }
                Some(Token::Minus) => {
                    self.next();
                    left = sub(left, self.product()?);
                }
                _ => return Ok(left),
            }
        }
    }

    fn product(&mut self) -> Parsed {
        let mut left = self.unary()?;
        loop {
            match self.peek() {
                Some(Token::Star) => {
                    self.next();
                    left = mul(left, self.unary()?);
                }
                Some(Token::Slash) => {
                    self.next();
                    left = div(left, self.unary()?);
                }
                _ => return Ok(left),
            }
        }
    }

    /// Unary signs bind looser than `^`: `-x^2` is `-(x^2)`.
    fn unary(&mut self) -> Parsed {
        self.descend()?;
        let node = match self.peek() {
            Some(Token::Minus) => {
                self.next();
                neg(self.unary()?)
            }
            Some(Token::Plus) => {
                self.next();
                self.unary()?
            }
            _ => self.power()?,
        };
        self.depth -= 1;
        Ok(node)
    }

    /// `^` is right-associative and its exponent may carry a sign: `2^-x^2` is `2^(-(x^2))`.
    fn power(&mut self) -> Parsed {
        let base = self.primary()?;
        if self.peek() == Some(&Token::Caret) {
            self.next();
            let exponent = self.unary()?;
            Ok(Node::Pow(Box::new(base), Box::new(exponent)))
        } else {
            Ok(base)
        }
    }

    fn primary(&mut self) -> Parsed {
        match self.next() {
            None => Err("the formula ends where an operand was expected".into()),
            Some(Token::Number(r)) => Ok(Node::Number(r)),
            Some(Token::Open) => {
                self.descend()?;
                let inner = self.sum()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("a `(` is not closed".into()),
                }
            }
            Some(Token::Name(name)) => self.name(name),
            Some(t) => Err(format!("{} where an operand was expected", t.describe())),
        }
    }

    fn name(&mut self, name: String) -> Parsed {
        let called = self.peek() == Some(&Token::Open);
        match (name.as_str(), called) {
            ("x", false) => Ok(Node::X),
            ("pi", false) => Ok(Node::Pi),
            ("e", false) => Ok(call(Builtin::Exp, int(1))),
            ("x" | "pi" | "e", true) => Err(format!(
                "`{name}` is not a function (write `{name}*(...)` to multiply)"
            )),
            (_, true) => {
                // Unknown and non-analytic names are reported before their arguments.
                apply(&name, Node::X)?;
                self.next();
                self.descend()?;
                if self.peek() == Some(&Token::Close) {
                    return Err(format!("`{name}()` needs an argument"));
                }
                let argument = self.sum()?;
                self.depth -= 1;
                match self.next() {
                    Some(Token::Close) => apply(&name, argument),
                    Some(Token::Comma) => Err(format!("`{name}` takes one argument")),
                    _ => Err(format!("the `(` after `{name}` is not closed")),
                }
            }
            (_, false) => match apply(&name, Node::X) {
                Ok(_) => Err(format!(
                    "`{name}` needs its argument in parentheses: `{name}(x)`"
                )),
                Err(reason) if reason.starts_with("unknown function") => {
                    Err(format!("unknown name `{name}`; formulas use {KNOWN_NAMES}"))
                }
                Err(reason) => Err(reason),
            },
        }
    }
}

/// Binding strength of emitted text, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    Sum,
    Product,
    Unary,
    Power,
    Atom,
}

fn wrap((text, binding): (String, Binding), at_least: Binding) -> String {
    if binding >= at_least {
        text
    } else {
        format!("({text})")
    }
}

/// Text in the engine's syntax, with the parentheses precedence needs (and around negated
/// operands, which some readers take differently).
fn emit(node: &Node) -> (String, Binding) {
    match node {
        Node::Number(r) if r.is_integer() => (r.numer().to_string(), Binding::Atom),
        Node::Number(r) => (format!("{}/{}", r.numer(), r.denom()), Binding::Product),
        Node::X => ("x".into(), Binding::Atom),
        Node::Pi => ("pi".into(), Binding::Atom),
        Node::Call(f, u) => (format!("{}({})", f.name(), emit(u).0), Binding::Atom),
        Node::Neg(u) => (format!("-{}", wrap(emit(u), Binding::Atom)), Binding::Unary),
        Node::Add(a, b) => (
            format!("{}+{}", emit(a).0, operand(b, Binding::Sum)),
            Binding::Sum,
        ),
        Node::Sub(a, b) => (
            format!("{}-{}", emit(a).0, operand(b, Binding::Product)),
            Binding::Sum,
        ),
        Node::Mul(a, b) => (
            format!(
                "{}*{}",
                wrap(emit(a), Binding::Product),
                operand(b, Binding::Unary)
            ),
            Binding::Product,
        ),
        Node::Div(a, b) => (
            format!(
                "{}/{}",
                wrap(emit(a), Binding::Product),
                operand(b, Binding::Power)
            ),
            Binding::Product,
        ),
        Node::Pow(a, b) => (
            format!(
                "{}^{}",
                wrap(emit(a), Binding::Atom),
                wrap(emit(b), Binding::Atom)
            ),
            Binding::Power,
        ),
    }
}

/// A right operand: wrapped when it binds looser than `at_least`, or when it is negated.
fn operand(node: &Node, at_least: Binding) -> String {
    let text = emit(node);
    if matches!(node, Node::Neg(_)) {
        format!("({})", text.0)
    } else {
        wrap(text, at_least)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        normalise(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    fn reason(input: &str) -> String {
        match normalise(input) {
            Err(Error::Parse { formula, reason }) => {
                assert_eq!(formula, input);
                reason
            }
            other => panic!("{input}: expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn built_in_formulas_keep_their_shape() {
        assert_eq!(ok("1/(1+exp(-x))"), "1/(1+exp(-x))");
        assert_eq!(ok("(exp(2*x)-1)/(exp(2*x)+1)"), "(exp(2*x)-1)/(exp(2*x)+1)");
        assert_eq!(ok("x/2*(1+erf(x/sqrt(2)))"), "x/2*(1+erf(x/sqrt(2)))");
        assert_eq!(
            ok("x*((1+exp(x))^2-1)/((1+exp(x))^2+1)"),
            "x*((1+exp(x))^2-1)/((1+exp(x))^2+1)"
        );
        assert_eq!(ok("(1/100)*x"), "1/100*x");
    }

    #[test]
    fn decimals_become_exact_rationals() {
        assert_eq!(ok("0.66 + x/2"), "33/50+x/2");
        assert_eq!(ok("1e-3*x"), "1/1000*x");
        assert_eq!(ok("2.5E+2"), "250");
        assert_eq!(ok(".5*x"), "1/2*x");
        assert_eq!(ok("x^0.5"), "x^(1/2)");
    }

    #[test]
    fn precedence_and_signs() {
        assert_eq!(ok("-x^2"), "-(x^2)");
        assert_eq!(ok("2^-x"), "2^(-x)");
        assert_eq!(ok("x - (1 - x)"), "x-(1-x)");
        assert_eq!(ok("x - -x"), "x-(-x)");
        assert_eq!(ok("x/(2*x)"), "x/(2*x)");
        assert_eq!(ok("x**3"), "x^3");
        assert_eq!(ok("(x^2)^3"), "(x^2)^3");
        assert_eq!(ok("x^2^3"), "x^(2^3)");
    }

    #[test]
    fn functions_the_engine_lacks_are_rewritten() {
        assert_eq!(ok("tanh(x)"), "(exp(2*x)-1)/(exp(2*x)+1)");
        assert_eq!(ok("sigmoid(x)"), "1/(1+exp(-x))");
        assert_eq!(ok("softplus(x)"), "log(1+exp(x))");
        assert_eq!(ok("ln(e)"), "log(exp(1))");
        assert_eq!(
            ok("x*tanh(softplus(x))"),
            "x*((exp(2*log(1+exp(x)))-1)/(exp(2*log(1+exp(x)))+1))"
        );
        assert_eq!(
            ok("2*tanh(0.5*x)"),
            "2*((exp(2*(1/2*x))-1)/(exp(2*(1/2*x))+1))"
        );
    }

    #[test]
    fn malformed_formulas_are_parse_errors() {
        assert!(reason("").contains("empty"));
        assert!(reason("1/(1+exp(-x)").contains("not closed"));
        assert!(reason("x)").contains("no matching"));
        assert!(reason("x^^2").contains("operand"));
        assert!(reason("x+").contains("ends"));
        assert!(reason("2x").contains("2*x"));
        assert!(reason("exp()").contains("argument"));
        assert!(reason("exp").contains("parentheses"));
        assert!(reason("foo(x)").contains("unknown function"));
        assert!(reason("y*x").contains("unknown"));
        assert!(reason("abs(x)").contains("kink"));
        assert!(reason("max(x, 0)").contains("kink"));
        assert!(reason("exp(x, 2)").contains("one argument"));
        assert!(reason("x # 2").contains("unexpected character"));
        assert!(reason("1e99999").contains("too large"));
        assert!(reason(".").contains("not a number"));
        assert!(reason(&"(".repeat(500)).contains("deeper"));
        assert!(reason(&"x+".repeat(6000)).contains("bytes long"));
    }
}
