//! Leads (API v1), lead labels and sources, and lead → deal conversion
//! (API v2).

use serde_json::{Map, Value, json};

use super::page::{filters_match, q_filters, updated_since, v1_flat_list, v1_since, v1_sorted};
use super::validate::{
    Kind, Ref, Rule, check, failed, is_hash_key, nullable, opt_u64, require_text, rule,
};
use super::{
    Answer, Caller, Conversion, Ctx, Entity, Reply, Store, bad_request, error, now, rfc3339_ms,
};
use crate::SandboxError;
use crate::config::Plan;

const VISIBLE: &[&str] = &["1", "3", "5", "7"];

const CREATE_RULES: &[Rule] = &[
    rule("title", Kind::Str),
    rule("owner_id", Kind::Int),
    rule("label_ids", Kind::UuidList),
    rule("person_id", Kind::Int),
    rule("organization_id", Kind::Int),
    nullable("value", Kind::Money),
    rule("expected_close_date", Kind::Date),
    rule("visible_to", Kind::StrEnum(VISIBLE)),
    rule("was_seen", Kind::Bool),
    nullable("origin_id", Kind::Str),
    nullable("channel", Kind::Int),
    nullable("channel_id", Kind::Str),
];

const UPDATE_RULES: &[Rule] = &[
    rule("title", Kind::Str),
    rule("owner_id", Kind::Int),
    rule("label_ids", Kind::UuidList),
    nullable("person_id", Kind::Int),
    nullable("organization_id", Kind::Int),
    rule("is_archived", Kind::Bool),
    nullable("value", Kind::Money),
    nullable("expected_close_date", Kind::Date),
    rule("visible_to", Kind::StrEnum(VISIBLE)),
    rule("was_seen", Kind::Bool),
    nullable("channel", Kind::Int),
    nullable("channel_id", Kind::Str),
];

/// Lead sources are fixed (the spec's LeadSources tag).
const LEAD_SOURCES: &[&str] = &[
    "Manually created",
    "Deal",
    "Web forms",
    "Prospector",
    "Leadbooster",
    "Live chat",
    "Import",
    "Website visitors",
    "Workflow automation",
    "API",
];

/// The spec's `sort` fields of `GET /v1/leads`.
const LEAD_SORTS: &[&str] = &[
    "id",
    "title",
    "owner_id",
    "creator_id",
    "was_seen",
    "expected_close_date",
    "next_activity_id",
    "add_time",
    "update_time",
];

const NOT_FOUND: &str = "requested lead not found";

#[derive(Debug, Clone)]
pub struct Lead {
    pub company_id: u64,
    pub data: Map<String, Value>,
}

impl Lead {
    pub fn id(&self) -> &str {
        self.data
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn archived(&self) -> bool {
        self.data.get("is_archived") == Some(&Value::Bool(true))
    }
}

/// A deal custom-field key or one of its subfields (`_currency`, `_until`).
fn custom_base(k: &str) -> &str {
    k.strip_suffix("_currency")
        .or_else(|| k.strip_suffix("_until"))
        .unwrap_or(k)
}

impl Store {
    pub fn seed_lead_labels(&mut self, company_id: u64) {
        let t = rfc3339_ms(now());
        for (name, color) in [("Hot", "red"), ("Warm", "yellow"), ("Cold", "blue")] {
            let id = uuid::Uuid::new_v4().to_string();
            self.lead_labels.push((
                company_id,
                json!({"id": id, "name": name, "color": color, "add_time": t, "update_time": t}),
            ));
        }
    }

    fn lead_index(&self, company_id: u64, id: &str) -> Option<usize> {
        self.leads
            .iter()
            .position(|l| l.company_id == company_id && l.id() == id)
    }

