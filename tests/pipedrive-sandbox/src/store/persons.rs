//! Persons (API v2): create, read, update, delete, list.
//!
//! Each change also queues a new version of the person for the search index
//! (see `search.rs`), visible to searches after the configured delay.

use std::time::Instant;

use serde_json::{Map, Value, json};

use super::page::{
    UpdatedWindow, filters_match, keyset_page, q_filters, q_ids, q_u64, v2_list, v2_sort,
};
use super::validate::{
    Kind, Ref, Rule, check, failed, normalise_contacts, nullable, require_text, rule,
};
use super::{Answer, Caller, Ctx, Entity, Reply, Store, bad_request, error, now, rfc3339};
use crate::SandboxError;

const MARKETING: &[&str] = &["no_consent", "unsubscribed", "subscribed", "archived"];

const PERSON_RULES: &[Rule] = &[
    rule("name", Kind::Str),
    rule("owner_id", Kind::Int),
    nullable("org_id", Kind::Int),
    rule("add_time", Kind::Str),
    rule("update_time", Kind::Str),
    rule("emails", Kind::Contacts),
    rule("phones", Kind::Contacts),
    rule("visible_to", Kind::IntEnum(&[1, 3, 5, 7])),
    rule("label_ids", Kind::IntList),
    rule("marketing_status", Kind::StrEnum(MARKETING)),
    rule("custom_fields", Kind::Object),
];

/// A searchable snapshot of a person (what the index knows).
#[derive(Debug, Clone)]
pub struct SearchDoc {
    pub name: String,
    pub emails: Vec<String>,
    pub phones: Vec<String>,
    /// (custom field key, value as text) of searchable custom fields.
    pub custom: Vec<(String, String)>,
    pub owner_id: u64,
    pub org_id: Option<u64>,
    pub visible_to: i64,
}

#[derive(Debug, Clone)]
pub struct Person {
    pub company_id: u64,
    /// The v2 read shape.
    pub data: Map<String, Value>,
    pub deleted: bool,
    /// Index versions: (visible from, snapshot; `None` = removed).
    pub index: Vec<(Instant, Option<SearchDoc>)>,
}

impl Person {
    pub fn id(&self) -> u64 {
        self.data.get("id").and_then(Value::as_u64).unwrap_or(0)
    }

    pub fn name(&self) -> String {
        self.data
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn json(&self) -> Value {
        Value::Object(self.data.clone())
    }

    /// The index version a search sees now.
    pub fn indexed(&self, now: Instant) -> Option<&SearchDoc> {
        self.index
            .iter()
            .rev()
            .find(|(from, _)| *from <= now)
            .and_then(|(_, d)| d.as_ref())
    }
}

fn values_of(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("value").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// A custom value as search text (numbers, `{value}` of monetary/address).
fn custom_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(m) => m.get("value").and_then(custom_text),
        _ => None,
    }
}

fn split_name(name: &str) -> (String, String) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, last)) => (first.to_string(), last.trim().to_string()),
        None => (name.to_string(), String::new()),
    }
}

impl Store {
    pub fn live_person(&self, company_id: u64, id: u64) -> Option<&Person> {
        self.persons
            .get(&id)
            .filter(|p| p.company_id == company_id && !p.deleted)
    }

    fn search_doc(&self, p: &Person) -> SearchDoc {
        let searchable = |k: &str| {
            self.custom_field(p.company_id, Entity::Person, k)
                .is_some_and(|f| super::fields::SEARCHABLE.contains(&f.field_type.as_str()))
        };
        let custom = p
            .data
            .get("custom_fields")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter(|(k, _)| searchable(k))
            .filter_map(|(k, v)| custom_text(v).map(|t| (k.clone(), t)))
            .collect();
        SearchDoc {
            name: p.name(),
            emails: values_of(p.data.get("emails")),
            phones: values_of(p.data.get("phones")),
            custom,
            owner_id: p.data.get("owner_id").and_then(Value::as_u64).unwrap_or(0),
            org_id: p.data.get("org_id").and_then(Value::as_u64),
            visible_to: p
                .data
                .get("visible_to")
                .and_then(Value::as_i64)
                .unwrap_or(3),
        }
    }

