//! Modules, fields and the org itself (metadata endpoints).

use serde_json::{Value, json};

use crate::SandboxError;
use crate::metadata::{self, MODULES};

use super::Store;

impl Store {
    pub fn is_module(&self, m: &str) -> bool {
        self.records.contains_key(m)
    }

    fn module_def(&self, m: &str) -> Option<&'static metadata::ModuleDef> {
        MODULES.iter().find(|d| d.api_name == m)
    }

    pub(super) fn api_module(&self, m: &str) -> bool {
        self.module_def(m).is_some_and(|d| d.api_supported)
    }

    pub fn modules_json(&self) -> Vec<Value> {
        let admin = self
            .users
            .iter()
            .find(|u| u.is_admin())
            .map(|a| json!({"id": a.id, "name": a.full_name()}))
            .unwrap_or(Value::Null);
        MODULES
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let id = self.module_ids.get(d.api_name).cloned().unwrap_or_default();
                metadata::module_json(d, &id, i + 1, &admin)
            })
            .collect()
    }

    pub fn fields_of(&self, module: &str) -> &[Value] {
        self.fields.get(module).map(Vec::as_slice).unwrap_or(&[])
    }

    pub(super) fn field(&self, module: &str, api_name: &str) -> Option<&Value> {
        self.fields_of(module)
            .iter()
            .find(|f| f.get("api_name").and_then(Value::as_str) == Some(api_name))
    }

    /// Adds a field at runtime (tests). Missing metadata keys are filled from
    /// the template so the next metadata read stays contract-valid.
    pub fn add_field(&mut self, module: &str, field: Value) -> Result<(), SandboxError> {
        if !self.fields.contains_key(module) {
            return Err(SandboxError::UnknownModule(module.to_string()));
        }
        let Some(api_name) = field
            .get("api_name")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            return Err(SandboxError::InvalidField("api_name missing".into()));
        };
        let data_type = field
            .get("data_type")
            .and_then(Value::as_str)
            .unwrap_or("text")
            .to_string();
        let id = self.new_id();
        // Start from a generic custom text field, then let the caller's JSON
        // override any key (api_name, data_type, length, pick_list_values...).
        let template = metadata::Fd {
            api_name: "",
            label: "",
            data_type: "text",
            length: 255,
            mandatory: false,
            read_only: false,
            custom: true,
            unique: false,
            picks: &[],
            lookup: None,
        };
        let mut full = template.to_json(&id, None);
        if let Some(o) = full.as_object_mut() {
            let label = api_name.replace('_', " ");
            o.insert("api_name".into(), json!(api_name));
            o.insert("display_label".into(), json!(label));
            o.insert("field_label".into(), json!(label));
            o.insert("column_name".into(), json!(api_name.to_ascii_uppercase()));
            o.insert("data_type".into(), json!(data_type));
            o.insert(
                "json_type".into(),
                json!(metadata::json_type_for(&api_name, &data_type)),
            );
            if let Some(extra) = field.as_object() {
                for (k, v) in extra {
                    o.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some(list) = self.fields.get_mut(module) {
            list.retain(|f| f.get("api_name").and_then(Value::as_str) != Some(api_name.as_str()));
            list.push(full);
        }
        Ok(())
    }

    /// The organization as seen by `caller` (a user id): a user seeded with a
    /// foreign organization sees that organization's id.
    pub fn org_json(&self, caller: &str) -> Value {
        let mut v = self.home_org_json();
        if let Some(foreign) = self.user(caller).and_then(|u| u.foreign_org_id.clone())
            && let Some(m) = v.as_object_mut()
        {
            m.insert("id".into(), json!(foreign));
            m.insert(
                "company_name".into(),
                json!(format!("Organization {foreign}")),
            );
        }
        v
    }

    fn home_org_json(&self) -> Value {
        let o = &self.cfg.org;
        let admin = self.users.iter().find(|u| u.is_admin());
        let mut v: Value =
            serde_json::from_str(include_str!("../templates/org.json")).unwrap_or(json!({}));
        if let Some(m) = v.as_object_mut() {
            for (k, val) in [
                ("id", json!(o.id)),
                ("company_name", json!(o.company_name)),
                ("primary_email", json!(o.primary_email)),
                ("time_zone", json!(o.time_zone)),
                ("country_code", json!(o.country_code)),
                ("country", json!(o.country)),
                ("currency", json!(o.currency)),
                ("iso_code", json!(o.iso_code)),
                ("currency_symbol", json!(o.currency_symbol)),
                ("currency_locale", json!("en_GB")),
                ("domain_name", json!(o.domain_name)),
                (
                    "primary_zuid",
                    json!(admin.map(|a| a.zuid.clone()).unwrap_or_default()),
                ),
                ("zgid", json!(o.zgid)),
                ("ezgid", json!(o.zgid)),
                ("phone", json!(o.phone)),
                ("type", json!("production")),
                ("max_per_page", json!(200)),
                ("mc_status", json!(false)),
                ("alias", json!(null)),
                ("zia_portal_id", json!(null)),
                ("call_icon", json!(null)),
                ("zia_zgid", json!(null)),
                (
                    "license_details",
                    json!({"paid_expiry": null, "users_license_purchased": 10, "trial_type": null,
                           "trial_expiry": null, "paid": true, "paid_type": "enterprise", "trial_action": null}),
                ),
            ] {
                m.insert(k.to_string(), val);
            }
        }
        v
    }
}
