//! Deals, pipelines and stages (API v2).

use serde_json::{Map, Value, json};

use super::page::{
    UpdatedWindow, filters_match, keyset_page, q_filters, q_ids, q_u64, v2_list, v2_sort,
};
use super::validate::{Kind, Ref, Rule, check, failed, nullable, opt_u64, require_text, rule};
use super::{Answer, Caller, Ctx, Entity, Reply, Store, bad_request, error, now, rfc3339};

const DEAL_RULES: &[Rule] = &[
    rule("title", Kind::Str),
    rule("owner_id", Kind::Int),
    nullable("person_id", Kind::Int),
    nullable("org_id", Kind::Int),
    rule("pipeline_id", Kind::Int),
    rule("stage_id", Kind::Int),
    rule("value", Kind::Num),
    rule("currency", Kind::Str),
    rule("is_deleted", Kind::Bool),
    rule("is_archived", Kind::Bool),
    rule("archive_time", Kind::Str),
    rule("status", Kind::StrEnum(&["open", "won", "lost"])),
    nullable("probability", Kind::Num),
    nullable("lost_reason", Kind::Str),
    rule("visible_to", Kind::IntEnum(&[1, 3, 5, 7])),
    nullable("close_time", Kind::Str),
    rule("won_time", Kind::Str),
    rule("lost_time", Kind::Str),
    rule("expected_close_date", Kind::Date),
    rule("label_ids", Kind::IntList),
    rule("custom_fields", Kind::Object),
];

#[derive(Debug, Clone)]
pub struct Deal {
    pub company_id: u64,
    /// The v2 read shape, `source_lead_id` included.
    pub data: Map<String, Value>,
}

impl Deal {
    pub fn id(&self) -> u64 {
        self.data.get("id").and_then(Value::as_u64).unwrap_or(0)
    }

    pub fn title(&self) -> String {
        self.data
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    pub fn is_deleted(&self) -> bool {
        self.data.get("is_deleted") == Some(&Value::Bool(true))
    }

    /// The answer shape: `source_lead_id` only when asked for
    /// (`include_fields=source_lead_id`).
    pub fn json(&self, with_source_lead: bool) -> Value {
        let mut d = self.data.clone();
        if !with_source_lead {
            d.remove("source_lead_id");
        }
        Value::Object(d)
    }
}

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub id: u64,
    pub company_id: u64,
    pub json: Value,
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub id: u64,
    pub company_id: u64,
    pub pipeline_id: u64,
    pub order_nr: u64,
    pub json: Value,
}

/// A lead → deal conversion (`POST /api/v2/leads/{id}/convert/deal`).
#[derive(Debug, Clone)]
pub struct Conversion {
    pub lead_id: String,
    pub company_id: u64,
    pub stage_id: u64,
    pub caller: Caller,
    /// `running` answers left before completion.
    pub polls_left: u32,
    pub deal_id: Option<u64>,
    pub status: &'static str,
}

const PIPELINES: &[(&str, &[(&str, u64)])] = &[
    (
        "Sales pipeline",
        &[
            ("Qualified", 10),
            ("Contact Made", 20),
            ("Demo Scheduled", 40),
            ("Proposal Made", 60),
            ("Negotiations Started", 80),
        ],
    ),
    ("Partnerships", &[("Prospect", 10), ("Agreement", 50)]),
];

fn wants_source_lead(ctx: &Ctx) -> bool {
    ctx.q("include_fields")
        .is_some_and(|f| f.split(',').any(|x| x.trim() == "source_lead_id"))
}

impl Store {
    pub fn seed_pipelines(&mut self, company_id: u64) {
        let t = rfc3339(now());
        for (order, (name, stages)) in PIPELINES.iter().enumerate() {
            let id = self.alloc_id();
            self.pipelines.push(Pipeline {
                id,
                company_id,
                json: json!({"id": id, "name": name, "order_nr": order + 1, "is_deleted": false,
                    "is_deal_probability_enabled": false, "add_time": t, "update_time": t}),
            });
            for (n, (stage, probability)) in stages.iter().enumerate() {
                let sid = self.alloc_id();
                self.stages.push(Stage {
                    id: sid,
                    company_id,
                    pipeline_id: id,
                    order_nr: n as u64 + 1,
                    json: json!({"id": sid, "order_nr": n + 1, "name": stage, "is_deleted": false,
                        "deal_probability": probability, "pipeline_id": id, "is_deal_rot_enabled": false,
                        "days_to_rotten": null, "add_time": t, "update_time": t}),
                });
            }
        }
    }

