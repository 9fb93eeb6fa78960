//! Notes (API v1): HTML content sanitised server-side, attached to leads,
//! deals, persons and organizations.
//!
//! v1 is lenient where v2 is strict: ids may come as numbers or numeric
//! strings, pin flags as 0/1, `"0"`/`"1"` or booleans.

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::page::{updated_since, v1_list, v1_since, v1_sorted};
use super::{Answer, Caller, Ctx, Reply, Store, bad_request, error, now, v1_time};
use crate::sanitize::sanitize;

/// (target id field, pin flag, entity name in messages).
const TARGETS: &[(&str, &str, &str)] = &[
    ("lead_id", "pinned_to_lead_flag", "lead"),
    ("deal_id", "pinned_to_deal_flag", "deal"),
    ("person_id", "pinned_to_person_flag", "person"),
    ("org_id", "pinned_to_organization_flag", "organization"),
    ("project_id", "pinned_to_project_flag", "project"),
    ("task_id", "pinned_to_task_flag", "task"),
];

#[derive(Debug, Clone)]
pub struct Note {
    pub company_id: u64,
    /// Stored fields (without the derived `deal`, `person`, … objects).
    pub data: Map<String, Value>,
}

impl Note {
    pub fn field_u64(&self, k: &str) -> Option<u64> {
        self.data.get(k).and_then(Value::as_u64)
    }

    pub fn content(&self) -> String {
        self.data
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// A v1 id: a number or a numeric string.
fn lenient_id(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

fn lenient_flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) if s == "0" => Some(false),
        Value::String(s) if s == "1" => Some(true),
        _ => None,
    }
}

impl Store {
    fn target_exists(&self, company_id: u64, field: &str, v: &Value) -> bool {
        match field {
            "lead_id" => v.as_str().is_some_and(|id| {
                self.leads
                    .iter()
                    .any(|l| l.company_id == company_id && l.id() == id)
            }),
            "deal_id" => lenient_id(v).is_some_and(|id| {
                self.deals
                    .get(&id)
                    .is_some_and(|d| d.company_id == company_id && !d.is_deleted())
            }),
            "person_id" => {
                lenient_id(v).is_some_and(|id| self.live_person(company_id, id).is_some())
            }
            "org_id" => lenient_id(v).is_some_and(|id| self.org_name(company_id, id).is_some()),
            _ => false,
        }
    }