    /// Queues the person's current state for the search index.
    fn reindex(&mut self, id: u64) {
        let visible_from = Instant::now() + self.cfg.search_index_delay;
        let Some(p) = self.persons.get(&id) else {
            return;
        };
        let doc = (!p.deleted).then(|| self.search_doc(p));
        if let Some(p) = self.persons.get_mut(&id) {
            let now = Instant::now();
            // Versions already superseded by a visible later one are dropped.
            if let Some(last_visible) = p.index.iter().rposition(|(from, _)| *from <= now) {
                p.index.drain(..last_visible);
            }
            p.index.push((visible_from, doc));
        }
    }

    /// Checks references (owner, organization, labels, custom fields).
    fn check_person_refs(&self, company_id: u64, body: &Map<String, Value>) -> Result<(), String> {
        self.check_refs(
            company_id,
            body,
            &[("owner_id", Ref::User), ("org_id", Ref::Org)],
        )?;
        if let Some(labels) = body.get("label_ids").and_then(Value::as_array) {
            let options: Vec<u64> = self
                .fields_of(company_id, Entity::Person)
                .into_iter()
                .find(|f| f.key == "label_ids")
                .and_then(|f| f.options.clone())
                .unwrap_or_default()
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            if labels
                .iter()
                .any(|l| !l.as_u64().is_some_and(|l| options.contains(&l)))
            {
                return Err(failed("label_ids", "unknown label id"));
            }
        }
        if let Some(custom) = body.get("custom_fields").and_then(Value::as_object) {
            self.check_custom_fields(company_id, Entity::Person, custom)?;
        }
        Ok(())
    }

    /// Applies a validated create/update body to `data`.
    fn apply_person(data: &mut Map<String, Value>, body: &Map<String, Value>) {
        for (k, v) in body {
            match k.as_str() {
                "add_time" | "update_time" => {}
                "phones" | "emails" => {
                    data.insert(k.clone(), normalise_contacts(v));
                }
                "custom_fields" => {
                    let target = data.entry("custom_fields").or_insert_with(|| json!({}));
                    if let (Some(t), Some(src)) = (target.as_object_mut(), v.as_object()) {
                        for (ck, cv) in src {
                            t.insert(ck.clone(), cv.clone());
                        }
                    }
                }
                "name" => {
                    let name = v.as_str().unwrap_or_default();
                    let (first, last) = split_name(name);
                    data.insert("name".into(), json!(name));
                    data.insert("first_name".into(), json!(first));
                    data.insert("last_name".into(), json!(last));
                }
                _ => {
                    data.insert(k.clone(), v.clone());
                }
            }
        }
        data.insert("update_time".into(), json!(rfc3339(now())));
    }

    /// Creates a person as `caller` (v2 validation); returns its id.
    pub fn create_person(
        &mut self,
        caller: Caller,
        body: &Map<String, Value>,
    ) -> Result<u64, String> {
        check(body, PERSON_RULES, |_| false)?;
        require_text(body, "name")?;
        self.check_person_refs(caller.company_id, body)?;
        let id = self.alloc_id();
        let t = rfc3339(now());
        let mut data = json!({
            "id": id, "name": "", "first_name": "", "last_name": "",
            "owner_id": caller.user_id, "org_id": null, "add_time": t, "update_time": t,
            "emails": [], "phones": [], "is_deleted": false, "visible_to": 3,
            "label_ids": [], "picture_id": null,
            "custom_fields": self.blank_custom_fields(caller.company_id, Entity::Person)
        });
        if let Some(d) = data.as_object_mut() {
            Self::apply_person(d, body);
            self.persons.insert(
                id,
                Person {
                    company_id: caller.company_id,
                    data: d.clone(),
                    deleted: false,
                    index: Vec::new(),
                },
            );
        }
        self.reindex(id);
        Ok(id)
    }