    fn stage(&self, company_id: u64, id: u64) -> Option<&Stage> {
        self.stages
            .iter()
            .find(|s| s.id == id && s.company_id == company_id)
    }

    fn first_stage(&self, company_id: u64, pipeline_id: Option<u64>) -> Option<&Stage> {
        let pipeline = match pipeline_id {
            Some(p) => self
                .pipelines
                .iter()
                .find(|x| x.id == p && x.company_id == company_id)?,
            None => self.pipelines.iter().find(|x| x.company_id == company_id)?,
        };
        self.stages
            .iter()
            .filter(|s| s.pipeline_id == pipeline.id)
            .min_by_key(|s| s.order_nr)
    }

    /// Resolves `stage_id`/`pipeline_id` (stage wins; pipeline → its first
    /// stage; neither → first stage of the default pipeline).
    pub fn resolve_stage(
        &self,
        company_id: u64,
        stage: Option<u64>,
        pipeline: Option<u64>,
    ) -> Result<(u64, u64), String> {
        match (stage, pipeline) {
            (Some(s), p) => {
                let st = self
                    .stage(company_id, s)
                    .ok_or_else(|| failed("stage_id", "no such stage"))?;
                if p.is_some_and(|p| p != st.pipeline_id) {
                    return Err(failed(
                        "stage_id",
                        "stage does not belong to the given pipeline",
                    ));
                }
                Ok((st.id, st.pipeline_id))
            }
            (None, p) => self
                .first_stage(company_id, p)
                .map(|s| (s.id, s.pipeline_id))
                .ok_or_else(|| failed("pipeline_id", "no such pipeline")),
        }
    }

    fn check_deal_refs(&self, company_id: u64, body: &Map<String, Value>) -> Result<(), String> {
        self.check_refs(
            company_id,
            body,
            &[
                ("owner_id", Ref::User),
                ("person_id", Ref::Person),
                ("org_id", Ref::Org),
            ],
        )?;
        if let Some(custom) = body.get("custom_fields").and_then(Value::as_object) {
            self.check_custom_fields(company_id, Entity::Deal, custom)?;
        }
        Ok(())
    }

    fn apply_deal(
        &self,
        company_id: u64,
        data: &mut Map<String, Value>,
        body: &Map<String, Value>,
    ) -> Result<(), String> {
        let t = rfc3339(now());
        let old_stage = data.get("stage_id").and_then(Value::as_u64);
        if body.contains_key("stage_id") || body.contains_key("pipeline_id") {
            let (stage, pipeline) = self.resolve_stage(
                company_id,
                opt_u64(body, "stage_id"),
                opt_u64(body, "pipeline_id"),
            )?;
            data.insert("stage_id".into(), json!(stage));
            data.insert("pipeline_id".into(), json!(pipeline));
            if old_stage.is_some_and(|o| o != stage) {
                data.insert("stage_change_time".into(), json!(t));
            }
        }
        for (k, v) in body {
            match k.as_str() {
                "stage_id" | "pipeline_id" | "is_deleted" | "archive_time" => {}
                "custom_fields" => {
                    if let (Some(target), Some(src)) = (
                        data.get_mut("custom_fields").and_then(Value::as_object_mut),
                        v.as_object(),
                    ) {
                        target.extend(src.iter().map(|(a, b)| (a.clone(), b.clone())));
                    }
                }
                "status" => {
                    let status = v.as_str().unwrap_or("open");
                    if data.get("status").and_then(Value::as_str) != Some(status) {
                        let close = if status == "open" {
                            Value::Null
                        } else {
                            json!(t)
                        };
                        data.insert("close_time".into(), close);
                        data.insert(
                            "won_time".into(),
                            if status == "won" {
                                json!(t)
                            } else {
                                Value::Null
                            },
                        );
                        data.insert(
                            "lost_time".into(),
                            if status == "lost" {
                                json!(t)
                            } else {
                                Value::Null
                            },
                        );
                    }
                    data.insert("status".into(), json!(status));
                }
                _ => {
                    data.insert(k.clone(), v.clone());
                }
            }
        }
        if data.get("person_id").is_none_or(Value::is_null)
            && data.get("org_id").is_none_or(Value::is_null)
        {
            return Err("A deal must be linked to a person or an organization".into());
        }
        data.insert("update_time".into(), json!(t));
        Ok(())
    }