    /// Validates a create/update body and applies it to `data`.
    fn apply_note(
        &self,
        caller: Caller,
        data: &mut Map<String, Value>,
        body: &Map<String, Value>,
        creating: bool,
    ) -> Result<(), String> {
        match body.get("content") {
            Some(Value::String(c)) => {
                if c.chars().count() > self.cfg.note_content_max {
                    return Err(format!(
                        "Note content is too long: at most {} characters are allowed",
                        self.cfg.note_content_max
                    ));
                }
                if c.trim().is_empty() {
                    return Err("Note content cannot be empty".into());
                }
                data.insert("content".into(), json!(sanitize(c)));
            }
            Some(_) => return Err("content must be a string".into()),
            None if creating => return Err("content is required".into()),
            None => {}
        }
        for (field, flag, entity) in TARGETS {
            if let Some(v) = body.get(*field) {
                let stored = match (*field, v) {
                    (_, Value::Null) => Value::Null,
                    ("lead_id", Value::String(_))
                        if self.target_exists(caller.company_id, field, v) =>
                    {
                        v.clone()
                    }
                    (_, _) if self.target_exists(caller.company_id, field, v) => {
                        json!(lenient_id(v))
                    }
                    _ => return Err(format!("{entity} not found ({field})")),
                };
                data.insert((*field).into(), stored);
            }
            if let Some(v) = body.get(*flag) {
                let on = lenient_flag(v).ok_or_else(|| format!("{flag} must be 0 or 1"))?;
                if on && data.get(*field).is_none_or(Value::is_null) {
                    return Err(format!("{flag} requires {field}"));
                }
                data.insert((*flag).into(), json!(on));
            }
        }
        if !TARGETS
            .iter()
            .any(|(f, _, _)| data.get(*f).is_some_and(|v| !v.is_null()))
        {
            return Err("At least one of lead_id, deal_id, person_id, org_id, project_id or task_id is required".into());
        }
        if let Some(u) = body.get("user_id") {
            let uid = lenient_id(u).ok_or("user_id must be an integer")?;
            let admin = self.user(caller.user_id).is_some_and(|x| x.seed.admin);
            if uid != caller.user_id && !admin {
                return Err("Only admins can change the author (user_id) of a note".into());
            }
            if !self.is_company_user(caller.company_id, uid) {
                return Err("user not found (user_id)".into());
            }
            data.insert("user_id".into(), json!(uid));
        }
        if let Some(t) = body.get("add_time") {
            let ok = t
                .as_str()
                .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok());
            if ok.is_none() {
                return Err("add_time must be YYYY-MM-DD HH:MM:SS".into());
            }
            data.insert("add_time".into(), t.clone());
        }
        data.insert("update_time".into(), json!(v1_time(now())));
        data.insert("last_update_user_id".into(), json!(caller.user_id));
        Ok(())
    }

    /// The v1 note object as seen by `viewer`.
    pub fn note_json(&self, note: &Note, viewer: u64) -> Value {
        let mut v = note.data.clone();
        let company = note.company_id;
        let deal = note
            .field_u64("deal_id")
            .and_then(|d| self.deals.get(&d))
            .map_or(Value::Null, |d| json!({"title": d.title()}));
        let person = note
            .field_u64("person_id")
            .and_then(|p| self.persons.get(&p))
            .map_or(Value::Null, |p| json!({"name": p.name()}));
        let organization = note
            .field_u64("org_id")
            .and_then(|o| self.org_name(company, o))
            .map_or(Value::Null, |n| json!({"name": n}));
        let user = note
            .field_u64("user_id")
            .and_then(|u| self.user(u))
            .map_or(Value::Null, |u| {
                json!({"email": u.seed.email, "name": u.seed.name, "icon_url": null, "is_you": u.id == viewer})
            });
        v.insert("deal".into(), deal);
        v.insert("person".into(), person);
        v.insert("organization".into(), organization);
        v.insert("user".into(), user);
        Value::Object(v)
    }

    pub fn notes_json(&self, company_id: u64) -> Vec<Value> {
        let viewer = self.oauth.authorizing_user;
        self.notes
            .values()
            .filter(|n| n.company_id == company_id)
            .map(|n| self.note_json(n, viewer))
            .collect()
    }

    /// Notes attached to a target (`person`, `deal`, `lead`, `org`).
    pub fn notes_of(&self, company_id: u64, kind: &str, id: &str) -> Vec<Value> {
        let field = match kind {
            "person" | "persons" => "person_id",
            "deal" | "deals" => "deal_id",
            "lead" | "leads" => "lead_id",
            "org" | "organization" | "organizations" => "org_id",
            _ => return Vec::new(),
        };
        let viewer = self.oauth.authorizing_user;
        self.notes
            .values()
            .filter(|n| n.company_id == company_id)
            .filter(|n| match n.data.get(field) {
                Some(Value::String(s)) => s == id,
                Some(Value::Number(x)) => x.to_string() == id,
                _ => false,
            })
            .map(|n| self.note_json(n, viewer))
            .collect()
    }

    /// Lead conversion: the lead's notes and files now belong to the deal.
    pub fn move_lead_attachments(&mut self, lead_id: &str, deal_id: u64) {
        let of_lead =
            |d: &Map<String, Value>| d.get("lead_id").and_then(Value::as_str) == Some(lead_id);
        for n in self.notes.values_mut().filter(|n| of_lead(&n.data)) {
            n.data.insert("lead_id".into(), Value::Null);
            n.data.insert("deal_id".into(), json!(deal_id));
            let pinned = n.data.insert("pinned_to_lead_flag".into(), json!(false));
            if pinned == Some(Value::Bool(true)) {
                n.data.insert("pinned_to_deal_flag".into(), json!(true));
            }
        }
        let deal_name = self.deals.get(&deal_id).map(|d| d.title());
        for f in self.files.values_mut().filter(|f| of_lead(&f.data)) {
            f.data.insert("lead_id".into(), Value::Null);
            f.data.insert("lead_name".into(), Value::Null);
            f.data.insert("deal_id".into(), json!(deal_id));
            f.data.insert("deal_name".into(), json!(deal_name));
        }
    }

    // ------------------------------------------------------------ handlers

    pub fn post_note(&mut self, ctx: &Ctx) -> Answer {
        let body = ctx.json_object()?;
        let id = self.alloc_id();
        let t = v1_time(now());
        let mut data = Map::new();
        data.insert("id".into(), json!(id));
        data.insert("user_id".into(), json!(ctx.caller.user_id));
        for (field, flag, _) in TARGETS {
            data.insert((*field).into(), Value::Null);
            data.insert((*flag).into(), json!(false));
        }
        data.insert("add_time".into(), json!(t));
        data.insert("active_flag".into(), json!(true));
        if let Err(m) = self.apply_note(ctx.caller, &mut data, body, true) {
            return Err(bad_request(m));
        }
        let note = Note {
            company_id: ctx.caller.company_id,
            data,
        };
        let out = self.note_json(&note, ctx.caller.user_id);
        self.notes.insert(id, note);
        Ok(Reply::data(200, out))
    }

    fn own_note(&self, ctx: &Ctx) -> Result<u64, Reply> {
        let id = ctx.id("id")?;
        match self.notes.get(&id) {
            Some(n) if n.company_id == ctx.caller.company_id => Ok(id),
            _ => Err(error(404, "Note not found")),
        }
    }

    pub fn get_note(&mut self, ctx: &Ctx) -> Answer {
        let id = self.own_note(ctx)?;
        Ok(Reply::data(
            200,
            self.note_json(&self.notes[&id], ctx.caller.user_id),
        ))
    }

    pub fn put_note(&mut self, ctx: &Ctx) -> Answer {
        let id = self.own_note(ctx)?;
        let body = ctx.json_object()?;
        let mut data = self.notes[&id].data.clone();
        if let Err(m) = self.apply_note(ctx.caller, &mut data, body, false) {
            return Err(bad_request(m));
        }
        if let Some(n) = self.notes.get_mut(&id) {
            n.data = data;
        }
        Ok(Reply::data(
            200,
            self.note_json(&self.notes[&id], ctx.caller.user_id),
        ))
    }

    pub fn delete_note(&mut self, ctx: &Ctx) -> Answer {
        let id = self.own_note(ctx)?;
        self.notes.remove(&id);
        Ok(Reply::data(200, json!(true)))
    }

    pub fn list_notes(&mut self, ctx: &Ctx) -> Answer {
        let mut filters: Vec<(&str, String)> = Vec::new();
        for k in [
            "user_id",
            "lead_id",
            "deal_id",
            "person_id",
            "org_id",
            "project_id",
            "task_id",
        ] {
            if let Some(v) = ctx.q(k) {
                if k != "lead_id" && v.parse::<u64>().is_err() {
                    return Err(bad_request(format!("{k} must be an integer")));
                }
                filters.push((k, v.to_string()));
            }
        }
        let since = v1_since(ctx)?;
        let matches = |n: &Note| {
            filters.iter().all(|(k, v)| match n.data.get(*k) {
                Some(Value::String(s)) => s == v,
                Some(Value::Number(x)) => x.to_string() == *v,
                _ => false,
            })
        };
        let items: Vec<Value> = self
            .notes
            .values()
            .filter(|n| n.company_id == ctx.caller.company_id && matches(n))
            .map(|n| self.note_json(n, ctx.caller.user_id))
            .filter(|n| updated_since(n, since))
            .collect();
        let sorts = ["id", "add_time", "update_time", "user_id"];
        v1_list(ctx, v1_sorted(ctx, items, &sorts, "add_time")?, 500)
    }
}
