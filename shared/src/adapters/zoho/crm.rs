//! The CRM port on Zoho's API: records, notes, conversion, users and metadata.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::{Value, json};

use crate::crm::{
    Choice, Conversion, Crm, CrmError, FieldMeta, FoundRecord, ModuleMeta, NewFollowUp, NewRecord,
    NoteDraft, Pipeline,
};
use crate::model::{CrmKind, CrmUser, RecordRef};
use crate::phone::E164;

use super::{
    CONVERSION_TARGETS, NOTE_CONTENT_MAX, SEARCH_CRITERIA_MAX, ZohoApi, conversion_lookup,
    field_text, found_records, hides_record, not_in_zoho, phone_criteria, searchable_forms,
    single_write_result, str_field,
};

#[async_trait]
impl Crm for ZohoApi {
    async fn find_by_phone(
        &self,
        module: &str,
        field: &str,
        number: &E164,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        let forms = searchable_forms(number);
        let mut found = Vec::new();
        // Zoho takes at most 10 criteria per search.
        for chunk in forms.chunks(SEARCH_CRITERIA_MAX) {
            let criteria = phone_criteria(field, chunk);
            let fields = format!("{field},Modified_Time");
            let (_, body) = self
                .call(Method::GET, &format!("{module}/search"), |r| {
                    // reqwest encodes `+` as %2B; a literal `+` would become a space.
                    r.query(&[("criteria", criteria.as_str()), ("fields", fields.as_str())])
                })
                .await?;
            found.extend(found_records(module, field, body.as_ref())?);
        }
        Ok(found)
    }

    async fn create_record(&self, record: &NewRecord) -> Result<RecordRef, CrmError> {
        let mut data = Value::Object(record.fields.clone());
        if let Some(owner) = &record.owner_id {
            data["Owner"] = json!({ "id": owner });
        }
        let (status, body) = self
            .call(Method::POST, &record.module, |r| {
                r.json(&json!({ "data": [data] }))
            })
            .await?;
        let entry = single_write_result(status, body)?;
        Ok(RecordRef {
            crm: CrmKind::Zoho,
            module: record.module.clone(),
            id: str_field(&entry["details"], "id")?,
        })
    }

    async fn record_exists(&self, record: &RecordRef) -> Result<bool, CrmError> {
        // 204 (no body) when the id is unknown or deleted.
        let (_, body) = self
            .call(
                Method::GET,
                &format!("{}/{}", record.module, record.id),
                |r| r.query(&[("fields", "id")]),
            )
            .await?;
        Ok(body.is_some_and(|b| b["data"].get(0).is_some()))
    }

    async fn recently_created(
        &self,
        module: &str,
        field: &str,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        // Get Records reads the records themselves, not the search index,
        // so a record made seconds ago is there.
        let fields = format!("{field},Modified_Time");
        let (_, body) = self
            .call(Method::GET, module, |r| {
                r.query(&[
                    ("fields", fields.as_str()),
                    ("sort_by", "Created_Time"),
                    ("sort_order", "desc"),
                    ("per_page", "200"),
                ])
            })
            .await?;
        found_records(module, field, body.as_ref())
    }

