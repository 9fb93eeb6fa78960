//! Files (API v1): multipart upload attached to a deal, person, lead or
//! organization; metadata, lists and download.

use serde_json::{Map, Value, json};

use super::page::{v1_flat_list, v1_list, v1_sorted};
use super::{Answer, Ctx, Input, Reply, ReplyBody, Store, bad_request, error, now, v1_time};

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub company_id: u64,
    pub data: Map<String, Value>,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Multipart form fields that attach a file.
const LINKS: &[&str] = &[
    "deal_id",
    "person_id",
    "org_id",
    "lead_id",
    "product_id",
    "activity_id",
];

/// The spec's `sort` fields of the file lists.
const FILE_SORTS: &[&str] = &[
    "id",
    "user_id",
    "deal_id",
    "person_id",
    "org_id",
    "product_id",
    "add_time",
    "update_time",
    "file_name",
    "file_type",
    "file_size",
];

impl Store {
    pub fn files_json(&self, company_id: u64) -> Vec<Value> {
        self.files
            .values()
            .filter(|f| f.company_id == company_id)
            .map(|f| Value::Object(f.data.clone()))
            .collect()
    }

    /// Resolves the attachment fields of an upload into stored values.
    fn file_links(
        &self,
        company_id: u64,
        fields: &std::collections::BTreeMap<String, String>,
    ) -> Result<Map<String, Value>, String> {
        let mut out = Map::new();
        for k in LINKS {
            out.insert((*k).into(), Value::Null);
        }
        for k in [
            "deal_name",
            "person_name",
            "org_name",
            "product_name",
            "lead_name",
        ] {
            out.insert(k.into(), Value::Null);
        }
        let mut linked = false;
        for (k, v) in fields.iter().filter(|(k, _)| LINKS.contains(&k.as_str())) {
            linked = true;
            if k == "lead_id" {
                let lead = self
                    .leads
                    .iter()
                    .find(|l| l.company_id == company_id && l.id() == v);
                let lead = lead.ok_or_else(|| "lead not found (lead_id)".to_string())?;
                out.insert("lead_id".into(), json!(v));
                out.insert(
                    "lead_name".into(),
                    lead.data.get("title").cloned().unwrap_or(Value::Null),
                );
                continue;
            }
            let id: u64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{k} must be an integer"))?;
            let name = match k.as_str() {
                "deal_id" => self
                    .deals
                    .get(&id)
                    .filter(|d| d.company_id == company_id && !d.is_deleted())
                    .map(|d| d.title()),
                "person_id" => self.live_person(company_id, id).map(|p| p.name()),
                "org_id" => self.org_name(company_id, id),
                _ => None,
            };
            let name =
                name.ok_or_else(|| format!("{} not found ({k})", k.trim_end_matches("_id")))?;
            out.insert(k.clone(), json!(id));
            let name_key = format!("{}_name", k.trim_end_matches("_id"));
            out.insert(name_key, json!(name));
        }
        if !linked {
            return Err(
                "One of deal_id, person_id, org_id, lead_id, product_id or activity_id is required"
                    .into(),
            );
        }
        Ok(out)
    }

