//! The typed filter DSL ([`Filter`]) and the escaping that makes it safe.
//!
//! A filter is built without a round trip and without failing; it is checked
//! when it is rendered (by the query builder or [`Filter::render`]): field
//! names must be identifiers (`[A-Za-z_][A-Za-z0-9_]*`), values must not be
//! empty, numbers must not be NaN. Values are escaped so that no value can
//! change the structure of the query:
//!
//! * tag values: every ASCII punctuation, whitespace and control character is
//!   backslash-escaped (leading and trailing ASCII whitespace is trimmed first,
//!   as the index does when it stores a tag); non-ASCII characters are never
//!   query syntax and are kept as they are;
//! * text: split into words at everything that is not a letter, a digit, `_`
//!   or a non-ASCII character (as the tokenizer does), so no query syntax is
//!   left in any word;
//! * numbers and coordinates are formatted by Rust, never taken as text;
//!   integers ([`Number::Int`], from any integer type up to `i128`) are
//!   written digit for digit, never through `f64` (which would turn the id
//!   `9007199254740993` into `9007199254740992`, another document's id).
//!
//! NUMERIC fields are stored by the server as doubles: an exactly rendered
//! integer beyond 2^53 is still compared as the nearest double, so ids that
//! large belong in a TAG field (where they match exactly).
//!
//! ```
//! use redis_atomics::search::{Filter, GeoUnit};
//!
//! let f = Filter::tag("tenant").eq("acme} | @tenant:{victim")
//!     & Filter::num("year").between(2000.0, 2010.0)
//!     & !Filter::text("title").word("draft");
//! assert_eq!(
//!     f.render().unwrap(),
//!     r"(@tenant:{acme\}\ \|\ \@tenant\:\{victim} @year:[2000 2010] -(@title:(draft)))"
//! );
//! assert!(Filter::tag("tenant").eq("").render().is_err());
//! let near = Filter::geo("loc").radius(2.35, 48.85, 5.0, GeoUnit::Kilometers);
//! assert_eq!(near.render().unwrap(), "@loc:[2.35 48.85 5 km]");
//! ```

mod escape;
mod render;

use std::ops::{BitAnd, BitOr, Not};

pub use escape::escape_tag_value;
pub(crate) use escape::{MAX_TAG_BYTES, check_field};

/// A condition on indexed fields, combined with `&` (and), `|` (or) and `!`
/// (not). Build one with [`Filter::tag`], [`Filter::num`], [`Filter::text`]
/// or [`Filter::geo`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    TagAny {
        field: String,
        values: Vec<String>,
    },
    TagPrefix {
        field: String,
        prefix: String,
    },
    Num {
        field: String,
        lo: Bound,
        hi: Bound,
        negate: bool,
    },
    Text {
        field: String,
        text: String,
        phrase: bool,
    },
    Geo {
        field: String,
        lon: f64,
        lat: f64,
        radius: f64,
        unit: GeoUnit,
    },
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Bound {
    Unbounded,
    Inclusive(Number),
    Exclusive(Number),
}

/// A number in a filter: an integer, rendered digit for digit, or a float.
/// Every integer type up to `i128` and both float types convert into it, so
/// `Filter::num("n").eq(5)`, `.eq(5.5)` and `.eq(id_u64)` all work.
///
/// ```
/// use redis_atomics::search::{Filter, Number};
///
/// let id: u64 = 9_007_199_254_740_993; // not an f64: `as f64` gives …992
/// assert_eq!(Number::from(id).to_string(), "9007199254740993");
/// assert_eq!(Number::from(0.1f32).to_string(), "0.1");
/// assert_eq!(
///     Filter::num("id").eq(id).render().unwrap(),
///     "@id:[9007199254740993 9007199254740993]"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Number {
    /// An integer (`u64` and `i128` included), exact.
    Int(i128),
    /// A float: rendered as the shortest text that parses back to it;
    /// infinities as `+inf` / `-inf`; NaN is a validation error.
    Float(f64),
}

macro_rules! number_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Number {
            fn from(v: $t) -> Self {
                Number::Int(i128::from(v))
            }
        }
    )*};
}
number_from_int!(i8, i16, i32, i64, i128, u8, u16, u32, u64);

