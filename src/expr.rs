//! Mathematics as a typed tree: the one representation of formulas and closed forms.
//!
//! An [`Expr`] is an owned expression in the variable `x`: exact rational numbers, the constants
//! `pi` and `e`, `+ - * / ^` and the functions of [`Function`]. Activations describe themselves
//! with it ([`Formula`](crate::Formula)), closed-form coefficients are kept as one
//! ([`Exact::Symbolic`](crate::Exact)), and the series engine reads and writes it. It prints in
//! polyact's own syntax and parses back to the same tree:
//!
//! ```
//! use polyact::expr::{Expr, Function, Node};
//! let e: Expr = "x/2*(1 + erf(x/sqrt(2)))".parse()?;
//! assert_eq!(e.to_string(), "x/2*(1+erf(x/sqrt(2)))");
//! assert_eq!(e.to_string().parse::<Expr>()?, e);
//! assert!(matches!(e.node(), Node::Product(_)));
//! // Decimals are exact rationals; values can be computed in f64.
//! let half: Expr = "0.5*x".parse()?;
//! assert_eq!(half.to_string(), "1/2*x");
//! assert!((half.eval(3.0) - 1.5).abs() < 1e-15);
//! // Trees are built with checked combinators.
//! let built = Expr::x().checked_mul(Expr::integer(2))?.checked_add(Expr::call(Function::Exp, Expr::x())?)?;
//! assert_eq!(built.to_string(), "x*2+exp(x)");
//! # Ok::<(), polyact::Error>(())
//! ```
//!
//! # Limits
//! Every tree is at most [`MAX_DEPTH`] deep and has at most [`MAX_NODES`] nodes: each
//! constructor checks them and returns [`Error::TooComplex`] (the parser [`Error::Parse`])
//! beyond them. Sums and products are n-ary, so `x+x+…+x` or `x/x/…/x` of any length is one
//! level deep; the limits concern nesting and size of the tree, never bytes of text, so a
//! polynomial with long exact coefficients parses. Because depth is bounded at construction,
//! every walk over a tree (printing, comparing, cloning, dropping, evaluating, converting) is
//! bounded too: no input overflows a stack.
//!
//! # Canonical forms
//! Constructors keep a few canonical forms so that printing and parsing agree: `-(2)` is the
//! number `-2`, `--u` is `u`, a product starts with at most one number (`2*3*x` is `6*x`,
//! `1/2*x` is `(1/2)·x`), and nested sums and products are flattened.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigInt;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// The deepest tree accepted (nesting of operators, parentheses and calls).
pub const MAX_DEPTH: usize = 128;
/// The most nodes a tree may have.
pub const MAX_NODES: usize = 200_000;
/// Largest decimal exponent accepted in a literal such as `1e-300`.
const MAX_DECIMAL_EXPONENT: i64 = 4_000;
/// Internal assembly (a polynomial from its coefficients) may exceed [`MAX_DEPTH`] by a few
/// levels; nothing may exceed this.
const HARD_DEPTH: usize = 4 * MAX_DEPTH;

/// A named constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Constant {
    /// π, written `pi`.
    Pi,
    /// Euler's number, written `e`.
    E,
}

/// A function of one argument that formulas may use.
///
/// ```
/// use polyact::expr::Function;
/// assert_eq!(Function::from_name("ln"), Some(Function::Log));
/// assert_eq!(Function::Tanh.name(), "tanh");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Function {
    /// `exp`
    Exp,
    /// The natural logarithm, `log` (also read as `ln`).
    Log,
    /// `sqrt`, the principal square root.
    Sqrt,
    /// The error function `erf`.
    Erf,
    /// `erfc(u) = 1 - erf(u)`.
    Erfc,
    /// `sin`
    Sin,
    /// `cos`
    Cos,
    /// `tan`
    Tan,
    /// `sinh`
    Sinh,
    /// `cosh`
    Cosh,
    /// `tanh`
    Tanh,
    /// `sigmoid(u) = 1/(1+exp(-u))` (also read as `logistic`).
    Sigmoid,
    /// `softplus(u) = log(1+exp(u))`.
    Softplus,
}

const FUNCTIONS: [Function; 13] = [
    Function::Exp,
    Function::Log,
    Function::Sqrt,
    Function::Erf,
    Function::Erfc,
    Function::Sin,
    Function::Cos,
    Function::Tan,
    Function::Sinh,
    Function::Cosh,
    Function::Tanh,
    Function::Sigmoid,
    Function::Softplus,
];

