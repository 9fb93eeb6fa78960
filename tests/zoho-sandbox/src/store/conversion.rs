//! Lead conversion.

use serde_json::{Map, Value, json};

use super::{ApiResponse, Store, User, error, now_utc, zoho_time};

impl Store {
    /// `POST /crm/v8/Leads/{id}/actions/convert` (and the library helper).
    pub fn convert_lead(&mut self, id: &str, body: Option<&Value>, caller: &str) -> ApiResponse {
        let Some(lead) = self.find("Leads", id).cloned() else {
            return error(
                400,
                "INVALID_DATA",
                "the id given seems to be invalid",
                json!({"resource_path_index": 1}),
            );
        };
        if lead.data.get("Converted__s") == Some(&json!(true)) {
            return error(
                400,
                "ID_ALREADY_CONVERTED",
                "id already converted",
                json!({"resource_path_index": 1}),
            );
        }
        let opts = body.and_then(|b| b.get("data")).and_then(|d| d.get(0));
        let assign = opts
            .and_then(|o| o.pointer("/assign_to/id"))
            .and_then(Value::as_str)
            .and_then(|u| self.user(u))
            .filter(|u| u.active)
            .map(User::minified)
            .or_else(|| lead.data.get("Owner").cloned());
        let existing_contact = opts
            .and_then(|o| o.pointer("/Contacts/id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let ld = &lead.data;
        // Default conversion mapping: name/phones/email/description carry
        // over to the Contact; Company becomes an Account when present.
        let account_id = match ld
            .get("Company")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
        {
            Some(company) => {
                let mut acc = Map::new();
                acc.insert("Account_Name".into(), json!(company));
                if let Some(o) = &assign {
                    acc.insert("Owner".into(), o.clone());
                }
                let stored = self.insert("Accounts", acc, caller);
                stored
                    .get("id")
                    .and_then(Value::as_str)
                    .map(|s| (s.to_string(), company.to_string()))
            }
            None => None,
        };
        let contact_id = match existing_contact.filter(|c| self.find("Contacts", c).is_some()) {
            Some(c) => c,
            None => {
                let mut c = Map::new();
                for k in [
                    "First_Name",
                    "Last_Name",
                    "Email",
                    "Phone",
                    "Mobile",
                    "Lead_Source",
                    "Description",
                    "Salutation",
                    "Secondary_Email",
                ] {
                    if let Some(v) = ld.get(k).filter(|v| !v.is_null()) {
                        c.insert(k.into(), v.clone());
                    }
                }
                if let Some(d) = ld.get("Designation").filter(|v| !v.is_null()) {
                    c.insert("Title".into(), d.clone());
                }
                if let Some(o) = &assign {
                    c.insert("Owner".into(), o.clone());
                }
                if let Some((aid, aname)) = &account_id {
                    c.insert("Account_Name".into(), json!({"id": aid, "name": aname}));
                }
                let stored = self.insert("Contacts", c, caller);
                stored
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            }
        };
        let contact_name = self
            .find("Contacts", &contact_id)
            .map(|r| self.record_name("Contacts", &r.data))
            .unwrap_or_default();
        let tz = self.caller_tz(caller);
        let now = zoho_time(&tz, now_utc());
        if let Some(r) = self.find_mut("Leads", id) {
            r.data.insert("Converted__s".into(), json!(true));
            r.data.insert("Converted_Date_Time".into(), json!(now));
            r.data.insert(
                "Converted_Contact".into(),
                json!({"id": contact_id, "name": contact_name}),
            );
            r.data.insert(
                "Converted_Account".into(),
                account_id
                    .as_ref()
                    .map(|(i, n)| json!({"id": i, "name": n}))
                    .unwrap_or(Value::Null),
            );
            r.data.insert("Converted_Deal".into(), Value::Null);
            r.data.insert(
                "$converted_detail".into(),
                json!({"contact": contact_id, "account": account_id.as_ref().map(|a| a.0.clone()), "deal": null, "converted_by": caller, "convert_date_time": now}),
            );
        }
        ApiResponse::json(
            200,
            json!({"data": [{"code": "SUCCESS", "message": "The record has been converted successfully", "status": "success",
                   "details": {"Contacts": {"id": contact_id, "name": contact_name},
                               "Accounts": account_id.map(|(i, n)| json!({"id": i, "name": n})),
                               "Deals": null}}]}),
        )
    }
}
