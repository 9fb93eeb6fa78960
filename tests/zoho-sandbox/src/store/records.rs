//! Records: validation, create, update, get and list.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::{
    ApiResponse, Store, StoredRecord, User, error, fields_param, item_error, json_path, now_utc,
    paged, zoho_time,
};

use super::record_search::{converted_filter, invalid_query};

impl Store {
    pub(super) fn find(&self, module: &str, id: &str) -> Option<&StoredRecord> {
        self.records
            .get(module)?
            .iter()
            .find(|r| r.data.get("id").and_then(Value::as_str) == Some(id))
    }

    pub(super) fn find_mut(&mut self, module: &str, id: &str) -> Option<&mut StoredRecord> {
        self.records
            .get_mut(module)?
            .iter_mut()
            .find(|r| r.data.get("id").and_then(Value::as_str) == Some(id))
    }

    pub(super) fn record_name(&self, module: &str, data: &Map<String, Value>) -> String {
        let s = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        match module {
            "Leads" | "Contacts" => format!("{} {}", s("First_Name"), s("Last_Name"))
                .trim()
                .to_string(),
            "Accounts" => s("Account_Name"),
            "Deals" => s("Deal_Name"),
            "Notes" => s("Note_Title"),
            _ => s("Name"),
        }
    }

    /// Full read shape: every field of the module, `null` when unset.
    pub(super) fn render(&self, module: &str, r: &StoredRecord, only: Option<&[String]>) -> Value {
        let mut out = Map::new();
        if module != "Notes" {
            for f in self.fields_of(module) {
                if let Some(n) = f.get("api_name").and_then(Value::as_str) {
                    let empty = if f.get("json_type").and_then(Value::as_str) == Some("jsonarray") {
                        json!([])
                    } else {
                        Value::Null
                    };
                    out.insert(n.to_string(), empty);
                }
            }
        }
        for (k, v) in &r.data {
            out.insert(k.clone(), v.clone());
        }
        if let Some(fields) = only {
            out.retain(|k, _| k == "id" || fields.iter().any(|f| f == k));
        }
        Value::Object(out)
    }

    pub(super) fn caller_tz(&self, caller: &str) -> String {
        self.user(caller)
            .map(|u| u.time_zone.clone())
            .unwrap_or_else(|| "UTC".to_string())
    }