impl Function {
    /// The name formulas use.
    pub fn name(self) -> &'static str {
        match self {
            Function::Exp => "exp",
            Function::Log => "log",
            Function::Sqrt => "sqrt",
            Function::Erf => "erf",
            Function::Erfc => "erfc",
            Function::Sin => "sin",
            Function::Cos => "cos",
            Function::Tan => "tan",
            Function::Sinh => "sinh",
            Function::Cosh => "cosh",
            Function::Tanh => "tanh",
            Function::Sigmoid => "sigmoid",
            Function::Softplus => "softplus",
        }
    }

    /// The function a formula's name denotes (`ln` and `logistic` are aliases).
    pub fn from_name(name: &str) -> Option<Function> {
        match name {
            "ln" => Some(Function::Log),
            "logistic" => Some(Function::Sigmoid),
            _ => FUNCTIONS.iter().copied().find(|f| f.name() == name),
        }
    }

    /// The value in `f64`.
    pub fn eval(self, u: f64) -> f64 {
        match self {
            Function::Exp => u.exp(),
            Function::Log => u.ln(),
            Function::Sqrt => u.sqrt(),
            Function::Erf => libm::erf(u),
            Function::Erfc => libm::erfc(u),
            Function::Sin => u.sin(),
            Function::Cos => u.cos(),
            Function::Tan => u.tan(),
            Function::Sinh => u.sinh(),
            Function::Cosh => u.cosh(),
            Function::Tanh => u.tanh(),
            Function::Sigmoid => 1.0 / (1.0 + (-u).exp()),
            Function::Softplus => u.max(0.0) + (-u.abs()).exp().ln_1p(),
        }
    }
}

/// The names a formula may use, for error messages.
pub(crate) const KNOWN_NAMES: &str = "the variable x; the constants pi and e; the functions exp, \
     log (ln), sqrt, erf, erfc, sin, cos, tan, sinh, cosh, tanh, sigmoid and softplus";

/// One factor of a [`Node::Product`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Factor {
    /// Multiplies the product.
    Times(Expr),
    /// Divides the product.
    Over(Expr),
}

impl Factor {
    /// The factor's expression.
    pub fn expr(&self) -> &Expr {
        match self {
            Factor::Times(e) | Factor::Over(e) => e,
        }
    }
}

/// The top of an [`Expr`], read with [`Expr::node`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Node {
    /// An exact rational number.
    Number(BigRational),
    /// The variable `x`.
    X,
    /// `pi` or `e`.
    Constant(Constant),
    /// `-u` (never of a number, a negation, or a product that starts with a number).
    Neg(Box<Expr>),
    /// `a + b + …`, two terms or more (a subtraction is a negated term).
    Sum(Vec<Expr>),
    /// `a * b / c …`, two factors or more; the first multiplies.
    Product(Vec<Factor>),
    /// `base ^ exponent`.
    Pow(Box<Expr>, Box<Expr>),
    /// `f(argument)`.
    Call(Function, Box<Expr>),
}

/// An owned expression in `x`; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Expr {
    node: Node,
    depth: u32,
    size: u32,
    /// A structural hash, computed once at construction: hashing a tree is O(1).
    fingerprint: u64,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.node == other.node
    }
}

impl Eq for Expr {}

impl std::hash::Hash for Expr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

/// The structural hash of `node` from its children's (numbers by numerator and denominator,
/// which are reduced).
fn fingerprint(node: &Node) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    std::mem::discriminant(node).hash(&mut h);
    match node {
        Node::Number(r) => {
            r.numer().hash(&mut h);
            r.denom().hash(&mut h);
        }
        Node::X => {}
        Node::Constant(c) => c.hash(&mut h),
        Node::Neg(u) => h.write_u64(u.fingerprint),
        Node::Sum(terms) => terms.iter().for_each(|t| h.write_u64(t.fingerprint)),
        Node::Product(factors) => factors.iter().for_each(|f| {
            h.write_u8(u8::from(matches!(f, Factor::Over(_))));
            h.write_u64(f.expr().fingerprint);
        }),
        Node::Pow(a, b) => {
            h.write_u64(a.fingerprint);
            h.write_u64(b.fingerprint);
        }
        Node::Call(f, u) => {
            f.hash(&mut h);
            h.write_u64(u.fingerprint);
        }
    }
    h.finish()
}

/// How a constructor checks the limits.
#[derive(Clone, Copy)]
enum Limits {
    /// [`MAX_DEPTH`] and [`MAX_NODES`].
    Public,
    /// Only [`HARD_DEPTH`] (internal assembly).
    Internal,
}

impl Expr {
    fn leaf(node: Node) -> Expr {
        Expr {
            fingerprint: fingerprint(&node),
            node,
            depth: 1,
            size: 1,
        }
    }