impl From<usize> for Number {
    fn from(v: usize) -> Self {
        // usize is at most 64 bits on every supported target.
        Number::Int(v as i128)
    }
}

impl From<isize> for Number {
    fn from(v: isize) -> Self {
        Number::Int(v as i128)
    }
}

impl From<f64> for Number {
    fn from(v: f64) -> Self {
        Number::Float(v)
    }
}

impl From<f32> for Number {
    /// Through the f32's own shortest text, so `0.1f32` stays `0.1` (not
    /// `0.10000000149011612`, what `as f64` gives).
    fn from(v: f32) -> Self {
        Number::Float(v.to_string().parse().unwrap_or(f64::from(v)))
    }
}

impl std::fmt::Display for Number {
    /// Integers digit for digit; floats as Rust's shortest round-trip text
    /// (no exponent), `+inf` / `-inf`, `NaN`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Number::Int(i) => write!(f, "{i}"),
            Number::Float(x) if x.is_infinite() => {
                f.write_str(if x > 0.0 { "+inf" } else { "-inf" })
            }
            Number::Float(x) => write!(f, "{x}"),
        }
    }
}

impl Number {
    /// Parses an integer exactly (up to `i128`), else a float; `None` when
    /// `text` (surrounding whitespace ignored) is neither.
    ///
    /// ```
    /// use redis_atomics::search::Number;
    /// assert_eq!(Number::parse(" 9007199254740993 "), Some(Number::Int(9007199254740993)));
    /// assert_eq!(Number::parse("1.5"), Some(Number::Float(1.5)));
    /// assert_eq!(Number::parse("ten"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Number> {
        let text = text.trim();
        if let Ok(i) = text.parse::<i128>() {
            return Some(Number::Int(i));
        }
        text.parse::<f64>().ok().map(Number::Float)
    }

    pub(crate) fn is_nan(self) -> bool {
        matches!(self, Number::Float(x) if x.is_nan())
    }
}

/// The unit of a geo radius.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeoUnit {
    /// Meters (`m`).
    Meters,
    /// Kilometers (`km`).
    Kilometers,
    /// Miles (`mi`).
    Miles,
    /// Feet (`ft`).
    Feet,
}

impl GeoUnit {
    fn as_str(self) -> &'static str {
        match self {
            GeoUnit::Meters => "m",
            GeoUnit::Kilometers => "km",
            GeoUnit::Miles => "mi",
            GeoUnit::Feet => "ft",
        }
    }
}

/// Conditions on a TAG field; from [`Filter::tag`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TagCondition(String);

/// Conditions on a NUMERIC field; from [`Filter::num`].
#[derive(Debug, Clone)]
#[must_use]
pub struct NumCondition(String);

/// Conditions on a TEXT field; from [`Filter::text`].
#[derive(Debug, Clone)]
#[must_use]
pub struct TextCondition(String);

/// Conditions on a GEO field; from [`Filter::geo`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GeoCondition(String);

impl Filter {
    /// Conditions on the TAG field `field`.
    pub fn tag(field: impl Into<String>) -> TagCondition {
        TagCondition(field.into())
    }

    /// Conditions on the NUMERIC field `field`.
    pub fn num(field: impl Into<String>) -> NumCondition {
        NumCondition(field.into())
    }

    /// Conditions on the TEXT field `field`.
    pub fn text(field: impl Into<String>) -> TextCondition {
        TextCondition(field.into())
    }

    /// Conditions on the GEO field `field`.
    pub fn geo(field: impl Into<String>) -> GeoCondition {
        GeoCondition(field.into())
    }

    /// All of `filters` (an empty list is an error when rendered).
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(Node::And(filters.into_iter().collect()))
    }

    /// Any of `filters` (an empty list is an error when rendered).
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(Node::Or(filters.into_iter().collect()))
    }

    /// `self` and `other` (same as `self & other`).
    #[must_use]
    pub fn and(self, other: Filter) -> Filter {
        self & other
    }

    /// `self` or `other` (same as `self | other`).
    #[must_use]
    pub fn or(self, other: Filter) -> Filter {
        self | other
    }

    /// Everything `self` does not match (same as `!self`).
    #[must_use]
    pub fn negate(self) -> Filter {
        !self
    }
}