    /// Validates a create/update body: types, references, custom fields.
    fn check_lead(
        &self,
        company_id: u64,
        body: &Map<String, Value>,
        rules: &[Rule],
    ) -> Result<(), String> {
        let company = self.company(company_id);
        let custom = |k: &str| {
            is_hash_key(custom_base(k))
                && self
                    .custom_field(company_id, Entity::Deal, custom_base(k))
                    .is_some()
        };
        check(body, rules, custom)?;
        for (k, v) in body.iter().filter(|(k, _)| custom(k)) {
            if let Some(f) = self.custom_field(company_id, Entity::Deal, k) {
                self.check_custom_value(company_id, f, v, true)?;
            }
        }
        if let Some(vis) = body.get("visible_to").and_then(Value::as_str)
            && matches!(vis, "5" | "7")
            && company.is_some_and(|c| matches!(c.seed.plan, Plan::Lite | Plan::Growth))
        {
            return Err(failed(
                "visible_to",
                "5 and 7 need the Premium or Ultimate plan",
            ));
        }
        self.check_refs(
            company_id,
            body,
            &[
                ("owner_id", Ref::User),
                ("person_id", Ref::Person),
                ("organization_id", Ref::Org),
            ],
        )?;
        if let Some(labels) = body.get("label_ids").and_then(Value::as_array) {
            let known = |l: &Value| {
                self.lead_labels
                    .iter()
                    .any(|(c, x)| *c == company_id && x.get("id") == Some(l))
            };
            if !labels.iter().all(known) {
                return Err(failed("label_ids", "unknown lead label"));
            }
        }
        Ok(())
    }

    fn linked(data: &Map<String, Value>) -> bool {
        ["person_id", "organization_id"]
            .iter()
            .any(|k| data.get(*k).is_some_and(|v| !v.is_null()))
    }