    /// Wraps `node`, whose children are already valid trees, checking the limits.
    fn build(node: Node, limits: Limits) -> Result<Expr> {
        let (mut depth, mut size) = (0_usize, 1_usize);
        let mut visit = |e: &Expr| {
            depth = depth.max(e.depth as usize);
            size = size.saturating_add(e.size as usize);
        };
        match &node {
            Node::Number(_) | Node::X | Node::Constant(_) => {}
            Node::Neg(u) | Node::Call(_, u) => visit(u),
            Node::Sum(terms) => terms.iter().for_each(visit),
            Node::Product(factors) => factors.iter().map(Factor::expr).for_each(visit),
            Node::Pow(a, b) => {
                visit(a);
                visit(b);
            }
        }
        let depth = depth + 1;
        let (max_depth, max_nodes) = match limits {
            Limits::Public => (MAX_DEPTH, MAX_NODES),
            Limits::Internal => (HARD_DEPTH, usize::MAX),
        };
        if depth > max_depth {
            return Err(Error::TooComplex {
                reason: format!("the expression nests deeper than {max_depth} levels"),
            });
        }
        if size > max_nodes {
            return Err(Error::TooComplex {
                reason: format!("the expression has more than {max_nodes} nodes"),
            });
        }
        Ok(Expr {
            fingerprint: fingerprint(&node),
            node,
            depth: depth as u32,
            size: u32::try_from(size).unwrap_or(u32::MAX),
        })
    }

    /// The variable `x`.
    pub fn x() -> Expr {
        Expr::leaf(Node::X)
    }

    /// An exact rational number.
    pub fn number(r: BigRational) -> Expr {
        Expr::leaf(Node::Number(r))
    }

    /// The integer `n`.
    pub fn integer(n: i64) -> Expr {
        Expr::number(BigRational::from_integer(BigInt::from(n)))
    }

    /// `pi` or `e`.
    pub fn constant(c: Constant) -> Expr {
        Expr::leaf(Node::Constant(c))
    }

    /// `f(argument)`.
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn call(f: Function, argument: Expr) -> Result<Expr> {
        Expr::build(Node::Call(f, Box::new(argument)), Limits::Public)
    }

    /// The top of the tree.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The depth of the tree (a leaf has depth 1).
    pub fn depth(&self) -> usize {
        self.depth as usize
    }

    /// The number of nodes of the tree.
    pub fn size(&self) -> usize {
        self.size as usize
    }

    /// The number, if this expression is one.
    pub fn as_number(&self) -> Option<&BigRational> {
        match &self.node {
            Node::Number(r) => Some(r),
            _ => None,
        }
    }

    /// `-self`, in canonical form.
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn checked_neg(self) -> Result<Expr> {
        self.negate(Limits::Public)
    }

    fn negate(self, limits: Limits) -> Result<Expr> {
        match self {
            Expr {
                node: Node::Number(r),
                ..
            } => Ok(Expr::number(-r)),
            Expr {
                node: Node::Neg(u), ..
            } => Ok(*u),
            Expr {
                node: Node::Product(mut factors),
                ..
            } if leads_with_number(&factors) => {
                negate_leading_number(&mut factors);
                Expr::build(Node::Product(factors), limits)
            }
            other => Expr::build(Node::Neg(Box::new(other)), limits),
        }
    }

    /// `self + other` (sums are flattened).
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn checked_add(self, other: Expr) -> Result<Expr> {
        Expr::sum_of([self, other], Limits::Public)
    }

    /// `self - other`.
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn checked_sub(self, other: Expr) -> Result<Expr> {
        let negated = other.checked_neg()?;
        self.checked_add(negated)
    }

    /// `self * other` (products are flattened, leading numbers multiplied).
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn checked_mul(self, other: Expr) -> Result<Expr> {
        Expr::product_of([Factor::Times(self), Factor::Times(other)], Limits::Public)
    }

    /// `self / other`.
    ///
    /// # Errors
    /// [`Error::DivisionByZero`] for a division by the number 0, [`Error::TooComplex`] beyond
    /// the [limits](self#limits).
    pub fn checked_div(self, other: Expr) -> Result<Expr> {
        Expr::product_of([Factor::Times(self), Factor::Over(other)], Limits::Public)
    }

    /// `self ^ exponent`.
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn checked_pow(self, exponent: Expr) -> Result<Expr> {
        Expr::build(
            Node::Pow(Box::new(self), Box::new(exponent)),
            Limits::Public,
        )
    }

    /// The sum of `terms` (0 for none).
    ///
    /// # Errors
    /// [`Error::TooComplex`] beyond the [limits](self#limits).
    pub fn sum(terms: impl IntoIterator<Item = Expr>) -> Result<Expr> {
        Expr::sum_of(terms, Limits::Public)
    }

