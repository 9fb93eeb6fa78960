//! Field metadata (`/v1/personFields`, `/v1/dealFields`, `/v1/leadFields`,
//! `/api/v2/personFields`, `/api/v2/dealFields`) and custom-field values.
//!
//! Every company gets the same seeded fields, but custom-field keys are
//! 40-character hashes derived from the company id, so they differ between
//! companies as in Pipedrive. Leads use the deal fields.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::page::{offset_page, v1_flat_list, v2_list};
use super::validate::{Ref, failed, is_date};
use super::{Answer, Ctx, Reply, Store, error, now, rfc3339};
use crate::SandboxError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Person,
    Deal,
}

impl Entity {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" | "persons" => Some(Self::Person),
            "deal" | "deals" | "lead" | "leads" => Some(Self::Deal),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub id: u64,
    pub company_id: u64,
    pub entity: Entity,
    pub key: String,
    pub name: String,
    pub field_type: String,
    pub options: Option<Vec<(u64, String)>>,
    pub custom: bool,
    /// Standard deal fields that leads have too.
    pub on_leads: bool,
    pub order_nr: u64,
    pub add_time: DateTime<Utc>,
}

/// v1 field types a custom field may have (the spec's v1 enum).
pub const FIELD_TYPES: &[&str] = &[
    "address",
    "date",
    "daterange",
    "double",
    "enum",
    "monetary",
    "org",
    "people",
    "phone",
    "set",
    "text",
    "time",
    "timerange",
    "user",
    "varchar",
    "varchar_auto",
    "visible_to",
];

/// Custom field types person search looks into (reference §3).
pub const SEARCHABLE: &[&str] = &[
    "address",
    "varchar",
    "text",
    "varchar_auto",
    "double",
    "monetary",
    "phone",
];

type Seed = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

const PERSON_STANDARD: &[Seed] = &[
    ("name", "Name", "varchar", &[]),
    ("first_name", "First name", "varchar", &[]),
    ("last_name", "Last name", "varchar", &[]),
    ("phone", "Phone", "phone", &[]),
    ("email", "Email", "varchar", &[]),
    ("owner_id", "Owner", "user", &[]),
    ("org_id", "Organization", "org", &[]),
    (
        "label_ids",
        "Labels",
        "set",
        &["Customer", "Hot lead", "Warm lead", "Cold lead"],
    ),
    ("visible_to", "Visible to", "visible_to", &[]),
    ("add_time", "Person created", "date", &[]),
    ("update_time", "Update time", "date", &[]),
];

const PERSON_CUSTOM: &[Seed] = &[
    ("", "WhatsApp chat", "varchar", &[]),
    ("", "Chat summary", "text", &[]),
    ("", "WhatsApp number", "phone", &[]),
    (
        "",
        "Interests",
        "set",
        &["Product A", "Product B", "Support"],
    ),
    ("", "Customer tier", "enum", &["Gold", "Silver", "Bronze"]),
    ("", "Account manager", "user", &[]),
    ("", "Employer", "org", &[]),
    ("", "Referred by", "people", &[]),
    ("", "Contract period", "daterange", &[]),
];

/// (key, name, type, options); the bool says "leads have it too".
const DEAL_STANDARD: &[(Seed, bool)] = &[
    (("title", "Title", "varchar", &[]), true),
    (("value", "Value", "monetary", &[]), true),
    (("person_id", "Contact person", "people", &[]), true),
    (("org_id", "Organization", "org", &[]), true),
    (("user_id", "Owner", "user", &[]), true),
    (
        ("expected_close_date", "Expected close date", "date", &[]),
        true,
    ),
    (("visible_to", "Visible to", "visible_to", &[]), true),
    (
        (
            "status",
            "Status",
            "enum",
            &["open", "won", "lost", "deleted"],
        ),
        false,
    ),
    (("probability", "Probability", "double", &[]), false),
    (("lost_reason", "Lost reason", "varchar", &[]), false),
    (("add_time", "Deal created", "date", &[]), true),
    (("update_time", "Update time", "date", &[]), true),
];

const DEAL_CUSTOM: &[Seed] = &[
    ("", "WhatsApp chat", "varchar", &[]),
    ("", "Lead channel", "enum", &["WhatsApp", "Web", "Phone"]),
    ("", "Chat transcript", "text", &[]),
];

