//! Pipedrive's CRM API for one connection: the [`Crm`] port on persons,
//! leads and deals (reference §2–10). Records are `persons`, `leads` and
//! `deals` with Pipedrive's ids as strings (lead ids are UUIDs). Persons,
//! notes, users and field metadata are here; leads and deals in `deals.rs`,
//! files in `files.rs`, the calls themselves in `call.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::call::{V1_PAGE, V2_PAGE};
use super::deals::LEAD;
use super::fields::{field_meta, is_custom_key};
use super::notes;
use crate::crm::{
    Choice, Conversion, Crm, CrmError, FieldMeta, FoundRecord, ModuleMeta, NewFollowUp, NewRecord,
    NoMeter, NoteDraft, Pipeline, UsageMeter,
};
use crate::model::{CrmKind, CrmUser, RecordRef};
use crate::phone::E164;
use crate::tokens::AccessTokens;

const PERSON: &str = "/api/v2/persons/{id}";
const PERSONS: &str = "/api/v2/persons";
const PERSON_SEARCH: &str = "/api/v2/persons/search";
const DEAL: &str = "/api/v2/deals/{id}";
const ORGANIZATION: &str = "/api/v2/organizations/{id}";
const NOTE: &str = "/v1/notes/{id}";
const NOTES: &str = "/v1/notes";

/// How many of the newest persons `recently_created` reads.
const RECENT: &str = "50";

/// The modules this client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Module {
    Persons,
    Deals,
    Leads,
}

impl Module {
    pub(super) fn of(name: &str) -> Result<Self, CrmError> {
        match name {
            "persons" => Ok(Self::Persons),
            "deals" => Ok(Self::Deals),
            "leads" => Ok(Self::Leads),
            other => Err(not_supported(&format!("records of module `{other}`"))),
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Persons => "persons",
            Self::Deals => "deals",
            Self::Leads => "leads",
        }
    }

    /// The id field naming a record of this module in notes and files.
    pub(super) fn link_field(self) -> &'static str {
        match self {
            Self::Persons => "person_id",
            Self::Deals => "deal_id",
            Self::Leads => "lead_id",
        }
    }
}

fn not_supported(what: &str) -> CrmError {
    CrmError::Rejected {
        status: 400,
        code: "NOT_SUPPORTED".into(),
        message: format!("the Pipedrive sync does not handle {what}"),
        field: None,
    }
}

pub(super) fn persons_only(module: &str) -> Result<(), CrmError> {
    match Module::of(module)? {
        Module::Persons => Ok(()),
        _ => Err(not_supported(&format!("this on {module}"))),
    }
}

/// A numeric id for a JSON body (v2 takes no numeric strings).
pub(super) fn int_id(id: &str, field: &str) -> Result<u64, CrmError> {
    id.trim().parse().map_err(|_| CrmError::Rejected {
        status: 400,
        code: "INVALID_ID".into(),
        message: format!("`{field}` must be a Pipedrive id (an integer)"),
        field: Some(field.to_owned()),
    })
}

/// An id as it comes: a number, or a string (leads, lead labels).
pub(super) fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

pub(super) fn data_id(data: &Value, what: &str) -> Result<String, CrmError> {
    id_text(&data["id"]).ok_or_else(|| CrmError::Decode(format!("{what} without an id")))
}

pub(super) fn record(module: Module, id: String) -> RecordRef {
    RecordRef {
        crm: CrmKind::Pipedrive,
        module: module.name().to_owned(),
        id,
    }
}

pub(super) fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The values of a v2 `phones`/`emails` array (objects with `value`), or
/// of a search item's plain strings.
fn contact_values(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| text(item).or_else(|| text(&item["value"])))
        .collect()
}

/// The primary item's value of a v2 `emails`/`phones` array, else the first.
fn primary_value(list: &Value) -> Option<String> {
    let items = list.as_array()?;
    items
        .iter()
        .find(|i| i["primary"] == true)
        .or_else(|| items.first())
        .and_then(|i| text(&i["value"]))
}