    fn sum_of(terms: impl IntoIterator<Item = Expr>, limits: Limits) -> Result<Expr> {
        let mut flat = Vec::new();
        for term in terms {
            match term {
                Expr {
                    node: Node::Sum(inner),
                    ..
                } => flat.extend(inner),
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Ok(Expr::integer(0)),
            1 => Ok(flat.pop().unwrap_or_else(|| Expr::integer(0))),
            _ => Expr::build(Node::Sum(flat), limits),
        }
    }

    fn product_of(factors: impl IntoIterator<Item = Factor>, limits: Limits) -> Result<Expr> {
        let mut flat: Vec<Factor> = Vec::new();
        for factor in factors {
            match factor {
                Factor::Times(Expr {
                    node: Node::Product(inner),
                    ..
                }) => flat.extend(inner),
                Factor::Over(e) if e.as_number().is_some_and(Zero::is_zero) => {
                    return Err(Error::DivisionByZero {
                        operation: "an expression divided by the number 0",
                    });
                }
                other => flat.push(other),
            }
        }
        fold_leading_numbers(&mut flat);
        if flat.len() == 1
            && let Some(Factor::Times(_)) = flat.first()
            && let Some(Factor::Times(only)) = flat.pop()
        {
            return Ok(only);
        }
        if flat.is_empty() {
            return Ok(Expr::integer(1));
        }
        Expr::build(Node::Product(flat), limits)
    }

    /// `Σ cₖ·x^k` from `(k, cₖ)` pairs, built without the public size limit (a polynomial may
    /// hold many large closed forms).
    pub(crate) fn polynomial(terms: impl IntoIterator<Item = (usize, Expr)>) -> Expr {
        let mut monomials = Vec::new();
        for (k, c) in terms {
            let term = match k {
                0 => Ok(c),
                1 => Expr::product_of(
                    [Factor::Times(c), Factor::Times(Expr::x())],
                    Limits::Internal,
                ),
                _ => Expr::build(
                    Node::Pow(Box::new(Expr::x()), Box::new(Expr::integer(k as i64))),
                    Limits::Internal,
                )
                .and_then(|p| {
                    Expr::product_of([Factor::Times(c), Factor::Times(p)], Limits::Internal)
                }),
            };
            // A coefficient is a valid tree (depth ≤ MAX_DEPTH); three more levels stay far
            // below HARD_DEPTH, so these never fail.
            if let Ok(term) = term {
                monomials.push(term);
            }
        }
        Expr::sum_of(monomials, Limits::Internal).unwrap_or_else(|_| Expr::integer(0))
    }

    /// `self + other`, `self * other`, `-self` for exact arithmetic on coefficients: beyond
    /// [`MAX_DEPTH`] but within the internal bound; `None` past that.
    pub(crate) fn combine(op: Combine, a: Expr, b: Option<Expr>) -> Option<Expr> {
        let b = b.unwrap_or_else(|| Expr::integer(0));
        match op {
            Combine::Add => Expr::sum_of([a, b], Limits::Internal),
            Combine::Mul => {
                Expr::product_of([Factor::Times(a), Factor::Times(b)], Limits::Internal)
            }
            Combine::Div => Expr::product_of([Factor::Times(a), Factor::Over(b)], Limits::Internal),
            Combine::Neg => a.negate(Limits::Internal),
        }
        .ok()
    }

    /// The value at `x`, in `f64` (NaN where undefined).
    ///
    /// ```
    /// let e: polyact::expr::Expr = "sigmoid(x) - 1/2".parse()?;
    /// assert!(e.eval(0.0).abs() < 1e-15);
    /// # Ok::<(), polyact::Error>(())
    /// ```
    pub fn eval(&self, x: f64) -> f64 {
        match &self.node {
            Node::Number(r) => r.to_f64().unwrap_or(f64::NAN),
            Node::X => x,
            Node::Constant(Constant::Pi) => std::f64::consts::PI,
            Node::Constant(Constant::E) => std::f64::consts::E,
            Node::Neg(u) => -u.eval(x),
            Node::Sum(terms) => terms.iter().map(|t| t.eval(x)).sum(),
            Node::Product(factors) => factors.iter().fold(1.0, |acc, f| match f {
                Factor::Times(e) => acc * e.eval(x),
                Factor::Over(e) => acc / e.eval(x),
            }),
            Node::Pow(a, b) => a.eval(x).powf(b.eval(x)),
            Node::Call(f, u) => f.eval(u.eval(x)),
        }
    }

    /// Whether the expression contains the variable `x`.
    pub fn contains_x(&self) -> bool {
        match &self.node {
            Node::X => true,
            Node::Number(_) | Node::Constant(_) => false,
            Node::Neg(u) | Node::Call(_, u) => u.contains_x(),
            Node::Sum(terms) => terms.iter().any(Expr::contains_x),
            Node::Product(factors) => factors.iter().any(|f| f.expr().contains_x()),
            Node::Pow(a, b) => a.contains_x() || b.contains_x(),
        }
    }

    /// Whether the printed form starts with a minus sign.
    fn is_negative_leading(&self) -> bool {
        match &self.node {
            Node::Number(r) => r.is_negative(),
            Node::Neg(_) => true,
            Node::Product(factors) => factors
                .first()
                .is_some_and(|f| f.expr().is_negative_leading()),
            _ => false,
        }
    }
}

/// An exact operation on coefficients' closed forms.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Combine {
    Add,
    Mul,
    Div,
    Neg,
}