fn hash_key(company_id: u64, entity: Entity, name: &str, salt: u64) -> String {
    let digest = Sha256::digest(format!("{company_id}/{entity:?}/{name}/{salt}"));
    hex::encode(digest)[..40].to_string()
}

impl Field {
    fn options_json(&self, v2: bool) -> Value {
        match &self.options {
            None => Value::Null,
            Some(o) => Value::Array(
                o.iter()
                    .map(|(id, label)| {
                        if v2 {
                            json!({"id": id, "label": label, "color": null,
                                   "add_time": rfc3339(self.add_time), "update_time": rfc3339(self.add_time)})
                        } else {
                            json!({"id": id, "label": label})
                        }
                    })
                    .collect(),
            ),
        }
    }

    fn subfields(&self) -> Option<Vec<(String, String, &'static str)>> {
        match self.field_type.as_str() {
            "monetary" => Some(vec![(
                format!("{}_currency", self.key),
                format!("Currency of {}", self.name),
                "varchar",
            )]),
            "daterange" => Some(vec![(
                format!("{}_until", self.key),
                format!("{} (end)", self.name),
                "date",
            )]),
            _ => None,
        }
    }

    /// The v1 field object.
    pub fn v1_json(&self) -> Value {
        let searchable = if self.custom {
            SEARCHABLE.contains(&self.field_type.as_str())
        } else {
            matches!(self.key.as_str(), "name" | "phone" | "email" | "title")
        };
        let mut v = json!({
            "id": self.id, "key": self.key, "name": self.name, "order_nr": self.order_nr,
            "field_type": self.field_type, "add_time": rfc3339(self.add_time),
            "update_time": rfc3339(self.add_time), "last_updated_by_user_id": null,
            "created_by_user_id": null, "active_flag": true, "edit_flag": self.custom,
            "index_visible_flag": true, "details_visible_flag": true, "add_visible_flag": true,
            "important_flag": false, "bulk_edit_allowed": true, "searchable_flag": searchable,
            "filtering_allowed": true, "sortable_flag": true,
            "mandatory_flag": matches!(self.key.as_str(), "name" | "title"),
            "options": self.options_json(false)
        });
        if let Some(subs) = self.subfields() {
            v["subfields"] = Value::Array(
                subs.into_iter()
                    .map(|(key, name, t)| json!({"key": key, "name": name, "field_type": t}))
                    .collect(),
            );
        }
        v
    }

    /// The v2 field object (deal fields carry the `description` their
    /// schema requires; the sandbox has none to give, so it is empty).
    pub fn v2_json(&self) -> Value {
        let code = match (self.entity, self.key.as_str()) {
            (Entity::Deal, "user_id") => "owner_id",
            (_, k) => k,
        };
        let mut field = json!({
            "field_name": self.name,
            "field_code": code,
            "field_type": self.field_type,
            "options": self.options_json(true),
            "subfields": self.subfields().map(|s| s.into_iter()
                .map(|(key, name, t)| json!({"field_code": key, "field_name": name, "field_type": t}))
                .collect::<Vec<_>>()),
            "is_custom_field": self.custom,
            "is_optional_response_field": false
        });
        if self.entity == Entity::Deal {
            field["description"] = json!("");
        }
        field
    }
}

