//! Strict body validation (v2 rules, reference §2: booleans only
//! `true`/`false`, no string→number coercion; also used for the v1 leads
//! API, which validates its JSON the same way).
//!
//! Message format (`Validation failed: <field>: <problem>`) is the
//! sandbox's own; Pipedrive documents only the status (400).

use serde_json::{Map, Value};

use super::Store;

/// Expected type of a body field.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Str,
    Int,
    Num,
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    IntList,
    UuidList,
    /// `[{value: string, primary?: bool, label?: string}]` (phones, emails).
    Contacts,
    StrEnum(&'static [&'static str]),
    IntEnum(&'static [i64]),
    /// `{amount: number, currency: string}` (lead value).
    Money,
    /// Any JSON object (custom fields: checked against field metadata).
    Object,
}

/// One allowed field.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
}

pub const fn rule(name: &'static str, kind: Kind) -> Rule {
    Rule {
        name,
        kind,
        nullable: false,
    }
}

pub const fn nullable(name: &'static str, kind: Kind) -> Rule {
    Rule {
        name,
        kind,
        nullable: true,
    }
}

pub fn failed(field: &str, problem: &str) -> String {
    format!("Validation failed: {field}: {problem}")
}

pub fn is_date(s: &str) -> bool {
    s.len() == 10 && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

fn check_kind(name: &str, kind: Kind, v: &Value) -> Result<(), String> {
    let fail = |p: &str| Err(failed(name, p));
    match kind {
        Kind::Str if !v.is_string() => fail("must be a string"),
        Kind::Int if !(v.is_i64() || v.is_u64()) => fail("must be an integer"),
        Kind::Num if !v.is_number() => fail("must be a number"),
        Kind::Bool if !v.is_boolean() => fail("must be a boolean"),
        Kind::Date if !v.as_str().is_some_and(is_date) => fail("must be a date (YYYY-MM-DD)"),
        Kind::IntList => match v.as_array() {
            Some(a) if a.iter().all(|x| x.is_i64() || x.is_u64()) => Ok(()),
            _ => fail("must be an array of integers"),
        },
        Kind::UuidList => match v.as_array() {
            Some(a)
                if a.iter()
                    .all(|x| x.as_str().is_some_and(|s| uuid::Uuid::parse_str(s).is_ok())) =>
            {
                Ok(())
            }
            _ => fail("must be an array of UUID strings"),
        },
        Kind::Contacts => check_contacts(name, v),
        Kind::StrEnum(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => fail(&format!("must be one of {}", allowed.join(", "))),
        },
        Kind::IntEnum(allowed) => match v.as_i64() {
            Some(n) if allowed.contains(&n) => Ok(()),
            _ => fail(&format!("must be one of {allowed:?}")),
        },
        Kind::Money => {
            let ok = v.as_object().is_some_and(|m| {
                m.get("amount").is_some_and(Value::is_number)
                    && m.get("currency").is_some_and(Value::is_string)
                    && m.len() == 2
            });
            if ok {
                Ok(())
            } else {
                fail("must be an object with a number `amount` and a string `currency`")
            }
        }
        Kind::Object if !v.is_object() => fail("must be an object"),
        _ => Ok(()),
    }
}

fn check_contacts(name: &str, v: &Value) -> Result<(), String> {
    let Some(items) = v.as_array() else {
        return Err(failed(name, "must be an array of objects"));
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("{name}[{i}]");
        let Some(obj) = item.as_object() else {
            return Err(failed(&at, "must be an object"));
        };
        if !obj.get("value").is_some_and(Value::is_string) {
            return Err(failed(&format!("{at}.value"), "must be a string"));
        }
        for (k, x) in obj {
            match (k.as_str(), x) {
                ("value", _) | ("primary", Value::Bool(_)) | ("label", Value::String(_)) => {}
                ("primary", _) => {
                    return Err(failed(&format!("{at}.primary"), "must be a boolean"));
                }
                ("label", _) => return Err(failed(&format!("{at}.label"), "must be a string")),
                _ => return Err(failed(&format!("{at}.{k}"), "is not allowed")),
            }
        }
    }
    Ok(())
}

/// Checks every key of `body` against `rules`; keys accepted by `extra`
/// (e.g. custom-field hashes at the top level of a v1 lead) are skipped.
pub fn check(
    body: &Map<String, Value>,
    rules: &[Rule],
    extra: impl Fn(&str) -> bool,
) -> Result<(), String> {
    for (k, v) in body {
        match rules.iter().find(|r| r.name == k) {
            Some(r) if v.is_null() && r.nullable => {}
            Some(_) if v.is_null() => return Err(failed(k, "must not be null")),
            Some(r) => check_kind(k, r.kind, v)?,
            None if extra(k) => {}
            None => return Err(failed(k, "is not a known field")),
        }
    }
    Ok(())
}

/// A required, non-blank string field (create bodies).
pub fn require_text(body: &Map<String, Value>, field: &str) -> Result<(), String> {
    match body.get(field).and_then(Value::as_str) {
        Some(t) if !t.trim().is_empty() => Ok(()),
        _ => Err(failed(field, "is required")),
    }
}

/// 40 lower-case hex characters: the shape of a custom-field key.
pub fn is_hash_key(k: &str) -> bool {
    k.len() == 40 && k.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads an optional integer field that `check` already validated.
pub fn opt_u64(body: &Map<String, Value>, k: &str) -> Option<u64> {
    body.get(k).and_then(Value::as_u64)
}

/// Fills in contact items: label defaults to `work`, exactly one primary
/// (the first, when none is marked).
pub fn normalise_contacts(v: &Value) -> Value {
    let mut items: Vec<Value> = v.as_array().cloned().unwrap_or_default();
    let has_primary = items
        .iter()
        .any(|i| i.get("primary") == Some(&Value::Bool(true)));
    let mut primary_seen = false;
    for (n, item) in items.iter_mut().enumerate() {
        if let Some(obj) = item.as_object_mut() {
            let primary = if has_primary {
                obj.get("primary") == Some(&Value::Bool(true)) && !primary_seen
            } else {
                n == 0
            };
            primary_seen |= primary;
            obj.insert("primary".into(), Value::Bool(primary));
            if !obj.contains_key("label") {
                obj.insert("label".into(), Value::String("work".into()));
            }
        }
    }
    Value::Array(items)
}

/// What an id field of a body must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref {
    User,
    Person,
    Org,
}

impl Ref {
    pub fn noun(self) -> &'static str {
        match self {
            Ref::User => "user",
            Ref::Person => "person",
            Ref::Org => "organization",
        }
    }
}

impl Store {
    /// Whether `id` is a user, live person or organization of the company.
    pub fn ref_exists(&self, company_id: u64, kind: Ref, id: u64) -> bool {
        match kind {
            Ref::User => self.is_company_user(company_id, id),
            Ref::Person => self.live_person(company_id, id).is_some(),
            Ref::Org => self.org_name(company_id, id).is_some(),
        }
    }

    /// Checks every id field of `refs` that `body` carries.
    pub fn check_refs(
        &self,
        company_id: u64,
        body: &Map<String, Value>,
        refs: &[(&str, Ref)],
    ) -> Result<(), String> {
        for (field, kind) in refs {
            if let Some(id) = opt_u64(body, field)
                && !self.ref_exists(company_id, *kind, id)
            {
                return Err(failed(field, &format!("no such {}", kind.noun())));
            }
        }
        Ok(())
    }
}