/// Multiplies the leading run of numbers of a product into one (`2*3/4*x` → `3/2*x`).
fn fold_leading_numbers(factors: &mut Vec<Factor>) {
    while factors.len() >= 2 {
        let (Factor::Times(first), second) = (&factors[0], &factors[1]) else {
            break;
        };
        let (Some(a), Some(b)) = (first.as_number(), second.expr().as_number()) else {
            break;
        };
        let value = match second {
            Factor::Times(_) => a * b,
            Factor::Over(_) => a / b,
        };
        factors.splice(0..2, [Factor::Times(Expr::number(value))]);
    }
    // A leading 1 before another multiplied factor says nothing: `1*x` is `x`.
    if factors.len() >= 2
        && matches!(&factors[0], Factor::Times(e) if e.as_number().is_some_and(One::is_one))
        && matches!(factors[1], Factor::Times(_))
    {
        factors.remove(0);
    }
}

// ---------------------------------------------------------------------------------------------
// Printing.

/// How tightly printed text binds, loosest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    Sum,
    Product,
    Unary,
    Power,
    Atom,
}

impl Expr {
    fn binding(&self) -> Binding {
        match &self.node {
            Node::Number(r) if r.is_negative() => Binding::Unary.min(number_binding(r)),
            Node::Number(r) => number_binding(r),
            Node::X | Node::Constant(_) | Node::Call(..) => Binding::Atom,
            Node::Neg(_) => Binding::Unary,
            Node::Sum(_) => Binding::Sum,
            Node::Product(_) => Binding::Product,
            Node::Pow(..) => Binding::Power,
        }
    }

    fn write_at(&self, f: &mut fmt::Formatter<'_>, at_least: Binding) -> fmt::Result {
        if self.binding() >= at_least {
            self.write(f)
        } else {
            f.write_str("(")?;
            self.write(f)?;
            f.write_str(")")
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Node::Number(r) => write_rational(f, r),
            Node::X => f.write_str("x"),
            Node::Constant(Constant::Pi) => f.write_str("pi"),
            Node::Constant(Constant::E) => f.write_str("e"),
            Node::Call(func, u) => {
                write!(f, "{}(", func.name())?;
                u.write(f)?;
                f.write_str(")")
            }
            Node::Neg(u) => {
                f.write_str("-")?;
                u.write_at(f, Binding::Power)
            }
            Node::Sum(terms) => write_sum(f, terms),
            Node::Product(factors) => write_product(f, factors),
            Node::Pow(base, exponent) => {
                base.write_at(f, Binding::Atom)?;
                f.write_str("^")?;
                // The exponent is read as a signed power: `x^-1`, `x^2^3`, `x^-y`.
                let bare = matches!(exponent.node, Node::Pow(..) | Node::Neg(_))
                    || exponent.as_number().is_some_and(BigRational::is_integer);
                if bare {
                    exponent.write(f)
                } else {
                    exponent.write_at(f, Binding::Atom)
                }
            }
        }
    }
}

fn number_binding(r: &BigRational) -> Binding {
    if !r.is_integer() {
        Binding::Product
    } else if r.is_negative() {
        Binding::Unary
    } else {
        Binding::Atom
    }
}

/// The one routine that prints an exact rational: `p` or `p/q`.
pub(crate) fn write_rational(f: &mut impl fmt::Write, r: &BigRational) -> fmt::Result {
    if r.is_integer() {
        write!(f, "{}", r.numer())
    } else {
        write!(f, "{}/{}", r.numer(), r.denom())
    }
}

/// A rational as text, printed by [`write_rational`].
pub(crate) fn rational_text(r: &BigRational) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = write_rational(&mut text, r);
    text
}

fn write_sum(f: &mut fmt::Formatter<'_>, terms: &[Expr]) -> fmt::Result {
    for (i, term) in terms.iter().enumerate() {
        if i == 0 {
            term.write_at(f, Binding::Product)?;
            continue;
        }
        match &term.node {
            Node::Number(r) if r.is_negative() => {
                f.write_str("-")?;
                write_rational(f, &-r)?;
            }
            Node::Neg(u) => {
                f.write_str("-")?;
                u.write_at(f, Binding::Product)?;
            }
            Node::Product(factors) if term.is_negative_leading() && leads_with_number(factors) => {
                f.write_str("-")?;
                let mut positive = factors.clone();
                negate_leading_number(&mut positive);
                write_product(f, &positive)?;
            }
            _ => {
                f.write_str("+")?;
                term.write_at(f, Binding::Product)?;
            }
        }
    }
    Ok(())
}

fn leads_with_number(factors: &[Factor]) -> bool {
    matches!(factors.first(), Some(Factor::Times(e)) if e.as_number().is_some())
}

/// Negates the number that leads a product, if one does.
fn negate_leading_number(factors: &mut [Factor]) {
    if let Some(Factor::Times(e)) = factors.first_mut()
        && let Some(r) = e.as_number()
    {
        *e = Expr::number(-r);
    }
}