    /// Validates and converts one input record (create or update).
    pub(super) fn validate_item(
        &self,
        module: &str,
        i: usize,
        item: &Value,
        creating: bool,
        own_id: Option<&str>,
    ) -> Result<Map<String, Value>, Value> {
        let Some(obj) = item.as_object() else {
            return Err(item_error(
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "data", "json_path": format!("$.data[{i}]"), "expected_data_type": "jsonobject"}),
            ));
        };
        // System-mandatory fields first, like Zoho.
        for f in self.fields_of(module) {
            if f.get("system_mandatory") != Some(&Value::Bool(true)) {
                continue;
            }
            let Some(name) = f.get("api_name").and_then(Value::as_str) else {
                continue;
            };
            let v = obj.get(name);
            let missing = match v {
                None => creating,
                Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(_) => false,
            };
            if missing {
                return Err(item_error(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    json!({"api_name": name, "json_path": json_path(i, name)}),
                ));
            }
        }
        let mut out = Map::new();
        for (k, v) in obj {
            if k == "id" || k.starts_with('$') {
                continue;
            }
            // Unknown api_names are ignored, as Zoho does.
            let Some(meta) = self.field(module, k) else {
                continue;
            };
            if meta.get("field_read_only") == Some(&Value::Bool(true)) {
                continue;
            }
            let dt = meta
                .get("data_type")
                .and_then(Value::as_str)
                .unwrap_or("text");
            let jt = meta
                .get("json_type")
                .and_then(Value::as_str)
                .unwrap_or("string");
            let max = meta.get("length").and_then(Value::as_u64).unwrap_or(255) as usize;
            let invalid_type = |expected: &str| {
                item_error(
                    "INVALID_DATA",
                    "invalid data",
                    json!({"api_name": k, "json_path": json_path(i, k), "expected_data_type": expected}),
                )
            };
            if v.is_null() {
                out.insert(k.clone(), Value::Null);
                continue;
            }
            let stored = match jt {
                "string" => {
                    let Some(s) = v.as_str() else {
                        return Err(invalid_type(dt));
                    };
                    if s.chars().count() > max {
                        // record.json types `maximum_length` as a string (the
                        // reference's sample shows a number; notes.json an
                        // integer, used for Note_Content below).
                        let ml = json!(max.to_string());
                        return Err(item_error(
                            "INVALID_DATA",
                            "invalid data",
                            json!({"api_name": k, "json_path": json_path(i, k), "maximum_length": ml}),
                        ));
                    }
                    let bad = match dt {
                        // Zoho's phone regex: digits with an optional leading
                        // `+` and space/`.`/`-`/bracket separators (§12).
                        "phone" => {
                            !s.chars().enumerate().all(|(n, c)| {
                                c.is_ascii_digit()
                                    || matches!(c, ' ' | '.' | '-' | '(' | ')')
                                    || (c == '+' && n == 0)
                            }) || !s.chars().any(|c| c.is_ascii_digit())
                        }
                        "email" => !s.is_empty() && (!s.contains('@') || s.contains(' ')),
                        "picklist" => false,
                        _ => false,
                    };
                    if bad {
                        return Err(invalid_type(dt));
                    }
                    v.clone()
                }
                "jsonobject" => {
                    let Some(id) = v.get("id").and_then(Value::as_str) else {
                        return Err(invalid_type(dt));
                    };
                    if dt == "ownerlookup" || dt == "userlookup" {
                        match self.user(id) {
                            Some(u) if u.active => {
                                json!({"id": u.id, "name": u.full_name(), "email": u.email})
                            }
                            _ => {
                                return Err(item_error(
                                    "INVALID_DATA",
                                    "invalid data",
                                    json!({"api_name": k, "json_path": json_path(i, k), "expected_data_type": dt}),
                                ));
                            }
                        }
                    } else {
                        let target = meta
                            .pointer("/lookup/module/api_name")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        match self.find(target, id) {
                            Some(r) => json!({"id": id, "name": self.record_name(target, &r.data)}),
                            None => {
                                return Err(item_error(
                                    "INVALID_DATA",
                                    "invalid data",
                                    json!({"api_name": k, "json_path": json_path(i, k), "expected_data_type": dt}),
                                ));
                            }
                        }
                    }
                }
                _ => {
                    let of_type = match dt {
                        "jsonarray" => v.is_array(),
                        "boolean" => v.is_boolean(),
                        "integer" => v.is_i64() || v.is_u64(),
                        "double" => v.is_number(),
                        _ => true,
                    };
                    if !of_type {
                        return Err(invalid_type(dt));
                    }
                    v.clone()
                }
            };
            // Duplicate check on unique fields runs on every insert/update.
            if meta
                .get("unique")
                .and_then(Value::as_object)
                .is_some_and(|u| !u.is_empty())
                && let Some(s) = stored.as_str()
                && !s.is_empty()
                && let Some(dup) = self.records.get(module).and_then(|rs| {
                    rs.iter().find(|r| {
                        r.data.get("id").and_then(Value::as_str) != own_id
                            && r.data
                                .get(k)
                                .and_then(Value::as_str)
                                .is_some_and(|x| x.eq_ignore_ascii_case(s))
                    })
                })
            {
                let module_id = self.module_ids.get(module).cloned().unwrap_or_default();
                return Err(item_error(
                    "DUPLICATE_DATA",
                    "duplicate data",
                    json!({"api_name": k, "json_path": json_path(i, k),
                           "duplicate_record": {"id": dup.data.get("id"),
                               "module": {"api_name": module, "id": module_id},
                               "Owner": dup.data.get("Owner").map(|o| json!({"id": o.get("id"), "name": o.get("name")}))}}),
                ));
            }
            out.insert(k.clone(), stored);
        }
        Ok(out)
    }

    pub(super) fn success_details(&self, data: &Map<String, Value>) -> Value {
        json!({
            "id": data.get("id"),
            "Created_Time": data.get("Created_Time"),
            "Modified_Time": data.get("Modified_Time"),
            "Created_By": data.get("Created_By").map(|u| json!({"id": u.get("id"), "name": u.get("name")})),
            "Modified_By": data.get("Modified_By").map(|u| json!({"id": u.get("id"), "name": u.get("name")})),
            "$approval_state": "approved",
        })
    }

    fn derive_full_name(module: &str, data: &mut Map<String, Value>) {
        if module == "Leads" || module == "Contacts" {
            let s = |k: &str| {
                data.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let full = format!("{} {}", s("First_Name"), s("Last_Name"))
                .trim()
                .to_string();
            data.insert("Full_Name".into(), json!(full));
        }
    }

    /// Inserts a validated record as `caller`.
    pub(super) fn insert(
        &mut self,
        module: &str,
        mut data: Map<String, Value>,
        caller: &str,
    ) -> Map<String, Value> {
        let id = self.new_id();
        let tz = self.caller_tz(caller);
        let now = zoho_time(&tz, now_utc());
        let me = self.user(caller).map(User::minified).unwrap_or(Value::Null);
        data.insert("id".into(), json!(id));
        if !data.get("Owner").is_some_and(Value::is_object) {
            data.insert("Owner".into(), me.clone());
        }
        data.insert("Created_By".into(), me.clone());
        data.insert("Modified_By".into(), me);
        data.insert("Created_Time".into(), json!(now));
        data.insert("Modified_Time".into(), json!(now));
        if module != "Notes" {
            data.insert("$approval_state".into(), json!("approved"));
            data.insert("$editable".into(), json!(true));
            data.insert("$converted_detail".into(), json!({}));
            data.insert("Record_Status__s".into(), json!("Available"));
            if module == "Leads" {
                data.insert("Converted__s".into(), json!(false));
            }
        }
        Self::derive_full_name(module, &mut data);
        self.records
            .entry(module.to_string())
            .or_default()
            .push(StoredRecord {
                data: data.clone(),
                touched: Instant::now(),
            });
        data
    }

    pub(super) fn module_error(&self) -> ApiResponse {
        error(
            400,
            "INVALID_MODULE",
            "The module name given seems to be invalid",
            json!({"resource_path_index": 0}),
        )
    }

    pub(super) fn parse_data(body: &Value, max: usize) -> Result<&Vec<Value>, ApiResponse> {
        let Some(data) = body.get("data").and_then(Value::as_array) else {
            return Err(error(
                400,
                "MANDATORY_NOT_FOUND",
                "required field not found",
                json!({"api_name": "data", "json_path": "$.data"}),
            ));
        };
        if data.is_empty() {
            return Err(error(
                400,
                "INVALID_DATA",
                "invalid data",
                json!({"api_name": "data", "json_path": "$.data", "expected_data_type": "jsonarray"}),
            ));
        }
        if data.len() > max {
            return Err(error(
                400,
                "LIMIT_EXCEEDED",
                "Record count exceeded",
                json!({"api_name": "data", "limit": max}),
            ));
        }
        Ok(data)
    }

    pub(super) fn write_status(results: &[Value], all_ok: u16) -> u16 {
        let ok = results
            .iter()
            .filter(|r| r.get("status") == Some(&json!("success")))
            .count();
        if ok == results.len() {
            all_ok
        } else if ok == 0 {
            400
        } else {
            207
        }
    }

    /// `POST /crm/v8/{module}`.
    pub fn create_records(&mut self, module: &str, body: &Value, caller: &str) -> ApiResponse {
        if !self.api_module(module) || module == "Notes" {
            if module == "Notes" {
                return self.create_notes(None, body, caller);
            }
            return self.module_error();
        }
        let data = match Self::parse_data(body, 100) {
            Ok(d) => d.clone(),
            Err(e) => return e,
        };
        let mut results = Vec::new();
        for (i, item) in data.iter().enumerate() {
            match self.validate_item(module, i, item, true, None) {
                Ok(valid) => {
                    let stored = self.insert(module, valid, caller);
                    results.push(
                        json!({"code": "SUCCESS", "details": self.success_details(&stored),
                                        "message": "record added", "status": "success"}),
                    );
                }
                Err(e) => results.push(e),
            }
        }
        ApiResponse::json(Self::write_status(&results, 201), json!({"data": results}))
    }

    fn update_one(
        &mut self,
        module: &str,
        id: &str,
        i: usize,
        item: &Value,
        caller: &str,
    ) -> Value {
        if self.find(module, id).is_none() {
            return item_error(
                "INVALID_DATA",
                "the id given seems to be invalid",
                json!({"id": id, "api_name": "id", "json_path": format!("$.data[{i}].id")}),
            );
        }
        if module == "Leads"
            && self
                .find(module, id)
                .is_some_and(|r| r.data.get("Converted__s") == Some(&json!(true)))
        {
            return item_error(
                "CONVERTED_RECORD",
                "can't update the converted record",
                json!({"id": id}),
            );
        }
        match self.validate_item(module, i, item, false, Some(id)) {
            Err(e) => e,
            Ok(valid) => {
                let tz = self.caller_tz(caller);
                let me = self.user(caller).map(User::minified).unwrap_or(Value::Null);
                let Some(r) = self.find_mut(module, id) else {
                    return item_error(
                        "INVALID_DATA",
                        "the id given seems to be invalid",
                        json!({"id": id}),
                    );
                };
                r.apply_edit(valid, &tz, me);
                Self::derive_full_name(module, &mut r.data);
                let data = r.data.clone();
                json!({"code": "SUCCESS", "details": self.success_details(&data),
                       "message": "record updated", "status": "success"})
            }
        }
    }

    /// `PUT /crm/v8/{module}/{id}` (`id = Some`) and bulk `PUT /crm/v8/{module}`.
    pub fn update_records(
        &mut self,
        module: &str,
        id: Option<&str>,
        body: &Value,
        caller: &str,
    ) -> ApiResponse {
        if module == "Notes" {
            return self.update_notes(id, body, caller);
        }
        if !self.api_module(module) {
            return self.module_error();
        }
        let data = match Self::parse_data(body, 100) {
            Ok(d) => d.clone(),
            Err(e) => return e,
        };
        let mut results = Vec::new();
        for (i, item) in data.iter().enumerate() {
            let rid = id
                .map(str::to_string)
                .or_else(|| item.get("id").and_then(Value::as_str).map(str::to_string));
            match rid {
                Some(rid) => results.push(self.update_one(module, &rid, i, item, caller)),
                None => results.push(item_error(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    json!({"api_name": "id", "json_path": format!("$.data[{i}].id")}),
                )),
            }
        }
        ApiResponse::json(Self::write_status(&results, 200), json!({"data": results}))
    }

    /// `GET /crm/v8/{module}/{id}`: 204 when the id does not exist (the
    /// reference documents 204 for Get Note; records follow the same rule).
    pub fn get_record(&self, module: &str, id: &str, fields: Option<&[String]>) -> ApiResponse {
        if module == "Notes" {
            return self.get_note(id, fields);
        }
        if !self.api_module(module) {
            return self.module_error();
        }
        match self.find(module, id) {
            Some(r) => ApiResponse::json(200, json!({"data": [self.render(module, r, fields)]})),
            None => ApiResponse::no_content(),
        }
    }

    /// `GET /crm/v8/{module}?fields=...` (fields mandatory since v8).
    pub fn list_records(&self, module: &str, q: &HashMap<String, String>) -> ApiResponse {
        if module == "Notes" {
            return self.list_notes(None, q);
        }
        if !self.api_module(module) {
            return self.module_error();
        }
        let Some(fields) = fields_param(q) else {
            return error(
                400,
                "REQUIRED_PARAM_MISSING",
                "One of the expected parameter is missing",
                json!({"param_name": "fields"}),
            );
        };
        let converted = q.get("converted").map(String::as_str).unwrap_or("false");
        let mut all: Vec<Value> = self
            .records
            .get(module)
            .map(|rs| {
                rs.iter()
                    .filter(|r| converted_filter(module, r, converted))
                    .map(|r| {
                        // Sort keys travel along, then only `fields` stay.
                        let mut v = self.render(module, r, Some(&fields));
                        for key in ["Created_Time", "Modified_Time"] {
                            if let (Some(o), Some(t)) = (v.as_object_mut(), r.data.get(key)) {
                                o.entry(format!("$sort_{key}")).or_insert(t.clone());
                            }
                        }
                        v
                    })
                    .collect()
            })
            .unwrap_or_default();
        // Get Records sorts by id (default), Created_Time or Modified_Time.
        let sort_by = q.get("sort_by").map(String::as_str).unwrap_or("id");
        let key = match sort_by {
            "id" => "id".to_owned(),
            "Created_Time" | "Modified_Time" => format!("$sort_{sort_by}"),
            other => return invalid_query("sort_by", "invalid value for sort_by", other),
        };
        // Records made in the same second keep their creation order.
        all.sort_by(|a, b| a[key.as_str()].as_str().cmp(&b[key.as_str()].as_str()));
        match q.get("sort_order").map(String::as_str).unwrap_or("asc") {
            "asc" => {}
            "desc" => all.reverse(),
            other => return invalid_query("sort_order", "invalid value for sort_order", other),
        }
        for v in &mut all {
            if let Some(o) = v.as_object_mut() {
                o.retain(|k, _| !k.starts_with("$sort_"));
            }
        }
        paged(all, q)
    }
}