/// What a person holds in `field`: its phones, or a custom field's value.
fn person_phones(person: &Value, field: &str) -> Vec<String> {
    if is_custom_key(field) {
        text(&person["custom_fields"][field]).into_iter().collect()
    } else {
        contact_values(&person["phones"])
    }
}

/// A v2 person or deal body from field values by API name: standard keys
/// top-level (`phone`/`email` as one primary item of `phones`/`emails`,
/// ids as integers), custom-field hashes inside `custom_fields`.
fn v2_body(fields: &Map<String, Value>) -> Result<Map<String, Value>, CrmError> {
    let mut body = Map::new();
    let mut custom = Map::new();
    for (key, value) in fields {
        match key.as_str() {
            k if is_custom_key(k) => {
                custom.insert(key.clone(), value.clone());
            }
            "phone" | "email" => {
                let label = if key == "phone" { "mobile" } else { "work" };
                let list = match value {
                    Value::String(v) => json!([{ "value": v, "primary": true, "label": label }]),
                    other => other.clone(),
                };
                body.insert(format!("{key}s"), list);
            }
            "owner_id" | "org_id" | "person_id" | "pipeline_id" | "stage_id" => {
                let id = match value {
                    Value::String(s) => json!(int_id(s, key)?),
                    other => other.clone(),
                };
                body.insert(key.clone(), id);
            }
            _ => {
                body.insert(key.clone(), value.clone());
            }
        }
    }
    if !custom.is_empty() {
        body.insert("custom_fields".into(), Value::Object(custom));
    }
    Ok(body)
}

/// The CRM API of one Pipedrive connection.
pub struct PipedriveApi {
    pub(super) http: reqwest::Client,
    pub(super) api_domain: String,
    pub(super) tokens: Arc<dyn AccessTokens>,
    /// Tokens of the company's daily budget this client's calls cost.
    pub(super) spent: AtomicU64,
    /// Where each call's cost is counted (per workspace and day).
    pub(super) meter: Arc<dyn UsageMeter>,
}

impl PipedriveApi {
    /// The API on `api_domain` (already checked to be Pipedrive's).
    pub fn new(http: reqwest::Client, api_domain: &str, tokens: Arc<dyn AccessTokens>) -> Self {
        Self {
            http,
            api_domain: api_domain.trim_end_matches('/').to_owned(),
            tokens,
            spent: AtomicU64::new(0),
            meter: Arc::new(NoMeter),
        }
    }

    /// The same, reporting each call's cost to `meter`.
    pub fn with_meter(self, meter: Arc<dyn UsageMeter>) -> Self {
        Self { meter, ..self }
    }