fn write_product(f: &mut fmt::Formatter<'_>, factors: &[Factor]) -> fmt::Result {
    for (i, factor) in factors.iter().enumerate() {
        match (i, factor) {
            // A leading number prints bare (`1/2*x`, `-3/2*x`): the parser folds it back.
            (0, Factor::Times(e)) if e.as_number().is_some() => e.write(f)?,
            (0, Factor::Times(e)) => e.write_at(f, Binding::Unary)?,
            (0, Factor::Over(e)) => {
                f.write_str("1/")?;
                e.write_at(f, Binding::Power)?;
            }
            (_, Factor::Times(e)) => {
                f.write_str("*")?;
                e.write_at(f, Binding::Power)?;
            }
            (_, Factor::Over(e)) => {
                f.write_str("/")?;
                e.write_at(f, Binding::Power)?;
            }
        }
    }
    Ok(())
}

impl fmt::Display for Expr {
    /// Writes the expression in polyact's syntax, which [`FromStr`] reads back to the same
    /// tree: `1/(1+exp(-x))`, `x^-1`, `-1/(6*sqrt(2*pi))`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

impl Serialize for Expr {
    /// An expression serialises as its text.
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl From<BigRational> for Expr {
    fn from(r: BigRational) -> Self {
        Expr::number(r)
    }
}

impl From<i64> for Expr {
    fn from(n: i64) -> Self {
        Expr::integer(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing.

impl FromStr for Expr {
    type Err = Error;

    /// Parses a formula in `x`: numbers (decimals are exact: `0.66` is `33/50`), `pi`, `e`,
    /// `+ - * / ^` (or `**`), parentheses and the [`Function`]s. `-x^2` is `-(x^2)`, `^` is
    /// right-associative.
    ///
    /// # Errors
    /// [`Error::Parse`], with the reason, for malformed input, unknown names, non-analytic
    /// functions (`abs`, `max`, …) and trees beyond the [limits](self#limits).
    fn from_str(input: &str) -> Result<Expr> {
        let fail = |reason: String| Error::Parse {
            formula: abbreviate(input),
            reason,
        };
        let tokens = tokenize(input).map_err(fail)?;
        let mut parser = Parser {
            tokens,
            position: 0,
            depth: 0,
        };
        parser.parse().map_err(fail)
    }
}

/// At most 200 bytes of `input` for error messages, cut at a character boundary.
pub(crate) fn abbreviate(input: &str) -> String {
    const SHOWN: usize = 200;
    if input.len() <= SHOWN {
        return input.to_owned();
    }
    let mut end = SHOWN;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &input[..end], input.len())
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
            Token::Number(r) => format!("the number {}", abbreviate(&rational_text(r))),
            Token::Name(n) => format!("`{}`", abbreviate(n)),
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
        if tokens.len() > MAX_NODES.saturating_mul(2) {
            return Err(format!(
                "the formula has more than {} tokens; trees have at most {MAX_NODES} nodes",
                MAX_NODES * 2
            ));
        }
        let single = match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'*' if bytes.get(i + 1) == Some(&b'*') => {
                tokens.push(Token::Caret);
                i += 2;
                continue;
            }
            b'+' => Some(Token::Plus),
            b'-' => Some(Token::Minus),
            b'*' => Some(Token::Star),
            b'/' => Some(Token::Slash),
            b'^' => Some(Token::Caret),
            b'(' => Some(Token::Open),
            b')' => Some(Token::Close),
            b',' => Some(Token::Comma),
            _ => None,
        };
        if let Some(token) = single {
            tokens.push(token);
            i += 1;
            continue;
        }
        match bytes[i] {
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
                    "unexpected character `{}` at byte {i}; formulas use {KNOWN_NAMES}, \
                     numbers and + - * / ^ ( )",
                    ch.escape_default()
                ));
            }
        }
    }
    Ok(tokens)
}

/// Reads a decimal literal (`12`, `0.66`, `.5`, `1e-3`, `2.5E+4`) exactly, from byte `start`.
fn read_number(input: &str, start: usize) -> std::result::Result<(BigRational, usize), String> {
    let bytes = input.as_bytes();
    let digits_end = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_end(start);
    let (frac_start, frac_end) = if bytes.get(int_end) == Some(&b'.') {
        (int_end + 1, digits_end(int_end + 1))
    } else {
        (int_end, int_end)
    };
    let digits = format!("{}{}", &input[start..int_end], &input[frac_start..frac_end]);
    if digits.is_empty() {
        return Err(format!("a lone `.` at byte {start} is not a number"));
    }
    let (exponent, end) = read_exponent(input, frac_end)?;
    let mantissa: BigInt = digits.parse().map_err(|_| "bad number".to_string())?;
    let scale = exponent - (frac_end - frac_start) as i64;
    let power = num_traits::pow(BigInt::from(10), scale.unsigned_abs() as usize);
    let value = if scale >= 0 {
        BigRational::from_integer(mantissa * power)
    } else {
        BigRational::new(mantissa, power)
    };
    Ok((value, end))
}