impl TagCondition {
    /// The tag equals `value` (case-insensitive unless the field is
    /// CASESENSITIVE).
    pub fn eq(self, value: impl Into<String>) -> Filter {
        Filter(Node::TagAny {
            field: self.0,
            values: vec![value.into()],
        })
    }

    /// The tag equals any of `values`.
    pub fn any_of<I, S>(self, values: I) -> Filter
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values = values.into_iter().map(Into::into).collect();
        Filter(Node::TagAny {
            field: self.0,
            values,
        })
    }

    /// The tag starts with `prefix` (the server wants at least 2 characters).
    pub fn prefix(self, prefix: impl Into<String>) -> Filter {
        Filter(Node::TagPrefix {
            field: self.0,
            prefix: prefix.into(),
        })
    }
}

impl NumCondition {
    fn range(self, lo: Bound, hi: Bound, negate: bool) -> Filter {
        Filter(Node::Num {
            field: self.0,
            lo,
            hi,
            negate,
        })
    }

    /// The number equals `value` (any integer or float, see [`Number`]).
    pub fn eq(self, value: impl Into<Number>) -> Filter {
        let value = value.into();
        self.range(Bound::Inclusive(value), Bound::Inclusive(value), false)
    }

    /// The number differs from `value` (documents without the field match too).
    pub fn ne(self, value: impl Into<Number>) -> Filter {
        let value = value.into();
        self.range(Bound::Inclusive(value), Bound::Inclusive(value), true)
    }

    /// The number is greater than `value`.
    pub fn gt(self, value: impl Into<Number>) -> Filter {
        self.range(Bound::Exclusive(value.into()), Bound::Unbounded, false)
    }

    /// The number is greater than or equal to `value`.
    pub fn gte(self, value: impl Into<Number>) -> Filter {
        self.range(Bound::Inclusive(value.into()), Bound::Unbounded, false)
    }

    /// The number is less than `value`.
    pub fn lt(self, value: impl Into<Number>) -> Filter {
        self.range(Bound::Unbounded, Bound::Exclusive(value.into()), false)
    }

    /// The number is less than or equal to `value`.
    pub fn lte(self, value: impl Into<Number>) -> Filter {
        self.range(Bound::Unbounded, Bound::Inclusive(value.into()), false)
    }

    /// `low <= number <= high`.
    pub fn between(self, low: impl Into<Number>, high: impl Into<Number>) -> Filter {
        self.range(
            Bound::Inclusive(low.into()),
            Bound::Inclusive(high.into()),
            false,
        )
    }
}

impl TextCondition {
    /// The field contains every word of `words` (in any order). Stop words
    /// ("the", "a", …) are not indexed unless the index was created with
    /// [`IndexSchema::no_stopwords`](crate::search::IndexSchema::no_stopwords):
    /// a filter made only of stop words matches nothing (negated too).
    pub fn word(self, words: impl Into<String>) -> Filter {
        Filter(Node::Text {
            field: self.0,
            text: words.into(),
            phrase: false,
        })
    }

    /// The field contains the words of `phrase` next to each other, in order.
    pub fn phrase(self, phrase: impl Into<String>) -> Filter {
        Filter(Node::Text {
            field: self.0,
            text: phrase.into(),
            phrase: true,
        })
    }
}

impl GeoCondition {
    /// The point lies within `radius` `unit`s of (`lon`, `lat`).
    pub fn radius(self, lon: f64, lat: f64, radius: f64, unit: GeoUnit) -> Filter {
        Filter(Node::Geo {
            field: self.0,
            lon,
            lat,
            radius,
            unit,
        })
    }
}

impl BitAnd for Filter {
    type Output = Filter;
    fn bitand(self, rhs: Filter) -> Filter {
        match self.0 {
            Node::And(mut list) if !list.is_empty() => {
                list.push(rhs);
                Filter(Node::And(list))
            }
            node => Filter(Node::And(vec![Filter(node), rhs])),
        }
    }
}

impl BitOr for Filter {
    type Output = Filter;
    fn bitor(self, rhs: Filter) -> Filter {
        match self.0 {
            Node::Or(mut list) if !list.is_empty() => {
                list.push(rhs);
                Filter(Node::Or(list))
            }
            node => Filter(Node::Or(vec![Filter(node), rhs])),
        }
    }
}

impl Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter(Node::Not(Box::new(self)))
    }
}