    /// Tokens of the daily budget spent by this client's calls so far
    /// (each call's documented cost; refused calls count nothing).
    pub fn tokens_spent(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    /// One record, or `None` when it is unknown, gone or deleted.
    pub(super) async fn get_live(
        &self,
        template: &'static str,
        id: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<Value>, CrmError> {
        match self.get_one(template, &[id], query).await {
            Ok(data) if data.is_object() && data["is_deleted"] != true => Ok(Some(data)),
            Ok(_) => Ok(None),
            Err(CrmError::Rejected {
                status: 404 | 410, ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A person (v2) with the custom `field` if it is one.
    async fn person(&self, id: &str, field: &str) -> Result<Option<Value>, CrmError> {
        let custom: &[(&str, &str)] = if is_custom_key(field) {
            &[("custom_fields", field)]
        } else {
            &[]
        };
        self.get_live(PERSON, id, custom).await
    }

    /// The record (a person, deal or lead) and its person, as this token
    /// reads them: `None` when the record is gone or the user's visibility
    /// hides it (Pipedrive answers 403 for that); a deal or lead without a
    /// person has none.
    async fn record_and_person(
        &self,
        record: &RecordRef,
    ) -> Result<Option<(Value, Option<Value>)>, CrmError> {
        let visible = |r: Result<Option<Value>, CrmError>| match r {
            Err(CrmError::Rejected { status: 403, .. }) => Ok(None),
            other => other,
        };
        let template = match Module::of(&record.module)? {
            Module::Persons => {
                let person = visible(self.get_live(PERSON, &record.id, &[]).await)?;
                return Ok(person.map(|p| (p.clone(), Some(p))));
            }
            Module::Deals => DEAL,
            Module::Leads => LEAD,
        };
        let Some(own) = visible(self.get_live(template, &record.id, &[]).await)? else {
            return Ok(None);
        };
        let person = match own["person_id"].as_u64() {
            Some(id) => visible(self.get_live(PERSON, &id.to_string(), &[]).await)?,
            None => None,
        };
        Ok(Some((own, person)))
    }

    /// An organization's name; `None` when it is gone or hidden.
    async fn organization_name(&self, id: u64) -> Result<Option<String>, CrmError> {
        match self.get_live(ORGANIZATION, &id.to_string(), &[]).await {
            Ok(org) => Ok(org.and_then(|o| text(&o["name"]))),
            Err(CrmError::Rejected { status: 403, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The search hits of one form of a number: person ids with the
    /// phones the index shows.
    async fn search_phone(
        &self,
        form: &str,
        custom: bool,
    ) -> Result<Vec<(String, Vec<String>)>, CrmError> {
        let fields = if custom { "custom_fields" } else { "phone" };
        let query = [
            ("term", form),
            ("fields", fields),
            ("exact_match", "true"),
            ("limit", "100"),
        ];
        let items = self.v2_all(PERSON_SEARCH, &[], &query).await?;
        Ok(items
            .iter()
            .filter_map(|hit| {
                let id = id_text(&hit["item"]["id"])?;
                Some((id, contact_values(&hit["item"]["phones"])))
            })
            .collect())
    }
}

#[async_trait]
impl Crm for PipedriveApi {
    /// One exact search per form (E.164, then each national equivalent),
    /// stopping at the first form anything matches.
    async fn find_by_phone(
        &self,
        module: &str,
        field: &str,
        number: &E164,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        persons_only(module)?;
        let custom = is_custom_key(field);
        let mut forms: Vec<String> = Vec::new();
        for form in std::iter::once(number.clone()).chain(number.equivalents()) {
            let form = form.to_string();
            if !forms.contains(&form) {
                forms.push(form);
            }
        }
        for form in &forms {
            let hits = self.search_phone(form, custom).await?;
            if hits.is_empty() {
                continue;
            }
            // One hit of the standard phone field is all there is to know;
            // several need their update times, a custom field its value.
            if !custom && hits.len() == 1 {
                return Ok(hits
                    .into_iter()
                    .map(|(id, phones)| FoundRecord {
                        record: record(Module::Persons, id),
                        phones,
                        modified_time: None,
                    })
                    .collect());
            }
            let mut found = Vec::with_capacity(hits.len());
            for (id, _) in hits {
                // Gone since it was indexed: not a match.
                let Some(person) = self.person(&id, field).await? else {
                    continue;
                };
                found.push(FoundRecord {
                    phones: person_phones(&person, field),
                    modified_time: text(&person["update_time"]),
                    record: record(Module::Persons, id),
                });
            }
            if !found.is_empty() {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }

    async fn create_record(&self, new: &NewRecord) -> Result<RecordRef, CrmError> {
        persons_only(&new.module)?;
        let mut body = v2_body(&new.fields)?;
        if let Some(owner) = &new.owner_id {
            body.insert("owner_id".into(), json!(int_id(owner, "owner_id")?));
        }
        let answer = self
            .call(Method::POST, PERSONS, &[], |r| r.json(&body))
            .await?;
        Ok(record(Module::Persons, data_id(&answer["data"], "person")?))
    }

    async fn record_phones(&self, record: &RecordRef) -> Result<Option<Vec<String>>, CrmError> {
        Ok(self
            .record_and_person(record)
            .await?
            .map(|(_, person)| person.map_or_else(Vec::new, |p| contact_values(&p["phones"]))))
    }

    async fn record_fields(
        &self,
        record: &RecordRef,
    ) -> Result<Option<BTreeMap<String, String>>, CrmError> {
        let Some((own, person)) = self.record_and_person(record).await? else {
            return Ok(None);
        };
        let mut fields = BTreeMap::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                fields.insert(key.to_owned(), value);
            }
        };
        if let Some(person) = &person {
            for key in ["name", "first_name", "last_name"] {
                put(key, text(&person[key]));
            }
            put("email", primary_value(&person["emails"]));
            put("phone", primary_value(&person["phones"]));
        }
        // A deal's or lead's own title; the organization of the record, else
        // of its person (v2 `org_id`, a lead's v1 `organization_id`).
        if person.as_ref() != Some(&own) {
            put("title", text(&own["title"]));
        }
        let org_id = [&own["org_id"], &own["organization_id"]]
            .into_iter()
            .chain(person.as_ref().map(|p| &p["org_id"]))
            .find_map(Value::as_u64);
        if let Some(org_id) = org_id {
            put("org_name", self.organization_name(org_id).await?);
        }
        Ok(Some(fields))
    }

    async fn record_exists(&self, target: &RecordRef) -> Result<bool, CrmError> {
        let template = match Module::of(&target.module)? {
            Module::Persons => PERSON,
            Module::Deals => DEAL,
            // A converted or deleted lead is gone from the leads.
            Module::Leads => LEAD,
        };
        Ok(self.get_live(template, &target.id, &[]).await?.is_some())
    }

    async fn recently_created(
        &self,
        module: &str,
        field: &str,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        persons_only(module)?;
        let mut query = vec![
            ("sort_by", "add_time"),
            ("sort_direction", "desc"),
            ("limit", RECENT),
        ];
        if is_custom_key(field) {
            query.push(("custom_fields", field));
        }
        let answer = self
            .call(Method::GET, PERSONS, &[], |r| r.query(&query))
            .await?;
        Ok(answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|person| {
                Some(FoundRecord {
                    record: record(Module::Persons, id_text(&person["id"])?),
                    phones: person_phones(person, field),
                    modified_time: text(&person["update_time"]),
                })
            })
            .collect())
    }

    async fn update_field(
        &self,
        target: &RecordRef,
        field: &str,
        value: &str,
    ) -> Result<(), CrmError> {
        // `phones`/`emails` are replaced whole: setting one would drop the rest.
        if matches!(field, "phone" | "email") {
            return Err(not_supported(&format!("replacing a record's {field}s")));
        }
        let mut fields = Map::new();
        fields.insert(field.to_owned(), json!(value));
        let (template, body) = match Module::of(&target.module)? {
            Module::Persons => (PERSON, v2_body(&fields)?),
            Module::Deals => (DEAL, v2_body(&fields)?),
            // v1 leads take deal custom fields top-level.
            Module::Leads => (LEAD, fields),
        };
        self.call(Method::PATCH, template, &[&target.id], |r| r.json(&body))
            .await?;
        Ok(())
    }

    async fn conversion(
        &self,
        target: &RecordRef,
        into_module: &str,
        person: Option<&RecordRef>,
    ) -> Result<Conversion, CrmError> {
        self.converted_into(target, into_module, person).await
    }

    async fn create_follow_up(&self, follow_up: &NewFollowUp) -> Result<RecordRef, CrmError> {
        self.create_lead_or_deal(follow_up).await
    }

    async fn find_follow_up(
        &self,
        person: &RecordRef,
        title: &str,
    ) -> Result<Option<RecordRef>, CrmError> {
        self.lead_or_deal_titled(person, title).await
    }

    async fn latest_open_deal(
        &self,
        person: &RecordRef,
        pipeline_id: Option<&str>,
    ) -> Result<Option<RecordRef>, CrmError> {
        self.newest_open_deal(person, pipeline_id).await
    }
    async fn attach_file(
        &self,
        parent: &RecordRef,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, CrmError> {
        self.upload_file(parent, file_name, mime_type, bytes).await
    }

    async fn find_attachment(
        &self,
        parent: &RecordRef,
        file_name: &str,
        size: u64,
        since: i64,
    ) -> Result<Option<String>, CrmError> {
        self.file_named(parent, file_name, size, since).await
    }

    async fn modules(&self) -> Result<Vec<ModuleMeta>, CrmError> {
        Ok(vec![ModuleMeta {
            api_name: "persons".into(),
            label: "People".into(),
            api_supported: true,
            creatable: true,
            generated_type: "default".into(),
            convertable: false,
            converts_into: Vec::new(),
        }])
    }

    /// Persons' fields, or deals' (which leads use too).
    async fn fields(&self, module: &str) -> Result<Vec<FieldMeta>, CrmError> {
        let (template, deals) = match Module::of(module)? {
            Module::Persons => ("/api/v2/personFields", false),
            Module::Deals | Module::Leads => ("/api/v2/dealFields", true),
        };
        Ok(self
            .v2_all(template, &[], &[("limit", V2_PAGE)])
            .await?
            .iter()
            .filter_map(|f| field_meta(f, deals))
            .collect())
    }

    fn render_note(&self, note: &NoteDraft<'_>) -> String {
        notes::render(note)
    }

    fn note_size(&self, content: &str) -> usize {
        content.len()
    }

    fn note_limit(&self) -> usize {
        notes::NOTE_LIMIT
    }

    /// One note on `parent` and on `also` (a person's note shown on their
    /// deal or lead too).
    async fn create_note(
        &self,
        parent: &RecordRef,
        also: Option<&RecordRef>,
        _title: &str,
        content: &str,
    ) -> Result<String, CrmError> {
        let mut body = Map::new();
        body.insert("content".into(), json!(content));
        for target in std::iter::once(parent).chain(also) {
            let module = Module::of(&target.module)?;
            let id = match module {
                Module::Leads => json!(target.id),
                _ => json!(int_id(&target.id, module.link_field())?),
            };
            body.insert(module.link_field().into(), id);
        }
        let answer = self
            .call(Method::POST, NOTES, &[], |r| r.json(&body))
            .await?;
        data_id(&answer["data"], "note")
    }

    async fn update_note(
        &self,
        note_id: &str,
        _title: &str,
        content: &str,
    ) -> Result<(), CrmError> {
        int_id(note_id, "note_id")?;
        let body = json!({ "content": content });
        self.call(Method::PUT, NOTE, &[note_id], |r| r.json(&body))
            .await?;
        Ok(())
    }

    /// The parent's newest note that begins with the draft's title and
    /// header.
    async fn find_note(
        &self,
        parent: &RecordRef,
        note: &NoteDraft<'_>,
    ) -> Result<Option<String>, CrmError> {
        let link = Module::of(&parent.module)?.link_field();
        let mut found = None;
        self.v1_scan(
            NOTES,
            &[],
            &[
                (link, parent.id.as_str()),
                ("sort", "add_time DESC"),
                ("limit", V1_PAGE),
            ],
            |n| {
                found = n["content"]
                    .as_str()
                    .filter(|c| notes::is_note_of(c, note))
                    .and_then(|_| id_text(&n["id"]));
                found.is_some()
            },
        )
        .await?;
        Ok(found)
    }

    async fn active_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let answer = self.call(Method::GET, "/v1/users", &[], |r| r).await?;
        Ok(answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|u| u["active_flag"] == true && u["is_deleted"] != true)
            .filter_map(|u| {
                Some(CrmUser {
                    id: id_text(&u["id"])?,
                    email: text(&u["email"])?,
                })
            })
            .collect())
    }

    async fn pipelines(&self) -> Result<Vec<Pipeline>, CrmError> {
        self.pipelines_with_stages().await
    }

    async fn lead_labels(&self) -> Result<Vec<Choice>, CrmError> {
        self.lead_label_choices().await
    }
}