    /// Creates a deal as `caller` after v2 validation; returns its id.
    pub fn create_deal(
        &mut self,
        caller: Caller,
        body: &Map<String, Value>,
        source_lead_id: Option<&str>,
    ) -> Result<u64, String> {
        check(body, DEAL_RULES, |_| false)?;
        require_text(body, "title")?;
        self.check_deal_refs(caller.company_id, body)?;
        let id = self.alloc_id();
        let t = rfc3339(now());
        let mut data = json!({
            "id": id, "title": "", "creator_user_id": caller.user_id, "owner_id": caller.user_id,
            "person_id": null, "org_id": null, "pipeline_id": null, "stage_id": null,
            "value": 0, "currency": self.currency_of(caller.company_id),
            "add_time": t, "update_time": t, "stage_change_time": null,
            "is_deleted": false, "is_archived": false, "status": "open", "probability": null,
            "lost_reason": null, "visible_to": 3, "close_time": null, "won_time": null,
            "lost_time": null, "expected_close_date": null, "label_ids": [],
            "origin": "API", "origin_id": null, "channel": null, "channel_id": null,
            "source_lead_id": source_lead_id, "arr": null, "mrr": null, "acv": null,
            "custom_fields": self.blank_custom_fields(caller.company_id, Entity::Deal)
        });
        let Some(map) = data.as_object_mut() else {
            return Err("internal".into());
        };
        // Resolve the stage even when neither was sent (default pipeline).
        let (stage, pipeline) = self.resolve_stage(
            caller.company_id,
            opt_u64(body, "stage_id"),
            opt_u64(body, "pipeline_id"),
        )?;
        map.insert("stage_id".into(), json!(stage));
        map.insert("pipeline_id".into(), json!(pipeline));
        let mut rest = body.clone();
        rest.remove("stage_id");
        rest.remove("pipeline_id");
        self.apply_deal(caller.company_id, map, &rest)?;
        map.insert("add_time".into(), json!(t));
        self.deals.insert(
            id,
            Deal {
                company_id: caller.company_id,
                data: map.clone(),
            },
        );
        Ok(id)
    }

    pub fn deals_json(&self, company_id: u64) -> Vec<Value> {
        self.deals
            .values()
            .filter(|d| d.company_id == company_id)
            .map(|d| d.json(true))
            .collect()
    }

    fn live_deal(&self, company_id: u64, id: u64) -> Option<&Deal> {
        self.deals
            .get(&id)
            .filter(|d| d.company_id == company_id && !d.is_deleted())
    }

    // ------------------------------------------------------------ handlers

    pub fn post_deal(&mut self, ctx: &Ctx) -> Answer {
        let body = ctx.json_object()?;
        Ok(match self.create_deal(ctx.caller, body, None) {
            Ok(id) => Reply::data(200, self.deals[&id].json(wants_source_lead(ctx))),
            Err(m) => bad_request(m),
        })
    }

    pub fn get_deal(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        Ok(match self.live_deal(ctx.caller.company_id, id) {
            Some(d) => Reply::data(200, d.json(wants_source_lead(ctx))),
            None => error(404, "Deal not found"),
        })
    }

    pub fn patch_deal(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        let body = ctx.json_object()?;
        let Some(deal) = self.live_deal(ctx.caller.company_id, id) else {
            return Err(error(404, "Deal not found"));
        };
        let mut data = deal.data.clone();
        let result = check(body, DEAL_RULES, |_| false)
            .and_then(|()| self.check_deal_refs(ctx.caller.company_id, body))
            .and_then(|()| self.apply_deal(ctx.caller.company_id, &mut data, body));
        if let Err(m) = result {
            return Err(bad_request(m));
        }
        if let Some(d) = self.deals.get_mut(&id) {
            d.data = data;
        }
        Ok(Reply::data(
            200,
            self.deals[&id].json(wants_source_lead(ctx)),
        ))
    }