impl Store {
    pub fn seed_fields(&mut self, company_id: u64) {
        for (key, name, t, opts) in PERSON_STANDARD {
            self.push_field(company_id, Entity::Person, key, name, t, opts, false, false);
        }
        for (key, name, t, opts) in PERSON_CUSTOM {
            self.push_field(company_id, Entity::Person, key, name, t, opts, true, false);
        }
        for ((key, name, t, opts), on_leads) in DEAL_STANDARD {
            self.push_field(
                company_id,
                Entity::Deal,
                key,
                name,
                t,
                opts,
                false,
                *on_leads,
            );
        }
        for (key, name, t, opts) in DEAL_CUSTOM {
            self.push_field(company_id, Entity::Deal, key, name, t, opts, true, true);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push_field(
        &mut self,
        company_id: u64,
        entity: Entity,
        key: &str,
        name: &str,
        field_type: &str,
        options: &[&str],
        custom: bool,
        on_leads: bool,
    ) -> String {
        let id = self.alloc_id();
        let key = if key.is_empty() {
            hash_key(company_id, entity, name, id)
        } else {
            key.to_string()
        };
        let options = (!options.is_empty() || matches!(field_type, "enum" | "set")).then(|| {
            options
                .iter()
                .map(|l| (self.alloc_id(), l.to_string()))
                .collect()
        });
        let order_nr = self
            .fields
            .iter()
            .filter(|f| f.company_id == company_id && f.entity == entity)
            .count() as u64;
        self.fields.push(Field {
            id,
            company_id,
            entity,
            key: key.clone(),
            name: name.to_string(),
            field_type: field_type.to_string(),
            options,
            custom,
            on_leads,
            order_nr,
            add_time: now(),
        });
        key
    }

    pub fn fields_of(&self, company_id: u64, entity: Entity) -> Vec<&Field> {
        self.fields
            .iter()
            .filter(|f| f.company_id == company_id && f.entity == entity)
            .collect()
    }

    pub fn custom_field(&self, company_id: u64, entity: Entity, key: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|f| f.company_id == company_id && f.entity == entity && f.custom && f.key == key)
    }

    /// Adds a custom field from a v1-style definition
    /// `{name, field_type, options?: [label | {label}]}`; returns its key.
    pub fn add_field(
        &mut self,
        company_id: u64,
        entity: Entity,
        def: &Value,
    ) -> Result<String, SandboxError> {
        let invalid = |m: &str| SandboxError::InvalidField(m.to_string());
        let name = def
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("name is required"))?;
        let field_type = def
            .get("field_type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("field_type is required"))?;
        if !FIELD_TYPES.contains(&field_type) {
            return Err(invalid(&format!("unknown field_type {field_type}")));
        }
        let labels: Vec<String> = def
            .get("options")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|o| {
                o.as_str()
                    .or_else(|| o.get("label").and_then(Value::as_str))
            })
            .map(str::to_string)
            .collect();
        if matches!(field_type, "enum" | "set") && labels.is_empty() {
            return Err(invalid("enum and set fields need options"));
        }
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        Ok(self.push_field(
            company_id, entity, "", name, field_type, &labels, true, true,
        ))
    }

    /// Validates one custom-field value; `v1` accepts the v1 scalar forms of
    /// monetary and daterange values.
    pub fn check_custom_value(
        &self,
        company_id: u64,
        field: &Field,
        value: &Value,
        v1: bool,
    ) -> Result<(), String> {
        let at = format!("custom_fields.{}", field.key);
        let fail = |p: &str| Err(failed(&at, p));
        if value.is_null() {
            return Ok(());
        }
        let option_ok = |id: &Value| {
            let id = id.as_u64();
            field.options.iter().flatten().any(|(o, _)| Some(*o) == id)
        };
        match field.field_type.as_str() {
            "varchar" | "varchar_auto" | "phone" => match value.as_str() {
                Some(s) if s.chars().count() <= 255 => Ok(()),
                _ => fail("must be a string of at most 255 characters"),
            },
            "text" => match value.as_str() {
                Some(s) if s.chars().count() <= 65_000 => Ok(()),
                _ => fail("must be a string of at most 65000 characters"),
            },
            "double" => {
                if value.is_number() {
                    Ok(())
                } else {
                    fail("must be a number")
                }
            }
            "monetary" if v1 => {
                if value.is_number() {
                    Ok(())
                } else {
                    fail("must be a number")
                }
            }
            "monetary" => match value.as_object() {
                Some(m)
                    if m.get("value").is_some_and(Value::is_number)
                        && m.get("currency").is_some_and(Value::is_string) =>
                {
                    Ok(())
                }
                _ => fail("must be an object {value: number, currency: string}"),
            },
            "enum" => {
                if option_ok(value) {
                    Ok(())
                } else {
                    fail("must be the id of one of the field's options")
                }
            }
            "set" => match value.as_array() {
                Some(a) if a.is_empty() => fail("must not be empty (send null to clear)"),
                Some(a) if a.iter().all(option_ok) => Ok(()),
                _ => fail("must be an array of option ids"),
            },
            t @ ("user" | "org" | "people") => {
                let kind = match t {
                    "user" => Ref::User,
                    "org" => Ref::Org,
                    _ => Ref::Person,
                };
                match value.as_u64() {
                    Some(id) if self.ref_exists(company_id, kind, id) => Ok(()),
                    _ => fail(&format!("must be the id of a {}", kind.noun())),
                }
            }
            "date" => {
                if value.as_str().is_some_and(is_date) {
                    Ok(())
                } else {
                    fail("must be a date (YYYY-MM-DD)")
                }
            }
            "daterange" if v1 => {
                if value.as_str().is_some_and(is_date) {
                    Ok(())
                } else {
                    fail("must be a date (YYYY-MM-DD)")
                }
            }
            "daterange" => match value.as_object() {
                Some(m)
                    if m.get("start").and_then(Value::as_str).is_some_and(is_date)
                        && m.get("until").and_then(Value::as_str).is_some_and(is_date) =>
                {
                    Ok(())
                }
                _ => fail("must be an object {start: date, until: date}"),
            },
            _ => Ok(()),
        }
    }