    async fn update_field(
        &self,
        record: &RecordRef,
        field: &str,
        value: &str,
    ) -> Result<(), CrmError> {
        let payload = json!({ "data": [{ field: value }] });
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("{}/{}", record.module, record.id),
                |r| r.json(&payload),
            )
            .await?;
        single_write_result(status, body).map(|_| ())
    }

    async fn conversion(
        &self,
        record: &RecordRef,
        into_module: &str,
        _person: Option<&RecordRef>,
    ) -> Result<Conversion, CrmError> {
        // Zoho keeps a converted lead readable, with read-only lookups to
        // what it became (reference §10); they must be asked for by name.
        let Some(lookup) = conversion_lookup(into_module) else {
            return Err(CrmError::Rejected {
                status: 400,
                code: "NOT_A_CONVERSION_TARGET".into(),
                message: format!("a converted Lead never becomes a record of {into_module}"),
                field: None,
            });
        };
        let fields = format!("Converted__s,{lookup}");
        let (_, body) = self
            .call(
                Method::GET,
                &format!("{}/{}", record.module, record.id),
                |r| r.query(&[("fields", fields.as_str())]),
            )
            .await?;
        let Some(data) = body.as_ref().and_then(|b| b["data"].get(0)) else {
            return Err(CrmError::Rejected {
                status: 204,
                code: "RECORD_NOT_FOUND".into(),
                message: format!("{}/{} no longer exists", record.module, record.id),
                field: None,
            });
        };
        if data["Converted__s"] != true {
            return Ok(Conversion::NotConverted);
        }
        Ok(Conversion::Converted {
            into: data[lookup]["id"].as_str().map(|id| RecordRef {
                crm: CrmKind::Zoho,
                module: into_module.to_owned(),
                id: id.to_owned(),
            }),
        })
    }

    async fn attach_file(
        &self,
        parent: &RecordRef,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, CrmError> {
        self.upload_attachment(parent, file_name, mime_type, bytes)
            .await
    }

    async fn find_attachment(
        &self,
        parent: &RecordRef,
        file_name: &str,
        size: u64,
        since: i64,
    ) -> Result<Option<String>, CrmError> {
        self.attachment_named(parent, file_name, size, since).await
    }

    async fn modules(&self) -> Result<Vec<ModuleMeta>, CrmError> {
        let (_, body) = self.call(Method::GET, "settings/modules", |r| r).await?;
        Ok(body
            .as_ref()
            .and_then(|b| b["modules"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some(ModuleMeta {
                    api_name: m["api_name"].as_str()?.to_owned(),
                    label: m["plural_label"].as_str().unwrap_or_default().to_owned(),
                    api_supported: m["api_supported"] == true,
                    creatable: m["creatable"] == true,
                    generated_type: m["generated_type"].as_str().unwrap_or_default().to_owned(),
                    convertable: m["convertable"] == true,
                    converts_into: if m["convertable"] == true {
                        CONVERSION_TARGETS
                            .iter()
                            .map(|(m, _)| (*m).to_owned())
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect())
    }

    async fn fields(&self, module: &str) -> Result<Vec<FieldMeta>, CrmError> {
        let (_, body) = self
            .call(Method::GET, "settings/fields", |r| {
                r.query(&[("module", module)])
            })
            .await?;
        Ok(body
            .as_ref()
            .and_then(|b| b["fields"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some(FieldMeta {
                    api_name: f["api_name"].as_str()?.to_owned(),
                    label: f["display_label"].as_str().unwrap_or_default().to_owned(),
                    data_type: f["data_type"].as_str().unwrap_or_default().to_owned(),
                    json_type: f["json_type"].as_str().unwrap_or_default().to_owned(),
                    length: f["length"].as_u64().and_then(|l| u32::try_from(l).ok()),
                    read_only: f["read_only"] == true || f["field_read_only"] == true,
                    virtual_field: f["virtual_field"] == true,
                    // Absent means allowed: older orgs do not send it.
                    api_create: f["operation_type"]["api_create"] != false,
                    picklist_values: f["pick_list_values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v["actual_value"].as_str().map(str::to_owned))
                        .collect(),
                })
            })
            .collect())
    }

    async fn create_follow_up(&self, _follow_up: &NewFollowUp) -> Result<RecordRef, CrmError> {
        Err(not_in_zoho("leads or deals beside a record"))
    }

    async fn find_follow_up(
        &self,
        _person: &RecordRef,
        _title: &str,
    ) -> Result<Option<RecordRef>, CrmError> {
        Ok(None)
    }

    async fn latest_open_deal(
        &self,
        _person: &RecordRef,
        _pipeline_id: Option<&str>,
    ) -> Result<Option<RecordRef>, CrmError> {
        // A Zoho note belongs to one record.
        Ok(None)
    }

    async fn record_phones(&self, record: &RecordRef) -> Result<Option<Vec<String>>, CrmError> {
        // Every phone field of the module, as the user's metadata lists it.
        let fields = match self.fields(&record.module).await {
            Ok(fields) => fields,
            Err(e) if hides_record(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let phone_fields: Vec<String> = fields
            .into_iter()
            .filter(|f| f.data_type == "phone")
            .map(|f| f.api_name)
            .collect();
        // The record is read even without phone fields: whether the user
        // may see it decides between "no numbers" and "not visible".
        let wanted = if phone_fields.is_empty() {
            "id".to_owned()
        } else {
            phone_fields.join(",")
        };
        let Some(data) = self.visible_record(record, Some(&wanted)).await? else {
            return Ok(None);
        };
        Ok(Some(
            phone_fields
                .iter()
                .filter_map(|f| data[f].as_str().map(str::to_owned))
                .collect(),
        ))
    }

    async fn record_fields(
        &self,
        record: &RecordRef,
    ) -> Result<Option<BTreeMap<String, String>>, CrmError> {
        // A single record's read answers all its fields the user may see.
        let Some(data) = self.visible_record(record, None).await? else {
            return Ok(None);
        };
        Ok(Some(
            data.as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| !name.starts_with('$'))
                .filter_map(|(name, value)| Some((name.clone(), field_text(value)?)))
                .collect(),
        ))
    }

    async fn pipelines(&self) -> Result<Vec<Pipeline>, CrmError> {
        Ok(Vec::new())
    }

    async fn lead_labels(&self) -> Result<Vec<Choice>, CrmError> {
        Ok(Vec::new())
    }

    fn render_note(&self, note: &NoteDraft<'_>) -> String {
        plain_text_note(note)
    }

    fn note_size(&self, content: &str) -> usize {
        content.chars().count()
    }

    fn note_limit(&self) -> usize {
        NOTE_CONTENT_MAX
    }

    async fn create_note(
        &self,
        parent: &RecordRef,
        _also: Option<&RecordRef>,
        title: &str,
        content: &str,
    ) -> Result<String, CrmError> {
        let payload = json!({ "data": [{
            "Note_Title": title,
            "Note_Content": content,
            "Parent_Id": { "module": { "api_name": parent.module }, "id": parent.id },
        }]});
        let (status, body) = self
            .call(Method::POST, "Notes", |r| r.json(&payload))
            .await?;
        let entry = single_write_result(status, body)?;
        str_field(&entry["details"], "id")
    }

    async fn update_note(&self, note_id: &str, title: &str, content: &str) -> Result<(), CrmError> {
        let payload = json!({ "data": [{ "Note_Title": title, "Note_Content": content }] });
        let (status, body) = self
            .call(Method::PUT, &format!("Notes/{note_id}"), |r| {
                r.json(&payload)
            })
            .await?;
        single_write_result(status, body).map(|_| ())
    }

    async fn find_note(
        &self,
        parent: &RecordRef,
        note: &NoteDraft<'_>,
    ) -> Result<Option<String>, CrmError> {
        let (title, header) = (note.title, note.header);
        let mut page = 1;
        loop {
            let (_, body) = self
                .call(
                    Method::GET,
                    &format!("{}/{}/Notes", parent.module, parent.id),
                    |r| {
                        r.query(&[
                            ("fields", "Note_Title,Note_Content"),
                            ("page", &page.to_string()),
                            ("per_page", "200"),
                        ])
                    },
                )
                .await?;
            let Some(body) = body else { return Ok(None) };
            let found = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| {
                    n["Note_Title"] == title
                        && n["Note_Content"]
                            .as_str()
                            .is_some_and(|c| c.starts_with(header))
                })
                .and_then(|n| n["id"].as_str().map(str::to_owned));
            if found.is_some() || body["info"]["more_records"] != true {
                return Ok(found);
            }
            page += 1;
        }
    }

    async fn active_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let mut users = Vec::new();
        let mut page = 1;
        loop {
            let (_, body) = self
                .call(Method::GET, "users", |r| {
                    r.query(&[
                        ("type", "ActiveConfirmedUsers"),
                        ("page", &page.to_string()),
                        ("per_page", "200"),
                    ])
                })
                .await?;
            let Some(body) = body else { return Ok(users) };
            for user in body["users"].as_array().into_iter().flatten() {
                if let (Some(id), Some(email)) = (user["id"].as_str(), user["email"].as_str()) {
                    users.push(CrmUser {
                        id: id.to_owned(),
                        email: email.to_owned(),
                    });
                }
            }
            if body["info"]["more_records"] != true {
                return Ok(users);
            }
            page += 1;
        }
    }
}

/// A note as Zoho stores it: the title is a field of its own; the content is
/// plain text, the header, a blank line, then the lines.
pub(crate) fn plain_text_note(note: &NoteDraft<'_>) -> String {
    let mut content = format!("{}\n", note.header);
    for line in note.lines {
        content.push('\n');
        content.push_str(line);
    }
    content
}
