//! Rendering a [`Filter`] as DIALECT 2 query text, checking it on the way.

use std::fmt::Write as _;

use super::escape::{check_field, escape_tag, text_words};
use super::{Bound, Filter, Node};
use crate::core::error::{Error, Result};

impl Filter {
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
    let _ = write!(out, "{value}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::GeoUnit;

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

    /// Integers render digit for digit in every bound (never through f64,
    /// which prints 9007199254740993 as …992 and u64::MAX as …616 + 1).
    #[test]
    fn integers_render_exactly() {
        let near: u64 = 9_007_199_254_740_993;
        let cases = [
            (Filter::num("n").eq(near), format!("@n:[{near} {near}]")),
            (Filter::num("n").ne(near), format!("-@n:[{near} {near}]")),
            (
                Filter::num("n").gt(u64::MAX),
                format!("@n:[({} +inf]", u64::MAX),
            ),
            (
                Filter::num("n").gte(i64::MAX),
                format!("@n:[{} +inf]", i64::MAX),
            ),
            (
                Filter::num("n").lt(i64::MIN),
                format!("@n:[-inf ({}]", i64::MIN),
            ),
            (
                Filter::num("n").lte(i128::MAX),
                format!("@n:[-inf {}]", i128::MAX),
            ),
            (
                Filter::num("n").between(i128::MIN, near),
                format!("@n:[{} {near}]", i128::MIN),
            ),
            (Filter::num("n").between(-1, 2.5), "@n:[-1 2.5]".to_owned()),
            (Filter::num("n").eq(7usize), "@n:[7 7]".to_owned()),
            (Filter::num("n").eq(0.1f32), "@n:[0.1 0.1]".to_owned()),
            (Filter::num("n").eq(1e21), format!("@n:[{0} {0}]", 1e21)),
        ];
        for (f, want) in cases {
            assert_eq!(f.render().unwrap(), want);
        }
        assert!(Filter::num("n").between(1, f64::NAN).render().is_err());
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
}
