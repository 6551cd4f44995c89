//! The typed filter DSL ([`Filter`]) and the escaping that makes it safe.
//!
//! A filter is built without a round trip and without failing; it is checked
//! when it is rendered (by the query builder or [`Filter::render`]): field
//! names must be identifiers (`[A-Za-z_][A-Za-z0-9_]*`), values must not be
//! empty, numbers must not be NaN. Values are escaped so that no value can
//! change the structure of the query:
//!
//! * tag values: every ASCII punctuation character, whitespace and control
//!   character is backslash-escaped (leading and trailing whitespace is trimmed
//!   first, as the index does when it stores a tag);
//! * text: split into words at everything that is not a letter, a digit, `_`
//!   or a non-ASCII character (as the tokenizer does), so no query syntax is
//!   left in any word;
//! * numbers and coordinates are formatted by Rust, never taken as text.
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

use std::fmt::Write as _;
use std::ops::{BitAnd, BitOr, Not};

use crate::error::{Error, Result};

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
    Inclusive(f64),
    Exclusive(f64),
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

    /// The query text of this filter (DIALECT 2), or a validation error for an
    /// invalid field name, an empty value or a NaN.
    pub fn render(&self) -> Result<String> {
        let mut out = String::new();
        self.render_into(&mut out)?;
        Ok(out)
    }

    pub(crate) fn render_into(&self, out: &mut String) -> Result<()> {
        match &self.0 {
            Node::TagAny { field, values } => {
                check_field(field)?;
                if values.is_empty() {
                    return Err(Error::validation(format!(
                        "tag filter on @{field}: any_of needs at least one value"
                    )));
                }
                out.push('@');
                out.push_str(field);
                out.push_str(":{");
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        out.push_str(" | ");
                    }
                    escape_tag(field, v, out)?;
                }
                out.push('}');
            }
            Node::TagPrefix { field, prefix } => {
                check_field(field)?;
                out.push('@');
                out.push_str(field);
                out.push_str(":{");
                escape_tag(field, prefix, out)?;
                out.push_str("*}");
            }
            Node::Num {
                field,
                lo,
                hi,
                negate,
            } => {
                check_field(field)?;
                if *negate {
                    out.push('-');
                }
                out.push('@');
                out.push_str(field);
                out.push_str(":[");
                push_bound(field, *lo, "-inf", out)?;
                out.push(' ');
                push_bound(field, *hi, "+inf", out)?;
                out.push(']');
            }
            Node::Text {
                field,
                text,
                phrase,
            } => {
                check_field(field)?;
                let words: Vec<&str> = text_words(text).collect();
                if words.is_empty() {
                    return Err(Error::validation(format!(
                        "text filter on @{field}: {text:?} has no words"
                    )));
                }
                out.push('@');
                out.push_str(field);
                out.push_str(if *phrase { ":(\"" } else { ":(" });
                out.push_str(&words.join(" "));
                out.push_str(if *phrase { "\")" } else { ")" });
            }
            Node::Geo {
                field,
                lon,
                lat,
                radius,
                unit,
            } => {
                check_field(field)?;
                if !(-180.0..=180.0).contains(lon)
                    || !(-85.051_128_78..=85.051_128_78).contains(lat)
                {
                    return Err(Error::validation(format!(
                        "geo filter on @{field}: ({lon}, {lat}) is not a valid longitude, latitude"
                    )));
                }
                if !radius.is_finite() || *radius < 0.0 {
                    return Err(Error::validation(format!(
                        "geo filter on @{field}: radius {radius} must be finite and >= 0"
                    )));
                }
                let _ = write!(out, "@{field}:[{lon} {lat} {radius} {}]", unit.as_str());
            }
            Node::And(list) | Node::Or(list) => {
                let or = matches!(self.0, Node::Or(_));
                if list.is_empty() {
                    return Err(Error::validation(format!(
                        "Filter::{} of no filters",
                        if or { "any" } else { "all" }
                    )));
                }
                if list.len() == 1 {
                    return list[0].render_into(out);
                }
                out.push('(');
                for (i, f) in list.iter().enumerate() {
                    if i > 0 {
                        out.push_str(if or { " | " } else { " " });
                    }
                    f.render_into(out)?;
                }
                out.push(')');
            }
            Node::Not(inner) => {
                out.push_str("-(");
                inner.render_into(out)?;
                out.push(')');
            }
        }
        Ok(())
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

    /// The number equals `value`.
    pub fn eq(self, value: f64) -> Filter {
        self.range(Bound::Inclusive(value), Bound::Inclusive(value), false)
    }

    /// The number differs from `value` (documents without the field match too).
    pub fn ne(self, value: f64) -> Filter {
        self.range(Bound::Inclusive(value), Bound::Inclusive(value), true)
    }

    /// The number is greater than `value`.
    pub fn gt(self, value: f64) -> Filter {
        self.range(Bound::Exclusive(value), Bound::Unbounded, false)
    }

    /// The number is greater than or equal to `value`.
    pub fn gte(self, value: f64) -> Filter {
        self.range(Bound::Inclusive(value), Bound::Unbounded, false)
    }

    /// The number is less than `value`.
    pub fn lt(self, value: f64) -> Filter {
        self.range(Bound::Unbounded, Bound::Exclusive(value), false)
    }

    /// The number is less than or equal to `value`.
    pub fn lte(self, value: f64) -> Filter {
        self.range(Bound::Unbounded, Bound::Inclusive(value), false)
    }

    /// `low <= number <= high`.
    pub fn between(self, low: f64, high: f64) -> Filter {
        self.range(Bound::Inclusive(low), Bound::Inclusive(high), false)
    }
}