    /// Creates a lead as `caller`; returns its id.
    pub fn create_lead(
        &mut self,
        caller: Caller,
        body: &Map<String, Value>,
    ) -> Result<String, String> {
        self.check_lead(caller.company_id, body, CREATE_RULES)?;
        require_text(body, "title")?;
        if !Self::linked(body) {
            return Err("A lead must be linked to a person or an organization".into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let t = rfc3339_ms(now());
        let domain = self
            .company(caller.company_id)
            .map(|c| c.seed.domain.clone())
            .unwrap_or_default();
        let mut data = json!({
            "id": id, "title": "", "owner_id": caller.user_id, "creator_id": caller.user_id,
            "label_ids": [], "person_id": null, "organization_id": null,
            "source_name": "API", "origin": "API", "origin_id": null, "channel": null,
            "channel_id": null, "source_deal_id": null, "is_archived": false, "was_seen": false,
            "value": null, "expected_close_date": null, "next_activity_id": null,
            "add_time": t, "update_time": t, "visible_to": "3",
            "cc_email": format!("{domain}+lead{}@pipedrivemail.com", &id[..8])
        });
        if let Some(map) = data.as_object_mut() {
            map.extend(body.iter().map(|(k, v)| (k.clone(), v.clone())));
            self.leads.push(Lead {
                company_id: caller.company_id,
                data: map.clone(),
            });
        }
        Ok(id)
    }

    pub fn leads_json(&self, company_id: u64) -> Vec<Value> {
        self.leads
            .iter()
            .filter(|l| l.company_id == company_id)
            .map(|l| Value::Object(l.data.clone()))
            .collect()
    }

    // ------------------------------------------------------------ handlers

    pub fn post_lead(&mut self, ctx: &Ctx) -> Answer {
        let body = ctx.json_object()?;
        Ok(match self.create_lead(ctx.caller, body) {
            Ok(id) => {
                let lead = self
                    .leads
                    .iter()
                    .find(|l| l.id() == id)
                    .map(|l| Value::Object(l.data.clone()));
                Reply::data(201, lead.unwrap_or(Value::Null))
            }
            Err(m) => bad_request(m),
        })
    }

    pub fn get_lead(&mut self, ctx: &Ctx) -> Answer {
        Ok(
            match self.lead_index(ctx.caller.company_id, ctx.param("id")) {
                Some(i) => Reply::data(200, Value::Object(self.leads[i].data.clone())),
                None => error(404, NOT_FOUND),
            },
        )
    }

    pub fn patch_lead(&mut self, ctx: &Ctx) -> Answer {
        let body = ctx.json_object()?;
        let Some(i) = self.lead_index(ctx.caller.company_id, ctx.param("id")) else {
            return Err(error(404, NOT_FOUND));
        };
        if let Err(m) = self.check_lead(ctx.caller.company_id, body, UPDATE_RULES) {
            return Err(bad_request(m));
        }
        if self.leads[i].archived() && body.keys().any(|k| k != "is_archived") {
            return Err(bad_request(
                "Archived leads cannot be edited; unarchive the lead first",
            ));
        }
        let mut data = self.leads[i].data.clone();
        data.extend(body.iter().map(|(k, v)| (k.clone(), v.clone())));
        if !Self::linked(&data) {
            return Err(bad_request(
                "A lead must be linked to a person or an organization",
            ));
        }
        data.insert("update_time".into(), json!(rfc3339_ms(now())));
        self.leads[i].data = data.clone();
        Ok(Reply::data(200, Value::Object(data)))
    }

    pub fn delete_lead(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.param("id").to_string();
        Ok(match self.lead_index(ctx.caller.company_id, &id) {
            Some(i) => {
                self.leads.remove(i);
                Reply::data(200, json!({"id": id}))
            }
            None => error(404, NOT_FOUND),
        })
    }

    fn lead_list(&self, ctx: &Ctx, archived: bool) -> Answer {
        let filters = q_filters(ctx, &["owner_id", "person_id", "organization_id"])?;
        let since = v1_since(ctx)?;
        let items = self
            .leads
            .iter()
            .filter(|l| l.company_id == ctx.caller.company_id && l.archived() == archived)
            .map(|l| Value::Object(l.data.clone()))
            .filter(|l| filters_match(l, &filters) && updated_since(l, since))
            .collect();
        v1_flat_list(ctx, v1_sorted(ctx, items, LEAD_SORTS, "add_time")?, 500)
    }

    pub fn list_leads(&mut self, ctx: &Ctx) -> Answer {
        self.lead_list(ctx, false)
    }

    pub fn list_archived_leads(&mut self, ctx: &Ctx) -> Answer {
        self.lead_list(ctx, true)
    }

    pub fn list_lead_labels(&mut self, ctx: &Ctx) -> Answer {
        let labels = self
            .lead_labels
            .iter()
            .filter(|(c, _)| *c == ctx.caller.company_id)
            .map(|(_, l)| l.clone())
            .collect();
        Ok(Reply::data(200, Value::Array(labels)))
    }

    pub fn list_lead_sources(&mut self, _ctx: &Ctx) -> Answer {
        Ok(Reply::data(
            200,
            LEAD_SOURCES.iter().map(|s| json!({"name": s})).collect(),
        ))
    }

    // ---------------------------------------------------------- conversion

    /// Converts a lead now: creates the deal (with `source_lead_id`), moves
    /// the lead's notes and files to it and deletes the lead.
    pub fn complete_conversion(
        &mut self,
        caller: Caller,
        lead_id: &str,
        stage_id: u64,
    ) -> Result<u64, String> {
        let i = self
            .lead_index(caller.company_id, lead_id)
            .ok_or_else(|| NOT_FOUND.to_string())?;
        let lead = self.leads[i].data.clone();
        let mut body = Map::new();
        for (from, to) in [
            ("title", "title"),
            ("owner_id", "owner_id"),
            ("person_id", "person_id"),
            ("organization_id", "org_id"),
            ("expected_close_date", "expected_close_date"),
        ] {
            if let Some(v) = lead.get(from).filter(|v| !v.is_null()) {
                body.insert(to.into(), v.clone());
            }
        }
        if let Some(value) = lead.get("value").and_then(Value::as_object) {
            body.extend([
                ("value".into(), value["amount"].clone()),
                ("currency".into(), value["currency"].clone()),
            ]);
        }
        if let Some(vis) = lead
            .get("visible_to")
            .and_then(Value::as_str)
            .and_then(|v| v.parse::<i64>().ok())
        {
            body.insert("visible_to".into(), json!(vis));
        }
        let custom: Map<String, Value> = lead
            .iter()
            .filter(|(k, _)| {
                self.custom_field(caller.company_id, Entity::Deal, k)
                    .is_some()
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        body.insert("custom_fields".into(), Value::Object(custom));
        body.insert("stage_id".into(), json!(stage_id));
        let deal_id = self.create_deal(caller, &body, Some(lead_id))?;
        if let Some(d) = self.deals.get_mut(&deal_id) {
            for k in ["origin", "origin_id", "channel", "channel_id"] {
                d.data
                    .insert(k.into(), lead.get(k).cloned().unwrap_or(Value::Null));
            }
        }
        self.move_lead_attachments(lead_id, deal_id);
        self.leads.remove(i);
        Ok(deal_id)
    }

    /// The "UI" conversion helper: same effects, no polling.
    pub fn convert_lead_in_ui(&mut self, lead_id: &str) -> Result<u64, SandboxError> {
        let caller = self.ui_caller();
        let (stage, _) = self
            .resolve_stage(caller.company_id, None, None)
            .map_err(SandboxError::Rejected)?;
        self.complete_conversion(caller, lead_id, stage)
            .map_err(SandboxError::Rejected)
    }

    pub fn post_convert_lead(&mut self, ctx: &Ctx) -> Answer {
        let lead_id = ctx.param("id").to_string();
        let empty = Map::new();
        let body = match &ctx.input {
            super::Input::None => &empty,
            _ => ctx.json_object()?,
        };
        let rules = [rule("stage_id", Kind::Int), rule("pipeline_id", Kind::Int)];
        if let Err(m) = check(body, &rules, |_| false) {
            return Err(bad_request(m));
        }
        if self.lead_index(ctx.caller.company_id, &lead_id).is_none() {
            return Err(error(404, "Lead not found"));
        }
        let (stage, _) = self
            .resolve_stage(
                ctx.caller.company_id,
                opt_u64(body, "stage_id"),
                opt_u64(body, "pipeline_id"),
            )
            .map_err(bad_request)?;
        let conversion_id = uuid::Uuid::new_v4().to_string();
        self.conversions.insert(
            conversion_id.clone(),
            Conversion {
                lead_id,
                company_id: ctx.caller.company_id,
                stage_id: stage,
                caller: ctx.caller,
                polls_left: self.cfg.conversion_polls,
                deal_id: None,
                status: "running",
            },
        );
        Ok(Reply::data(200, json!({"conversion_id": conversion_id})))
    }

    pub fn get_conversion_status(&mut self, ctx: &Ctx) -> Answer {
        let (lead_id, cid) = (
            ctx.param("id").to_string(),
            ctx.param("conversion_id").to_string(),
        );
        let Some(c) = self
            .conversions
            .get(&cid)
            .filter(|c| c.lead_id == lead_id && c.company_id == ctx.caller.company_id)
            .cloned()
        else {
            return Err(error(404, "Conversion not found"));
        };
        let mut c = c;
        if c.status == "running" {
            if c.polls_left > 0 {
                c.polls_left -= 1;
            } else {
                self.complete(&mut c);
            }
        }
        self.conversions.insert(cid.clone(), c.clone());
        let mut data = json!({"lead_id": c.lead_id, "conversion_id": cid, "status": c.status});
        if let Some(d) = c.deal_id {
            data["deal_id"] = json!(d);
        }
        Ok(Reply::json(
            200,
            json!({"success": true, "data": data, "additional_data": null}),
        ))
    }

    /// Completes a running conversion (`failed` when the lead is gone or
    /// the deal cannot be created).
    fn complete(&mut self, c: &mut Conversion) {
        match self.complete_conversion(c.caller, &c.lead_id, c.stage_id) {
            Ok(deal) => {
                c.deal_id = Some(deal);
                c.status = "completed";
            }
            Err(_) => c.status = "failed",
        }
    }

    /// Every running conversion completes now (helper).
    pub fn finish_conversions(&mut self) {
        let running: Vec<String> = self
            .conversions
            .iter()
            .filter(|(_, c)| c.status == "running")
            .map(|(id, _)| id.clone())
            .collect();
        for id in running {
            let Some(mut c) = self.conversions.get(&id).cloned() else {
                continue;
            };
            self.complete(&mut c);
            self.conversions.insert(id, c);
        }
    }
}