/// Reads `e±digits` at byte `i`, if there; an `e` without digits is left for the parser.
fn read_exponent(input: &str, i: usize) -> std::result::Result<(i64, usize), String> {
    let bytes = input.as_bytes();
    if !matches!(bytes.get(i), Some(b'e' | b'E')) {
        return Ok((0, i));
    }
    let mut j = i + 1;
    let negative = bytes.get(j) == Some(&b'-');
    if matches!(bytes.get(j), Some(b'-' | b'+')) {
        j += 1;
    }
    let digits_start = j;
    while j < bytes.len() && bytes[j].is_ascii_digit() {
        j += 1;
    }
    if j == digits_start {
        return Ok((0, i));
    }
    let magnitude: i64 = input[digits_start..j]
        .parse()
        .ok()
        .filter(|m| *m <= MAX_DECIMAL_EXPONENT)
        .ok_or_else(|| {
            format!(
                "the exponent of `{}` is too large (at most {MAX_DECIMAL_EXPONENT})",
                abbreviate(&input[..j])
            )
        })?;
    Ok((if negative { -magnitude } else { magnitude }, j))
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    /// Current recursion depth, bounded by [`MAX_DEPTH`] (plus the top level).
    depth: usize,
}

type Parsed = std::result::Result<Expr, String>;

fn built(result: Result<Expr>) -> Parsed {
    result.map_err(|e| match e {
        Error::TooComplex { reason } => reason,
        other => other.to_string(),
    })
}

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

    /// Enters one level of recursion, refusing to go deeper than [`MAX_DEPTH`].
    fn descend(&mut self) -> std::result::Result<(), String> {
        // Every cycle of the recursion (parentheses, calls, signs, exponents) passes through
        // `unary`, the one place that counts.
        self.depth += 1;
        if self.depth > MAX_DEPTH + 1 {
            Err(format!("the formula nests deeper than {MAX_DEPTH} levels"))
        } else {
            Ok(())
        }
    }

    /// A sum, read in a loop into one n-ary node.
    fn sum(&mut self) -> Parsed {
        let mut terms = vec![self.product()?];
        loop {
            match self.peek() {
                Some(Token::Plus) => {
                    self.next();
                    terms.push(self.product()?);
                }
                Some(Token::Minus) => {
                    self.next();
                    let term = self.product()?;
                    terms.push(built(term.checked_neg())?);
                }
                _ => return built(Expr::sum(terms)),
            }
        }
    }

    /// A product, read in a loop into one n-ary node.
    fn product(&mut self) -> Parsed {
        let mut factors = vec![Factor::Times(self.unary()?)];
        loop {
            match self.peek() {
                Some(Token::Star) => {
                    self.next();
                    factors.push(Factor::Times(self.unary()?));
                }
                Some(Token::Slash) => {
                    self.next();
                    factors.push(Factor::Over(self.unary()?));
                }
                _ => return built(Expr::product_of(factors, Limits::Public)),
            }
        }
    }

    /// Unary signs bind looser than `^`: `-x^2` is `-(x^2)`.
    fn unary(&mut self) -> Parsed {
        self.descend()?;
        let node = match self.peek() {
            Some(Token::Minus) => {
                self.next();
                let operand = self.unary()?;
                built(operand.checked_neg())?
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
            built(base.checked_pow(exponent))
        } else {
            Ok(base)
        }
    }

    fn primary(&mut self) -> Parsed {
        match self.next() {
            None => Err("the formula ends where an operand was expected".into()),
            Some(Token::Number(r)) => Ok(Expr::number(r)),
            Some(Token::Open) => {
                let inner = self.sum()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("a `(` is not closed".into()),
                }
            }
            Some(Token::Name(name)) => self.name(&name),
            Some(t) => Err(format!("{} where an operand was expected", t.describe())),
        }
    }

    fn name(&mut self, name: &str) -> Parsed {
        let called = self.peek() == Some(&Token::Open);
        match (name, called) {
            ("x", false) => Ok(Expr::x()),
            ("pi", false) => Ok(Expr::constant(Constant::Pi)),
            ("e", false) => Ok(Expr::constant(Constant::E)),
            ("x" | "pi" | "e", true) => Err(format!(
                "`{name}` is not a function (write `{name}*(...)` to multiply)"
            )),
            (_, true) => {
                let function = known_function(name)?;
                self.next();
                if self.peek() == Some(&Token::Close) {
                    return Err(format!("`{name}()` needs an argument"));
                }
                let argument = self.sum()?;
                match self.next() {
                    Some(Token::Close) => built(Expr::call(function, argument)),
                    Some(Token::Comma) => Err(format!("`{name}` takes one argument")),
                    _ => Err(format!("the `(` after `{name}` is not closed")),
                }
            }
            (_, false) => match known_function(name) {
                Ok(_) => Err(format!(
                    "`{name}` needs its argument in parentheses: `{name}(x)`"
                )),
                Err(reason) if reason.starts_with("unknown function") => Err(format!(
                    "unknown name `{}`; formulas use {KNOWN_NAMES}",
                    abbreviate(name)
                )),
                Err(reason) => Err(reason),
            },
        }
    }
}

