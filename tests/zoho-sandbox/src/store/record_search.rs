//! `GET /{module}/search`: criteria, phone, email and word searches.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Map, Value, json};

use crate::search::{self, Criteria, CriteriaError};

use super::{
    ApiResponse, Store, StoredRecord, error, fields_param, normalise_phone, page_of, paged,
};

impl Store {
    fn search_value_ok(v: &str) -> bool {
        v.trim().chars().count() >= 2
    }

    /// `GET /crm/v8/{module}/search`.
    pub fn search(&self, module: &str, q: &HashMap<String, String>) -> ApiResponse {
        if !self.api_module(module) || module == "Notes" {
            return error(
                400,
                "INVALID_MODULE",
                "The module name given seems to be invalid",
                json!({"resource_path_index": 0}),
            );
        }
        let converted = q.get("converted").map(String::as_str).unwrap_or("false");
        if !matches!(converted, "true" | "false" | "both") {
            return invalid_query("converted", "invalid value for converted", converted);
        }
        let fields_by_type = |t: &str| -> Vec<String> {
            self.fields_of(module)
                .iter()
                .filter(|f| f.get("data_type").and_then(Value::as_str) == Some(t))
                .filter_map(|f| {
                    f.get("api_name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        };
        // Precedence: criteria > email > phone > word (reference §4).
        let matcher: RecordMatcher = if let Some(c) = q.get("criteria") {
            let parsed = match search::parse(c) {
                Ok(p) => p,
                Err(CriteriaError::Operator { field, operator }) => {
                    return ApiResponse::json(
                        400,
                        json!({"code": "INVALID_QUERY", "details": {"operator": operator, "reason": "invalid operator found", "api_name": field},
                               "message": "Invalid query formed", "status": "error"}),
                    );
                }
                Err(CriteriaError::TooMany(_)) => {
                    return error(
                        400,
                        "CRITERIA_LIMIT_EXCEEDED",
                        "no of criterium that can be given exceed the limit 15",
                        json!({}),
                    );
                }
                Err(CriteriaError::Syntax(_)) => {
                    return ApiResponse::json(
                        400,
                        json!({"code": "INVALID_QUERY", "details": {"api_name": "criteria", "param_name": "criteria"},
                               "message": "Invalid query formed", "status": "error"}),
                    );
                }
            };
            for f in parsed.fields() {
                if self.field(module, f).is_none() && f != "id" {
                    return ApiResponse::json(
                        400,
                        json!({"code": "INVALID_QUERY", "details": {"reason": "invalid field found", "api_name": f},
                               "message": "Invalid query formed", "status": "error"}),
                    );
                }
            }
            if let Some(bad) = first_short_value(&parsed) {
                return invalid_query(
                    &bad.0,
                    "the value should have at least 2 characters",
                    &bad.1,
                );
            }
            let phone_fields = fields_by_type("phone");
            Box::new(move |r| eval(&parsed, r, &phone_fields))
        } else if let Some(e) = q.get("email") {
            if !Self::search_value_ok(e) {
                return invalid_query("email", "the value should have at least 2 characters", e);
            }
            let fs = fields_by_type("email");
            let e = e.trim().to_lowercase();
            Box::new(move |r| {
                fs.iter().any(|f| {
                    r.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_lowercase() == e)
                })
            })
        } else if let Some(p) = q.get("phone") {
            if !Self::search_value_ok(p) {
                return invalid_query("phone", "the value should have at least 2 characters", p);
            }
            let fs = fields_by_type("phone");
            let n = normalise_phone(p);
            Box::new(move |r| {
                fs.iter().any(|f| {
                    r.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| normalise_phone(v) == n)
                })
            })
        } else if let Some(w) = q.get("word") {
            if !Self::search_value_ok(w) {
                return invalid_query("word", "the value should have at least 2 characters", w);
            }
            let w = w.trim().to_lowercase();
            Box::new(move |r| {
                r.iter()
                    .filter(|(k, _)| !k.starts_with('$') && k.as_str() != "id")
                    .any(|(_, v)| v.as_str().is_some_and(|s| s.to_lowercase().contains(&w)))
            })
        } else {
            return ApiResponse::json(
                400,
                json!({"code": "EXPECTED_PARAM_MISSING", "details": {"param_names": ["criteria", "email", "phone", "word"]},
                       "message": "One of the expected parameter is missing", "status": "error"}),
            );
        };
        let delay = self.cfg.search_index_delay;
        let now = Instant::now();
        let fields = fields_param(q);
        let hits: Vec<Value> = self
            .records
            .get(module)
            .map(|rs| {
                rs.iter()
                    .filter(|r| now.duration_since(r.touched) >= delay)
                    .filter(|r| converted_filter(module, r, converted))
                    .filter(|r| matcher(&r.data))
                    .map(|r| self.render(module, r, fields.as_deref()))
                    .collect()
            })
            .unwrap_or_default();
        // Only the first 2000 matches can be paged (reference §4).
        let (page, per_page) = page_of(q);
        if (page - 1).saturating_mul(per_page) >= 2000 {
            return error(
                400,
                "LIMIT_REACHED",
                "maximum response iteration limit reached",
                json!({"limit": "2000"}),
            );
        }
        paged(hits, q)
    }
}

/// Predicate a search applies to each stored record.
type RecordMatcher = Box<dyn Fn(&Map<String, Value>) -> bool>;

pub(super) fn converted_filter(module: &str, r: &StoredRecord, converted: &str) -> bool {
    if module != "Leads" {
        return true;
    }
    let is = r.data.get("Converted__s") == Some(&json!(true));
    match converted {
        "true" => is,
        "both" => true,
        _ => !is,
    }
}

pub(super) fn invalid_query(api_name: &str, reason: &str, value: &str) -> ApiResponse {
    ApiResponse::json(
        400,
        json!({"code": "INVALID_QUERY", "details": {"reason": reason, "api_name": api_name, "value": value},
               "message": "Invalid query formed", "status": "error"}),
    )
}

fn first_short_value(c: &Criteria) -> Option<(String, String)> {
    match c {
        Criteria::Cond { field, values, .. } => values
            .iter()
            .find(|v| v.trim().chars().count() < 2 && !v.trim().is_empty() || v.trim().is_empty())
            .map(|v| (field.clone(), v.clone())),
        Criteria::And(a, b) | Criteria::Or(a, b) => {
            first_short_value(a).or_else(|| first_short_value(b))
        }
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Evaluates criteria against a record. On Zoho's Search API `equals` on
/// text behaves like "contains" (reference §4); phone fields compare
/// normalised values for equality (see [`normalise_phone`]).
fn eval(c: &Criteria, r: &Map<String, Value>, phone_fields: &[String]) -> bool {
    match c {
        Criteria::And(a, b) => eval(a, r, phone_fields) && eval(b, r, phone_fields),
        Criteria::Or(a, b) => eval(a, r, phone_fields) || eval(b, r, phone_fields),
        Criteria::Cond { field, op, values } => {
            let is_phone = phone_fields.iter().any(|p| p == field);
            let norm = |s: &str| {
                if is_phone {
                    normalise_phone(s)
                } else {
                    s.trim().to_lowercase()
                }
            };
            let stored = norm(&value_text(r.get(field)));
            let eq = |v: &String| {
                let q = norm(v);
                if is_phone || field == "id" {
                    stored == q
                } else {
                    !stored.is_empty() && stored.contains(&q)
                }
            };
            match op.as_str() {
                "equals" | "in" => values.iter().any(eq),
                "not_equal" | "not_in" => !values.iter().any(eq),
                "starts_with" => values
                    .iter()
                    .any(|v| !stored.is_empty() && stored.starts_with(&norm(v))),
                "greater_than" => values
                    .first()
                    .is_some_and(|v| stored.as_str() > norm(v).as_str()),
                "greater_equal" => values
                    .first()
                    .is_some_and(|v| stored.as_str() >= norm(v).as_str()),
                "less_than" => values
                    .first()
                    .is_some_and(|v| stored.as_str() < norm(v).as_str()),
                "less_equal" => values
                    .first()
                    .is_some_and(|v| stored.as_str() <= norm(v).as_str()),
                "between" => match (values.first(), values.get(1)) {
                    (Some(a), Some(b)) => {
                        stored.as_str() >= norm(a).as_str() && stored.as_str() <= norm(b).as_str()
                    }
                    _ => false,
                },
                _ => false,
            }
        }
    }
}