    pub fn delete_person_by_id(&mut self, company_id: u64, id: u64) -> bool {
        let Some(p) = self
            .persons
            .get_mut(&id)
            .filter(|p| p.company_id == company_id && !p.deleted)
        else {
            return false;
        };
        p.deleted = true;
        p.data.insert("is_deleted".into(), json!(true));
        p.data.insert("update_time".into(), json!(rfc3339(now())));
        self.reindex(id);
        true
    }

    /// Helper: inserts a person as the authorizing user.
    pub fn insert_person(&mut self, body: &Value) -> Result<u64, SandboxError> {
        let caller = self.ui_caller();
        let obj = body
            .as_object()
            .ok_or_else(|| SandboxError::Rejected("person must be a JSON object".into()))?;
        self.create_person(caller, obj)
            .map_err(SandboxError::Rejected)
    }

    pub fn persons_json(&self, company_id: u64) -> Vec<Value> {
        self.persons
            .values()
            .filter(|p| p.company_id == company_id)
            .map(Person::json)
            .collect()
    }

    // ------------------------------------------------------------ handlers

    pub fn post_person(&mut self, ctx: &Ctx) -> Answer {
        let body = ctx.json_object()?;
        Ok(match self.create_person(ctx.caller, body) {
            Ok(id) => Reply::data(200, self.persons[&id].json()),
            Err(msg) => bad_request(msg),
        })
    }

    pub fn get_person(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        Ok(match self.live_person(ctx.caller.company_id, id) {
            Some(p) => Reply::data(200, p.json()),
            None => error(404, "Person not found"),
        })
    }

    pub fn patch_person(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        let body = ctx.json_object()?;
        if self.live_person(ctx.caller.company_id, id).is_none() {
            return Err(error(404, "Person not found"));
        }
        if let Err(msg) = check(body, PERSON_RULES, |_| false)
            .and_then(|()| self.check_person_refs(ctx.caller.company_id, body))
        {
            return Err(bad_request(msg));
        }
        if body
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(bad_request(failed("name", "must not be empty")));
        }
        if let Some(p) = self.persons.get_mut(&id) {
            Self::apply_person(&mut p.data, body);
        }
        self.reindex(id);
        Ok(Reply::data(200, self.persons[&id].json()))
    }

    pub fn delete_person(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        Ok(if self.delete_person_by_id(ctx.caller.company_id, id) {
            Reply::data(200, json!({"id": id}))
        } else {
            error(404, "Person not found")
        })
    }

    pub fn list_persons(&mut self, ctx: &Ctx) -> Answer {
        self.list_persons_inner(ctx)
    }

    fn list_persons_inner(&self, ctx: &Ctx) -> Result<Reply, Reply> {
        let ids = q_ids(ctx)?;
        let filters = q_filters(ctx, &["owner_id", "org_id"])?;
        let deal = q_u64(ctx, "deal_id")?;
        let window = UpdatedWindow::from_query(ctx)?;
        let (sort_by, desc) = v2_sort(ctx, &["id", "update_time", "add_time"])?;
        let deal_person = deal.map(|d| {
            self.deals
                .get(&d)
                .filter(|x| x.company_id == ctx.caller.company_id)
                .and_then(|x| x.data.get("person_id").and_then(Value::as_u64))
        });
        let wanted_custom: Option<Vec<&str>> =
            ctx.q("custom_fields").map(|s| s.split(',').collect());
        let items: Vec<Value> = self
            .persons
            .values()
            .filter(|p| p.company_id == ctx.caller.company_id && !p.deleted)
            .filter(|p| ids.as_ref().is_none_or(|ids| ids.contains(&p.id())))
            .filter(|p| deal_person.is_none_or(|d| d == Some(p.id())))
            .map(|p| {
                let mut v = p.json();
                if let (Some(keys), Some(cf)) = (
                    &wanted_custom,
                    v.get_mut("custom_fields").and_then(Value::as_object_mut),
                ) {
                    cf.retain(|k, _| keys.contains(&k.as_str()));
                }
                v
            })
            .filter(|v| filters_match(v, &filters) && window.contains(v))
            .collect();
        let (page, next) = keyset_page(ctx, items, &sort_by, desc)?;
        Ok(v2_list(page, next))
    }
}