/// The function `name` denotes, or why it cannot be used.
fn known_function(name: &str) -> std::result::Result<Function, String> {
    if let Some(f) = Function::from_name(name) {
        return Ok(f);
    }
    match name {
        "abs" | "max" | "min" | "relu" | "sign" | "sgn" | "floor" | "ceil" | "round"
        | "heaviside" | "step" => Err(format!(
            "`{name}` has a kink or jump, so it has no Taylor series there; use a piecewise \
             activation (Relu, LeakyRelu, Elu, Softsign) expanded away from its kink, softplus \
             as a smooth stand-in, or fit a polynomial on an interval (polyact::fit)"
        )),
        _ => Err(format!(
            "unknown function `{}`; formulas use {KNOWN_NAMES}",
            abbreviate(name)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &str) -> String {
        let e: Expr = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
        let again: Expr = e
            .to_string()
            .parse()
            .unwrap_or_else(|err| panic!("{e}: {err}"));
        assert_eq!(again, e, "{input} printed as {e}");
        e.to_string()
    }

    fn reason(input: &str) -> String {
        match input.parse::<Expr>() {
            Err(Error::Parse { reason, .. }) => reason,
            other => panic!("{input}: expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn formulas_print_as_written() {
        assert_eq!(ok("1/(1+exp(-x))"), "1/(1+exp(-x))");
        assert_eq!(ok("(exp(2*x)-1)/(exp(2*x)+1)"), "(exp(2*x)-1)/(exp(2*x)+1)");
        assert_eq!(ok("x/2*(1+erf(x/sqrt(2)))"), "x/2*(1+erf(x/sqrt(2)))");
        assert_eq!(ok("(1/100)*x"), "1/100*x");
        assert_eq!(ok("tanh(x)"), "tanh(x)");
        assert_eq!(ok("ln(e)"), "log(e)");
    }

    #[test]
    fn decimals_are_exact_and_numbers_fold() {
        assert_eq!(ok("0.66 + x/2"), "33/50+x/2");
        assert_eq!(ok("1e-3*x"), "1/1000*x");
        assert_eq!(ok("2.5E+2"), "250");
        assert_eq!(ok(".5*x"), "1/2*x");
        assert_eq!(ok("x^0.5"), "x^(1/2)");
        assert_eq!(ok("2*3/4*x"), "3/2*x");
        assert_eq!(ok("-(2)"), "-2");
        assert_eq!(ok("x - 2"), "x-2");
        assert_eq!(ok("x - 1/2*x"), "x-1/2*x");
    }

    #[test]
    fn precedence_and_signs() {
        assert_eq!(ok("-x^2"), "-x^2");
        assert_eq!(ok("2^-x"), "2^-x");
        assert_eq!(ok("x - (1 - x)"), "x-(1-x)");
        assert_eq!(ok("x - -x"), "x+x");
        assert_eq!(ok("x/(2*x)"), "x/(2*x)");
        assert_eq!(ok("x**3"), "x^3");
        assert_eq!(ok("(x^2)^3"), "(x^2)^3");
        assert_eq!(ok("x^2^3"), "x^2^3");
        assert_eq!(ok("x^-1"), "x^-1");
        assert_eq!(ok("x^(-1/2)"), "x^(-1/2)");
        assert_eq!(ok("-(x*y)".replace('y', "x").as_str()), "-(x*x)");
        assert_eq!(ok("-x*x"), "-x*x");
        assert_eq!(ok("x*(-x)"), "x*(-x)");
        assert_eq!(ok("(-2)^x"), "(-2)^x");
    }

    #[test]
    fn long_chains_are_flat() {
        for op in ["+", "-", "*", "/"] {
            let text = vec!["x"; 5000].join(op);
            let e: Expr = text.parse().unwrap();
            assert!(e.depth() <= 3, "{op}: depth {}", e.depth());
            assert_eq!(e.to_string().parse::<Expr>().unwrap(), e);
        }
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
        assert!(reason("1/0").contains("divided by the number 0"));
        assert!(reason(&"(".repeat(5000)).contains("deeper"));
        assert!(reason(&"-".repeat(5000)).contains("deeper"));
        assert!(reason(&"x^".repeat(5000)).contains("deeper"));
    }

    #[test]
    fn serde_is_the_text() {
        let e: Expr = "1/(1+exp(-x))".parse().unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, "\"1/(1+exp(-x))\"");
        assert_eq!(serde_json::from_str::<Expr>(&json).unwrap(), e);
        assert!(serde_json::from_str::<Expr>("\"abs(x)\"").is_err());
    }
}