    pub fn delete_deal(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        if self.live_deal(ctx.caller.company_id, id).is_none() {
            return Err(error(404, "Deal not found"));
        }
        if let Some(d) = self.deals.get_mut(&id) {
            d.data.insert("is_deleted".into(), json!(true));
            d.data.insert("update_time".into(), json!(rfc3339(now())));
        }
        Ok(Reply::data(200, json!({"id": id})))
    }

    pub fn list_deals(&mut self, ctx: &Ctx) -> Answer {
        self.list_deals_inner(ctx)
    }

    fn list_deals_inner(&self, ctx: &Ctx) -> Result<Reply, Reply> {
        let filters = q_filters(
            ctx,
            &["person_id", "org_id", "owner_id", "pipeline_id", "stage_id"],
        )?;
        let statuses: Vec<&str> = ctx
            .q("status")
            .map_or(vec!["open", "won", "lost"], |s| s.split(',').collect());
        if let Some(bad) = statuses
            .iter()
            .find(|s| !["open", "won", "lost", "deleted"].contains(s))
        {
            return Err(bad_request(failed(
                "status",
                &format!("{bad} is not one of open, won, lost, deleted"),
            )));
        }
        let ids = q_ids(ctx)?;
        let window = UpdatedWindow::from_query(ctx)?;
        let (sort_by, desc) = v2_sort(ctx, &["id", "update_time", "add_time"])?;
        let with_source = wants_source_lead(ctx);
        let items = self
            .deals
            .values()
            .filter(|d| d.company_id == ctx.caller.company_id)
            .filter(|d| d.data.get("is_archived") != Some(&Value::Bool(true)))
            .filter(|d| {
                let status = if d.is_deleted() {
                    "deleted"
                } else {
                    d.data
                        .get("status")
                        .and_then(Value::as_str)
                        .unwrap_or("open")
                };
                statuses.contains(&status)
            })
            .filter(|d| ids.as_ref().is_none_or(|ids| ids.contains(&d.id())))
            .map(|d| d.json(with_source))
            .filter(|d| filters_match(d, &filters) && window.contains(d))
            .collect();
        let (page, next) = keyset_page(ctx, items, &sort_by, desc)?;
        Ok(v2_list(page, next))
    }

    pub fn list_pipelines(&mut self, ctx: &Ctx) -> Answer {
        let items = self
            .pipelines
            .iter()
            .filter(|p| p.company_id == ctx.caller.company_id)
            .map(|p| p.json.clone())
            .collect();
        Self::sorted_v2(ctx, items, &["id", "update_time", "add_time"])
    }

    pub fn list_stages(&mut self, ctx: &Ctx) -> Answer {
        let pipeline = q_u64(ctx, "pipeline_id")?;
        let items = self
            .stages
            .iter()
            .filter(|s| s.company_id == ctx.caller.company_id)
            .filter(|s| pipeline.is_none_or(|p| s.pipeline_id == p))
            .map(|s| s.json.clone())
            .collect();
        Self::sorted_v2(ctx, items, &["id", "update_time", "add_time", "order_nr"])
    }

    fn sorted_v2(ctx: &Ctx, items: Vec<Value>, sorts: &[&str]) -> Answer {
        let (by, desc) = v2_sort(ctx, sorts)?;
        let (page, next) = keyset_page(ctx, items, &by, desc)?;
        Ok(v2_list(page, next))
    }

    pub fn get_pipeline(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id").unwrap_or(0);
        Ok(self
            .pipelines
            .iter()
            .find(|p| p.id == id && p.company_id == ctx.caller.company_id)
            .map_or_else(
                || error(404, "Pipeline not found"),
                |p| Reply::data(200, p.json.clone()),
            ))
    }

    pub fn get_stage(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id").unwrap_or(0);
        Ok(self.stage(ctx.caller.company_id, id).map_or_else(
            || error(404, "Stage not found"),
            |s| Reply::data(200, s.json.clone()),
        ))
    }
}