    /// Validates a v2 `custom_fields` object.
    pub fn check_custom_fields(
        &self,
        company_id: u64,
        entity: Entity,
        custom: &Map<String, Value>,
    ) -> Result<(), String> {
        for (k, v) in custom {
            let Some(field) = self.custom_field(company_id, entity, k) else {
                return Err(failed(
                    &format!("custom_fields.{k}"),
                    "is not a custom field of this company",
                ));
            };
            self.check_custom_value(company_id, field, v, false)?;
        }
        Ok(())
    }

    /// An empty `custom_fields` object with every custom field (null).
    pub fn blank_custom_fields(&self, company_id: u64, entity: Entity) -> Map<String, Value> {
        self.fields_of(company_id, entity)
            .into_iter()
            .filter(|f| f.custom)
            .map(|f| (f.key.clone(), Value::Null))
            .collect()
    }

    // ------------------------------------------------------------ handlers

    fn v1_fields(&self, ctx: &Ctx, entity: Entity, leads: bool) -> Answer {
        let items = self
            .fields_of(ctx.caller.company_id, entity)
            .into_iter()
            .filter(|f| !leads || f.custom || f.on_leads)
            .map(Field::v1_json)
            .collect();
        v1_flat_list(ctx, items, 500)
    }

    pub fn get_person_fields(&mut self, ctx: &Ctx) -> Answer {
        self.v1_fields(ctx, Entity::Person, false)
    }

    pub fn get_deal_fields(&mut self, ctx: &Ctx) -> Answer {
        self.v1_fields(ctx, Entity::Deal, false)
    }

    pub fn get_lead_fields(&mut self, ctx: &Ctx) -> Answer {
        self.v1_fields(ctx, Entity::Deal, true)
    }

    fn v2_fields(&self, ctx: &Ctx, entity: Entity) -> Answer {
        let items = self
            .fields_of(ctx.caller.company_id, entity)
            .into_iter()
            .map(Field::v2_json)
            .collect();
        let (page, next) = offset_page(ctx, items)?;
        Ok(v2_list(page, next))
    }

    pub fn get_person_fields_v2(&mut self, ctx: &Ctx) -> Answer {
        self.v2_fields(ctx, Entity::Person)
    }

    pub fn get_deal_fields_v2(&mut self, ctx: &Ctx) -> Answer {
        self.v2_fields(ctx, Entity::Deal)
    }

    fn v2_field(&self, ctx: &Ctx, entity: Entity) -> Reply {
        let code = ctx.param("field_code");
        self.fields_of(ctx.caller.company_id, entity)
            .into_iter()
            .map(Field::v2_json)
            .find(|f| f.get("field_code").and_then(Value::as_str) == Some(code))
            .map_or_else(|| error(404, "Field not found"), |f| Reply::data(200, f))
    }

    pub fn get_person_field_v2(&mut self, ctx: &Ctx) -> Answer {
        Ok(self.v2_field(ctx, Entity::Person))
    }

    pub fn get_deal_field_v2(&mut self, ctx: &Ctx) -> Answer {
        Ok(self.v2_field(ctx, Entity::Deal))
    }
}
