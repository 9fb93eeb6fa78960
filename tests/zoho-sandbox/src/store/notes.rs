//! Notes on records.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{ApiResponse, Store, User, error, fields_param, item_error, json_path, paged};

impl Store {
    fn note_parent_from_item(&self, item: &Value) -> Option<(String, String)> {
        let p = item.get("Parent_Id")?;
        match p {
            // v6+ shape: {"module":{"api_name":..},"id":..}
            Value::Object(o) => {
                let id = o.get("id")?.as_str()?.to_string();
                let m = o.get("module")?.get("api_name")?.as_str()?.to_string();
                Some((m, id))
            }
            // Legacy (≤ v4) shape: Parent_Id string + se_module.
            Value::String(id) => Some((item.get("se_module")?.as_str()?.to_string(), id.clone())),
            _ => None,
        }
    }

    /// `POST /crm/v8/Notes` (`parent = None`, parent in body) or
    /// `POST /crm/v8/{module}/{id}/Notes`.
    pub fn create_notes(
        &mut self,
        parent: Option<(&str, &str)>,
        body: &Value,
        caller: &str,
    ) -> ApiResponse {
        if let Some((m, _)) = parent
            && (!self.api_module(m) || m == "Notes")
        {
            return self.module_error();
        }
        let data = match Self::parse_data(body, 100) {
            Ok(d) => d.clone(),
            Err(e) => return e,
        };
        let max = self.cfg.note_content_max;
        let mut results = Vec::new();
        for (i, item) in data.iter().enumerate() {
            let target = match parent {
                Some((m, id)) => Some((m.to_string(), id.to_string())),
                None => self.note_parent_from_item(item),
            };
            let Some((pm, pid)) = target else {
                results.push(item_error(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    json!({"api_name": "Parent_Id", "json_path": json_path(i, "Parent_Id")}),
                ));
                continue;
            };
            let Some(parent_rec) = self
                .find(&pm, &pid)
                .filter(|_| self.api_module(&pm) && pm != "Notes")
            else {
                results.push(item_error(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "Parent_Id", "json_path": json_path(i, "Parent_Id"), "expected_data_type": "lookup"}),
                ));
                continue;
            };
            let parent_name = self.record_name(&pm, &parent_rec.data);
            match self.validate_note(i, item, true, max) {
                Err(e) => results.push(e),
                Ok(mut valid) => {
                    let module_id = self.module_ids.get(&pm).cloned().unwrap_or_default();
                    valid.insert(
                        "Parent_Id".into(),
                        json!({"module": {"api_name": pm, "id": module_id}, "id": pid, "name": parent_name}),
                    );
                    valid.insert("$attachments".into(), json!([]));
                    valid.insert("$editable".into(), json!(true));
                    valid.insert("$is_shared_to_client".into(), json!(false));
                    valid.insert("$sharing_permission".into(), json!("READ_WRITE"));
                    valid.insert("$state".into(), json!("save"));
                    valid.insert("$voice_note".into(), json!(false));
                    let stored = self.insert("Notes", valid, caller);
                    results.push(
                        json!({"code": "SUCCESS", "details": self.success_details_note(&stored),
                                        "message": "record added", "status": "success"}),
                    );
                }
            }
        }
        ApiResponse::json(Self::write_status(&results, 201), json!({"data": results}))
    }

    fn success_details_note(&self, data: &Map<String, Value>) -> Value {
        let mut d = self.success_details(data);
        if let Some(o) = d.as_object_mut() {
            o.remove("$approval_state");
        }
        d
    }

    fn validate_note(
        &self,
        i: usize,
        item: &Value,
        creating: bool,
        max: usize,
    ) -> Result<Map<String, Value>, Value> {
        let Some(obj) = item.as_object() else {
            return Err(item_error(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "data", "json_path": format!("$.data[{i}]"), "expected_data_type": "jsonobject"}),
            ));
        };
        let mut out = Map::new();
        match obj.get("Note_Content") {
            Some(Value::String(s)) if !s.trim().is_empty() => {
                if s.chars().count() > max {
                    return Err(item_error(
                        "INVALID_DATA",
                        "invalid data",
                        json!({"api_name": "Note_Content", "maximum_length": max}),
                    ));
                }
                out.insert("Note_Content".into(), json!(s));
            }
            None if !creating => {}
            Some(Value::String(_)) | Some(Value::Null) | None => {
                return Err(item_error(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    json!({"api_name": "Note_Content", "json_path": json_path(i, "Note_Content")}),
                ));
            }
            Some(_) => {
                return Err(item_error(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "Note_Content", "json_path": json_path(i, "Note_Content"), "expected_data_type": "textarea"}),
                ));
            }
        }
        match obj.get("Note_Title") {
            Some(Value::String(s)) => {
                if s.chars().count() > 120 {
                    return Err(item_error(
                        "INVALID_DATA",
                        "invalid data",
                        json!({"api_name": "Note_Title", "maximum_length": 120}),
                    ));
                }
                out.insert("Note_Title".into(), json!(s));
            }
            // notes.json types Note_Title as a plain string, so an untitled
            // note simply has no Note_Title.
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(item_error(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": "Note_Title", "json_path": json_path(i, "Note_Title"), "expected_data_type": "text"}),
                ));
            }
        }
        // Only Note_Title / Note_Content are writable; anything else
        // (Parent_Id on update, Owner, ...) is ignored.
        Ok(out)
    }

    /// `PUT /crm/v8/Notes/{id}` and bulk `PUT /crm/v8/Notes`.
    pub fn update_notes(&mut self, id: Option<&str>, body: &Value, caller: &str) -> ApiResponse {
        let data = match Self::parse_data(body, 100) {
            Ok(d) => d.clone(),
            Err(e) => return e,
        };
        let max = self.cfg.note_content_max;
        let mut results = Vec::new();
        for (i, item) in data.iter().enumerate() {
            let nid = id
                .map(str::to_string)
                .or_else(|| item.get("id").and_then(Value::as_str).map(str::to_string));
            let Some(nid) = nid.filter(|n| self.find("Notes", n).is_some()) else {
                results.push(item_error(
                    "INVALID_DATA",
                    "the id given seems to be invalid",
                    json!({"id": id.unwrap_or_default(), "json_path": format!("$.data[{i}].id")}),
                ));
                continue;
            };
            match self.validate_note(i, item, false, max) {
                Err(e) => results.push(e),
                Ok(valid) => {
                    let tz = self.caller_tz(caller);
                    let me = self.user(caller).map(User::minified).unwrap_or(Value::Null);
                    if let Some(r) = self.find_mut("Notes", &nid) {
                        r.apply_edit(valid, &tz, me);
                    }
                    let data = self
                        .find("Notes", &nid)
                        .map(|r| r.data.clone())
                        .unwrap_or_default();
                    results.push(
                        json!({"code": "SUCCESS", "details": self.success_details_note(&data),
                                        "message": "record updated", "status": "success"}),
                    );
                }
            }
        }
        ApiResponse::json(Self::write_status(&results, 200), json!({"data": results}))
    }

    pub fn get_note(&self, id: &str, fields: Option<&[String]>) -> ApiResponse {
        match self.find("Notes", id) {
            Some(r) => ApiResponse::json(200, json!({"data": [self.render("Notes", r, fields)]})),
            None => ApiResponse::no_content(),
        }
    }

    /// `GET /crm/v8/{module}/{id}/Notes` (`parent = Some`) or
    /// `GET /crm/v8/Notes`; `fields` is mandatory. Oldest first.
    pub fn list_notes(
        &self,
        parent: Option<(&str, &str)>,
        q: &HashMap<String, String>,
    ) -> ApiResponse {
        if let Some((m, id)) = parent {
            if !self.api_module(m) || m == "Notes" {
                return self.module_error();
            }
            if self.find(m, id).is_none() {
                return error(
                    400,
                    "INVALID_DATA",
                    "the id given seems to be invalid",
                    json!({"id": id, "resource_path_index": 2}),
                );
            }
        }
        let Some(fields) = fields_param(q) else {
            return error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({"param_name": "fields"}),
            );
        };
        let notes: Vec<Value> = self
            .records
            .get("Notes")
            .map(|rs| {
                rs.iter()
                    .filter(|r| match parent {
                        Some((m, id)) => note_parent(&r.data) == Some((m, id)),
                        None => true,
                    })
                    .map(|r| self.render("Notes", r, Some(&fields)))
                    .collect()
            })
            .unwrap_or_default();
        paged(notes, q)
    }
}

pub(super) fn note_parent(data: &Map<String, Value>) -> Option<(&str, &str)> {
    let p = data.get("Parent_Id")?;
    Some((
        p.pointer("/module/api_name")?.as_str()?,
        p.get("id")?.as_str()?,
    ))
}