impl TextCondition {
    /// The field contains every word of `words` (in any order).
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

/// Checks that `field` can follow `@` in a query: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn check_field(field: &str) -> Result<()> {
    let mut chars = field.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "invalid field name {field:?}: use letters, digits and '_' (not starting with a digit)"
        )))
    }
}

/// Whether the tag escaper backslash-escapes `c`.
fn tag_special(c: char) -> bool {
    c.is_ascii_punctuation() || c.is_whitespace() || c.is_control()
}

/// Appends `value` (trimmed like the index trims tags) with every special
/// character backslash-escaped; an empty value is an error.
fn escape_tag(field: &str, value: &str, out: &mut String) -> Result<()> {
    let trimmed = value.trim_matches(|c: char| c.is_ascii_whitespace());
    if trimmed.is_empty() {
        return Err(Error::validation(format!(
            "tag filter on @{field}: empty value (use no filter to match everything)"
        )));
    }
    out.reserve(trimmed.len() + 4);
    for c in trimmed.chars() {
        if tag_special(c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(())
}

/// The tag escaping of `value` (trimmed); `None` when it is empty.
///
/// ```
/// use redis_atomics::search::escape_tag_value;
/// assert_eq!(escape_tag_value("a|b c").as_deref(), Some(r"a\|b\ c"));
/// assert_eq!(escape_tag_value("  "), None);
/// ```
pub fn escape_tag_value(value: &str) -> Option<String> {
    let mut out = String::new();
    escape_tag("", value, &mut out).ok()?;
    Some(out)
}

/// The words of `text` as the tokenizer sees them: runs of letters, digits,
/// `_` and non-ASCII characters (every ASCII punctuation and whitespace
/// character separates words).
pub(crate) fn text_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| c.is_ascii() && !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

fn push_bound(field: &str, bound: Bound, unbounded: &str, out: &mut String) -> Result<()> {
    let (value, exclusive) = match bound {
        Bound::Unbounded => {
            out.push_str(unbounded);
            return Ok(());
        }
        Bound::Inclusive(v) => (v, false),
        Bound::Exclusive(v) => (v, true),
    };
    if value.is_nan() {
        return Err(Error::validation(format!(
            "numeric filter on @{field}: NaN"
        )));
    }
    if exclusive {
        out.push('(');
    }
    if value.is_infinite() {
        out.push_str(if value > 0.0 { "+inf" } else { "-inf" });
    } else {
        let _ = write!(out, "{value}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_kind() {
        let cases = [
            (Filter::tag("t").eq("a b"), r"@t:{a\ b}"),
            (Filter::tag("t").any_of(["x", "y-z"]), r"@t:{x | y\-z}"),
            (Filter::tag("t").prefix("ab"), "@t:{ab*}"),
            (Filter::num("n").eq(5.0), "@n:[5 5]"),
            (Filter::num("n").ne(5.5), "-@n:[5.5 5.5]"),
            (Filter::num("n").gt(1.0), "@n:[(1 +inf]"),
            (Filter::num("n").gte(1.0), "@n:[1 +inf]"),
            (Filter::num("n").lt(-1.0), "@n:[-inf (-1]"),
            (Filter::num("n").lte(f64::INFINITY), "@n:[-inf +inf]"),
            (Filter::num("n").between(1.0, 2.0), "@n:[1 2]"),
            (Filter::text("d").word("Hello, world!"), "@d:(Hello world)"),
            (
                Filter::text("d").phrase("a \"quoted\" text"),
                "@d:(\"a quoted text\")",
            ),
        ];
        for (f, want) in cases {
            assert_eq!(f.render().unwrap(), want);
        }
    }

    #[test]
    fn combinators() {
        let a = Filter::tag("t").eq("a");
        let b = Filter::num("n").eq(1.0);
        let c = Filter::text("d").word("x");
        assert_eq!(
            (a.clone() & b.clone() & c.clone()).render().unwrap(),
            "(@t:{a} @n:[1 1] @d:(x))"
        );
        assert_eq!(
            (a.clone() | (b.clone() & !c.clone())).render().unwrap(),
            "(@t:{a} | (@n:[1 1] -(@d:(x))))"
        );
        assert_eq!(Filter::all([a.clone()]).render().unwrap(), "@t:{a}");
        assert!(Filter::any([]).render().is_err());
        assert_eq!(a.clone().or(b).render().unwrap(), "(@t:{a} | @n:[1 1])");
        assert_eq!(a.negate().render().unwrap(), "-(@t:{a})");
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Filter::tag("t").eq("").render().is_err());
        assert!(Filter::tag("t").eq(" \t").render().is_err());
        assert!(
            Filter::tag("t")
                .any_of(Vec::<String>::new())
                .render()
                .is_err()
        );
        assert!(Filter::tag("t").any_of(["a", ""]).render().is_err());
        assert!(Filter::text("t").word("!!! ...").render().is_err());
        assert!(Filter::num("n").eq(f64::NAN).render().is_err());
        assert!(Filter::tag("a b").eq("x").render().is_err());
        assert!(Filter::tag("1a").eq("x").render().is_err());
        assert!(Filter::tag("").eq("x").render().is_err());
        assert!(Filter::tag("t}").eq("x").render().is_err());
        let geo = Filter::geo("g");
        assert!(
            geo.clone()
                .radius(200.0, 0.0, 1.0, GeoUnit::Meters)
                .render()
                .is_err()
        );
        assert!(
            geo.radius(0.0, 0.0, f64::NAN, GeoUnit::Meters)
                .render()
                .is_err()
        );
    }

    #[test]
    fn tag_escaping_leaves_no_bare_specials() {
        let nasty = "x} | @tenant:{victim\\\"'*()-$~%";
        let mut out = String::new();
        escape_tag("t", nasty, &mut out).unwrap();
        let mut chars = out.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                assert!(tag_special(chars.next().unwrap()));
            } else {
                assert!(!tag_special(c), "{c:?} left bare in {out}");
            }
        }
    }
}
