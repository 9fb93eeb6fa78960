//! Leads and deals beside a person (reference §4–5): the follow-up a new
//! chat gets, what a converted lead became, the pipelines and stages and
//! the lead labels settings choose from.

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::PipedriveApi;
use super::api::{Module, id_text, int_id, persons_only, record, text};
use super::call::{V1_PAGE, V2_PAGE};
use crate::crm::{Choice, Conversion, CrmError, FollowUpKind, NewFollowUp, Pipeline};
use crate::model::RecordRef;

const DEALS: &str = "/api/v2/deals";
pub(super) const LEAD: &str = "/v1/leads/{id}";
const LEADS: &str = "/v1/leads";

impl PipedriveApi {
    /// The person's deals (open, won and lost), `source_lead_id` included.
    async fn deals_of(&self, person_id: &str) -> Result<Vec<Value>, CrmError> {
        int_id(person_id, "person_id")?;
        self.v2_all(
            DEALS,
            &[],
            &[
                ("person_id", person_id),
                ("include_fields", "source_lead_id"),
                ("limit", V2_PAGE),
            ],
        )
        .await
    }

    /// Persons and deals are never converted. A lead that is still there is
    /// not; a gone one was converted (Pipedrive deletes a converted lead)
    /// into the person's deal that names it as `source_lead_id`, or into
    /// nothing found (deleted, or converted without that person).
    pub(super) async fn converted_into(
        &self,
        target: &RecordRef,
        into_module: &str,
        person: Option<&RecordRef>,
    ) -> Result<Conversion, CrmError> {
        if Module::of(&target.module)? != Module::Leads
            || self.get_live(LEAD, &target.id, &[]).await?.is_some()
        {
            return Ok(Conversion::NotConverted);
        }
        let (Some(person), "deals") = (person, into_module) else {
            return Ok(Conversion::Converted { into: None });
        };
        let deal = self
            .deals_of(&person.id)
            .await?
            .into_iter()
            .find(|d| d["source_lead_id"].as_str() == Some(target.id.as_str()));
        Ok(Conversion::Converted {
            into: deal
                .and_then(|d| id_text(&d["id"]))
                .map(|id| record(Module::Deals, id)),
        })
    }

    pub(super) async fn create_lead_or_deal(
        &self,
        follow_up: &NewFollowUp,
    ) -> Result<RecordRef, CrmError> {
        persons_only(&follow_up.person.module)?;
        let mut body = Map::new();
        body.insert("title".into(), json!(follow_up.title));
        body.insert(
            "person_id".into(),
            json!(int_id(&follow_up.person.id, "person_id")?),
        );
        if let Some(owner) = &follow_up.owner_id {
            body.insert("owner_id".into(), json!(int_id(owner, "owner_id")?));
        }
        let (module, template) = match &follow_up.kind {
            FollowUpKind::Lead { label_id } => {
                if let Some(label) = label_id {
                    body.insert("label_ids".into(), json!([label]));
                }
                (Module::Leads, LEADS)
            }
            FollowUpKind::Deal {
                pipeline_id,
                stage_id,
            } => {
                body.insert(
                    "pipeline_id".into(),
                    json!(int_id(pipeline_id, "pipeline_id")?),
                );
                if let Some(stage) = stage_id {
                    body.insert("stage_id".into(), json!(int_id(stage, "stage_id")?));
                }
                (Module::Deals, DEALS)
            }
        };
        let answer = self
            .call(Method::POST, template, &[], |r| r.json(&body))
            .await?;
        Ok(record(
            module,
            super::api::data_id(&answer["data"], module.name())?,
        ))
    }

    pub(super) async fn lead_or_deal_titled(
        &self,
        person: &RecordRef,
        title: &str,
    ) -> Result<Option<RecordRef>, CrmError> {
        persons_only(&person.module)?;
        int_id(&person.id, "person_id")?;
        let mut lead = None;
        self.v1_scan(
            LEADS,
            &[],
            &[("person_id", &person.id), ("limit", V1_PAGE)],
            |l| {
                lead = (l["title"] == title).then(|| id_text(&l["id"])).flatten();
                lead.is_some()
            },
        )
        .await?;
        if let Some(id) = lead {
            return Ok(Some(record(Module::Leads, id)));
        }
        Ok(self
            .deals_of(&person.id)
            .await?
            .iter()
            .find(|d| d["title"] == title)
            .and_then(|d| id_text(&d["id"]))
            .map(|id| record(Module::Deals, id)))
    }

    pub(super) async fn newest_open_deal(
        &self,
        person: &RecordRef,
        pipeline_id: Option<&str>,
    ) -> Result<Option<RecordRef>, CrmError> {
        persons_only(&person.module)?;
        int_id(&person.id, "person_id")?;
        let mut query = vec![
            ("person_id", person.id.as_str()),
            ("status", "open"),
            ("sort_by", "update_time"),
            ("sort_direction", "desc"),
            ("limit", "1"),
        ];
        if let Some(pipeline) = pipeline_id {
            int_id(pipeline, "pipeline_id")?;
            query.push(("pipeline_id", pipeline));
        }
        let answer = self
            .call(Method::GET, DEALS, &[], |r| r.query(&query))
            .await?;
        Ok(answer["data"]
            .get(0)
            .and_then(|d| id_text(&d["id"]))
            .map(|id| record(Module::Deals, id)))
    }

    /// Pipelines and all stages (two lists), not deleted, in their order.
    pub(super) async fn pipelines_with_stages(&self) -> Result<Vec<Pipeline>, CrmError> {
        let page = [("limit", V2_PAGE)];
        let order = |v: &Value| (v["order_nr"].as_i64().unwrap_or(i64::MAX), v["id"].as_u64());
        let live = |v: &Value| v["is_deleted"] != true;
        let mut pipelines = self.v2_all("/api/v2/pipelines", &[], &page).await?;
        let mut stages = self.v2_all("/api/v2/stages", &[], &page).await?;
        pipelines.retain(live);
        stages.retain(live);
        pipelines.sort_by_key(order);
        stages.sort_by_key(order);
        Ok(pipelines
            .iter()
            .filter_map(|p| {
                let id = id_text(&p["id"])?;
                Some(Pipeline {
                    name: text(&p["name"]).unwrap_or_default(),
                    stages: stages
                        .iter()
                        .filter(|s| id_text(&s["pipeline_id"]).as_deref() == Some(id.as_str()))
                        .filter_map(|s| {
                            Some(Choice {
                                id: id_text(&s["id"])?,
                                name: text(&s["name"]).unwrap_or_default(),
                            })
                        })
                        .collect(),
                    id,
                })
            })
            .collect())
    }

    pub(super) async fn lead_label_choices(&self) -> Result<Vec<Choice>, CrmError> {
        let answer = self.call(Method::GET, "/v1/leadLabels", &[], |r| r).await?;
        Ok(answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                Some(Choice {
                    id: id_text(&l["id"])?,
                    name: text(&l["name"]).unwrap_or_default(),
                })
            })
            .collect())
    }
}
