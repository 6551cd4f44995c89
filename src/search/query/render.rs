//! Rendering a [`VectorQueryBuilder`] to one `FT.SEARCH … DIALECT 2`,
//! checking every part before any round trip.

use std::fmt::Write as _;

use redis::Cmd;

use super::command::SearchCommand;
use super::{Clause, FilterValue, HybridPolicy, VectorKind, VectorQueryBuilder};
use crate::core::error::{Error, Result};
use crate::search::document::check_dim;
use crate::search::filter::{Filter, Number, check_field};
use crate::search::info::IndexInfo;
use crate::search::results::DISTANCE_FIELD;
use crate::search::schema::FieldType;

impl VectorQueryBuilder {
    pub(super) fn render_with(&self, info: Option<&IndexInfo>) -> Result<SearchCommand> {
        let index = self.index.name();
        let err = |msg: String| Error::validation(msg).with_key(index);
        let mut filter = String::new();
        let mut n = 0;
        for clause in &self.clauses {
            if n > 0 {
                filter.push(' ');
            }
            match clause {
                Clause::Typed(f) => f.render_into(&mut filter),
                Clause::Auto(field, value) => match info {
                    Some(info) => auto_filter(info, field, value)?.render_into(&mut filter),
                    // Checking only (see `execute`): the type is not known yet.
                    None => check_field(field).map(|()| filter.push('*')),
                },
            }
            .map_err(|e| e.with_key(index))?;
            n += 1;
        }
        if n > 1 {
            filter.insert(0, '(');
            filter.push(')');
        }

        let mut query = String::with_capacity(filter.len() + 64);
        let (mut offset, mut count) = self.page.unwrap_or((0, 10));
        let mut blob = None;
        match &self.vector {
            None => query.push_str(if filter.is_empty() { "*" } else { &filter }),
            Some(v) => {
                let field = v.field.as_str();
                check_field(field).map_err(|e| e.with_key(index))?;
                if v.dim == 0 {
                    return Err(err(format!("vector query on @{field}: empty vector")));
                }
                if let Some(info) = info {
                    let schema_field = info
                        .field(field)
                        .filter(|f| f.field_type == FieldType::Vector)
                        .ok_or_else(|| {
                            err(format!("@{field} is not a VECTOR field of index {index}"))
                        })?;
                    check_dim(field, v.dim, schema_field.dim).map_err(|e| e.with_key(index))?;
                }
                blob = Some(
                    v.blob
                        .as_deref()
                        .map_err(|m| err(format!("vector query on @{field}: {m}")))?,
                );
                match v.kind {
                    VectorKind::Knn(k) => {
                        if k == 0 {
                            return Err(err(format!("KNN on @{field}: k must be at least 1")));
                        }
                        (offset, count) = self.page.unwrap_or((0, k));
                        let k = k.max(offset.saturating_add(count));
                        if filter.is_empty() {
                            query.push('*');
                        } else if is_wrapped(&filter) {
                            query.push_str(&filter);
                        } else {
                            query.push('(');
                            query.push_str(&filter);
                            query.push(')');
                        }
                        let _ = write!(query, "=>[KNN {k} @{field} $vec");
                        match self.hybrid {
                            None => {}
                            Some(_) if filter.is_empty() => {
                                return Err(err("a hybrid policy needs a filter".into()));
                            }
                            Some(HybridPolicy::AdHocBruteForce) => {
                                query.push_str(" HYBRID_POLICY ADHOC_BF")
                            }
                            Some(HybridPolicy::Batches(size)) => {
                                query.push_str(" HYBRID_POLICY BATCHES");
                                if let Some(size) = size {
                                    let _ = write!(query, " BATCH_SIZE {size}");
                                }
                            }
                        }
                        if let Some(ef) = self.ef_runtime {
                            if ef == 0 {
                                return Err(err("EF_RUNTIME must be at least 1".into()));
                            }
                            let _ = write!(query, " EF_RUNTIME {ef}");
                        }
                        let _ = write!(query, " AS {DISTANCE_FIELD}]");
                    }
                    VectorKind::Range(radius) => {
                        if !radius.is_finite() || radius < 0.0 {
                            return Err(err(format!(
                                "range on @{field}: radius {radius} must be finite and >= 0"
                            )));
                        }
                        if self.hybrid.is_some() || self.ef_runtime.is_some() {
                            return Err(err(
                                "hybrid_policy and ef_runtime apply to KNN only".into()
                            ));
                        }
                        let _ = write!(
                            query,
                            "@{field}:[VECTOR_RANGE {radius} $vec]=>{{$YIELD_DISTANCE_AS: {DISTANCE_FIELD}}}"
                        );
                        if !filter.is_empty() {
                            query.push(' ');
                            query.push_str(&filter);
                        }
                    }
                }
            }
        }
        if self.vector.is_none() && (self.hybrid.is_some() || self.ef_runtime.is_some()) {
            return Err(err("hybrid_policy and ef_runtime need a knn query".into()));
        }

        let fields = self.return_fields.as_ref().map_or(0, Vec::len);
        let bytes = index.len() + query.len() + blob.map_or(0, <[u8]>::len) + 16 * fields + 96;
        let mut cmd = Cmd::with_capacity(16 + fields, bytes);
        cmd.arg("FT.SEARCH").arg(index).arg(&query);
        if let Some(fields) = &self.return_fields {
            let extra = usize::from(blob.is_some());
            cmd.arg("RETURN").arg(fields.len() + extra);
            for f in fields {
                check_field(f).map_err(|e| e.with_key(index))?;
                cmd.arg(f);
            }
            if blob.is_some() {
                cmd.arg(DISTANCE_FIELD);
            }
        }
        match (&self.sort, blob.is_some()) {
            (Some((field, asc)), _) => {
                check_field(field).map_err(|e| e.with_key(index))?;
                cmd.arg("SORTBY")
                    .arg(field)
                    .arg(if *asc { "ASC" } else { "DESC" });
            }
            (None, true) => {
                cmd.arg("SORTBY").arg(DISTANCE_FIELD).arg("ASC");
            }
            (None, false) => {}
        }
        cmd.arg("LIMIT").arg(offset).arg(count);
        if let Some(blob) = &blob {
            cmd.arg("PARAMS").arg(2).arg("vec").arg(blob);
        }
        if let Some(timeout) = self.timeout {
            let ms = timeout.as_millis().max(1);
            cmd.arg("TIMEOUT")
                .arg(u64::try_from(ms).unwrap_or(u64::MAX));
        }
        cmd.arg("DIALECT").arg(2);
        Ok(SearchCommand { cmd })
    }
}