    pub fn post_file(&mut self, ctx: &Ctx) -> Answer {
        let (fields, file) = match &ctx.input {
            Input::Multipart { fields, file } => (fields, file),
            Input::Invalid(why) => return Err(bad_request(why)),
            _ => return Err(bad_request("Request must be multipart/form-data")),
        };
        let Some(file) = file else {
            return Err(bad_request(
                "No file was uploaded (part `file` is required)",
            ));
        };
        if file.bytes.len() > self.cfg.file_max_bytes {
            return Err(error(
                413,
                &format!(
                    "File is too large: the maximum upload size is {} bytes",
                    self.cfg.file_max_bytes
                ),
            ));
        }
        let mut data = self
            .file_links(ctx.caller.company_id, fields)
            .map_err(bad_request)?;
        let id = self.alloc_id();
        let t = v1_time(now());
        let file_type = file
            .file_name
            .rsplit_once('.')
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .unwrap_or_default();
        let extra = json!({
            "id": id, "user_id": ctx.caller.user_id, "add_time": t, "update_time": t,
            "file_name": file.file_name, "file_size": file.bytes.len(), "file_type": file_type,
            "active_flag": true, "inline_flag": false, "remote_location": "s3",
            "remote_id": format!("sandbox/{id}"), "cid": null, "s3_bucket": null,
            "mail_message_id": null, "mail_template_id": null,
            "url": format!("{}/v1/files/{id}/download", self.base_url),
            "name": file.file_name, "description": null
        });
        if let Some(extra) = extra.as_object() {
            data.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.files.insert(
            id,
            StoredFile {
                company_id: ctx.caller.company_id,
                data: data.clone(),
                content_type: file.content_type.clone(),
                bytes: file.bytes.clone(),
            },
        );
        Ok(Reply::data(200, Value::Object(data)))
    }

    fn own_file(&self, ctx: &Ctx) -> Result<&StoredFile, Reply> {
        let id = ctx.id("id")?;
        self.files
            .get(&id)
            .filter(|f| f.company_id == ctx.caller.company_id)
            .ok_or_else(|| error(404, "File not found"))
    }

    pub fn get_file(&mut self, ctx: &Ctx) -> Answer {
        let f = self.own_file(ctx)?;
        Ok(Reply::data(200, Value::Object(f.data.clone())))
    }

    pub fn download_file(&mut self, ctx: &Ctx) -> Answer {
        let f = self.own_file(ctx)?;
        Ok(Reply {
            status: 200,
            body: ReplyBody::Bytes {
                content_type: f.content_type.clone(),
                bytes: f.bytes.clone(),
            },
        })
    }

    pub fn delete_file(&mut self, ctx: &Ctx) -> Answer {
        let id = self
            .own_file(ctx)?
            .data
            .get("id")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.files.remove(&id);
        Ok(Reply::data(200, json!({"id": id})))
    }

    pub fn list_files(&mut self, ctx: &Ctx) -> Answer {
        let items = v1_sorted(
            ctx,
            self.files_json(ctx.caller.company_id),
            FILE_SORTS,
            "id",
        )?;
        v1_list(ctx, items, 500)
    }

    /// `/v1/{persons,deals,organizations}/{id}/files` (limit at most 100).
    fn files_of(&self, ctx: &Ctx, field: &str, exists: bool, what: &str) -> Answer {
        let id = ctx.id("id")?;
        if !exists {
            return Err(error(404, &format!("{what} not found")));
        }
        let items = self
            .files
            .values()
            .filter(|f| f.company_id == ctx.caller.company_id)
            .filter(|f| f.data.get(field).and_then(Value::as_u64) == Some(id))
            .map(|f| Value::Object(f.data.clone()))
            .collect();
        v1_flat_list(ctx, v1_sorted(ctx, items, FILE_SORTS, "id")?, 100)
    }

    pub fn person_files(&mut self, ctx: &Ctx) -> Answer {
        let exists = ctx
            .id("id")
            .is_ok_and(|id| self.live_person(ctx.caller.company_id, id).is_some());
        self.files_of(ctx, "person_id", exists, "Person")
    }

    pub fn deal_files(&mut self, ctx: &Ctx) -> Answer {
        let exists = ctx.id("id").is_ok_and(|id| {
            self.deals
                .get(&id)
                .is_some_and(|d| d.company_id == ctx.caller.company_id && !d.is_deleted())
        });
        self.files_of(ctx, "deal_id", exists, "Deal")
    }

    pub fn org_files(&mut self, ctx: &Ctx) -> Answer {
        let exists = ctx
            .id("id")
            .is_ok_and(|id| self.org_name(ctx.caller.company_id, id).is_some());
        self.files_of(ctx, "org_id", exists, "Organization")
    }
}