/// Whether `query` is one parenthesized group: `(a b)`, not `(a) (b)`.
fn is_wrapped(query: &str) -> bool {
    if !query.starts_with('(') || !query.ends_with(')') {
        return false;
    }
    let mut depth = 0usize;
    let mut chars = query.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            // Numeric and geo ranges: `[(1 +inf]` has an unbalanced `(`.
            '[' => {
                for (_, c) in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                }
            }
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i == query.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// The filter `filter(field, value)` stands for, given the field's type.
fn auto_filter(info: &IndexInfo, field: &str, value: &FilterValue) -> Result<Filter> {
    let ty = info.field(field).map(|f| f.field_type).ok_or_else(|| {
        Error::validation(format!(
            "filter on @{field}: no such field in index {}",
            info.name
        ))
    })?;
    Ok(match (ty, value) {
        (FieldType::Tag, FilterValue::Text(s)) => Filter::tag(field).eq(s.as_str()),
        (FieldType::Tag, FilterValue::Number(x)) => Filter::tag(field).eq(x.to_string()),
        (FieldType::Numeric, FilterValue::Number(x)) => Filter::num(field).eq(*x),
        (FieldType::Numeric, FilterValue::Text(s)) => {
            // An integer stays exact; only a fraction goes through f64.
            let x = Number::parse(s).ok_or_else(|| {
                Error::validation(format!("filter on NUMERIC @{field}: {s:?} is not a number"))
            })?;
            Filter::num(field).eq(x)
        }
        (FieldType::Text, FilterValue::Text(s)) => Filter::text(field).phrase(s.as_str()),
        (FieldType::Text, FilterValue::Number(x)) => Filter::text(field).phrase(x.to_string()),
        (other, _) => {
            return Err(Error::validation(format!(
                "filter on @{field}: a {} field needs a typed Filter (e.g. Filter::geo)",
                other.as_str()
            )));
        }
    })
}
