//! The org's users: seeding, lookup and `GET /users`.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{SandboxError, SeedUser};

use super::{ApiResponse, Store, User, now_utc, paged_as, zoho_time};

impl Store {
    pub fn add_user(&mut self, u: SeedUser) -> String {
        let id = u.id.clone().unwrap_or_else(|| self.new_id());
        let zuid = (800_000_000 + self.users.len() as u64 * 1_117).to_string();
        self.users.push(User {
            id: id.clone(),
            zuid,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            profile: u.profile,
            role: u.role,
            active: u.active,
            confirmed: u.confirmed,
            time_zone: u.time_zone,
            created: now_utc(),
            foreign_org_id: u.foreign_org_id,
        });
        id
    }

    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn set_authorizing_user(&mut self, email: &str) -> Result<(), SandboxError> {
        let u = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .ok_or_else(|| SandboxError::UnknownUser(email.to_string()))?;
        self.authorizing_user = u.id.clone();
        Ok(())
    }

    fn role_id(&self, role: &str) -> String {
        let n: u64 = role.bytes().map(u64::from).sum();
        (5_725_767_000_000_026_005 + n).to_string()
    }

    fn profile_id(&self, profile: &str) -> &'static str {
        if profile == "Administrator" {
            "5725767000000026011"
        } else {
            "5725767000000026014"
        }
    }

    pub fn user_json(&self, u: &User) -> Value {
        let admin = self.users.iter().find(|x| x.is_admin());
        let created_by = admin
            .map(|a| json!({"id": a.id, "name": a.full_name()}))
            .unwrap_or(json!(null));
        json!({
            "id": u.id,
            "zuid": u.zuid,
            "email": u.email,
            "full_name": u.full_name(),
            "first_name": u.first_name,
            "last_name": u.last_name,
            "status": if u.active { "active" } else { "disabled" },
            "confirm": u.confirmed,
            "role": {"name": u.role, "id": self.role_id(&u.role)},
            "profile": {"name": u.profile, "id": self.profile_id(&u.profile)},
            "time_zone": u.time_zone,
            "locale": "en_GB",
            "country_locale": "en_GB",
            "language": "en_GB",
            "country": "GB",
            "date_format": "MMM d, yyyy",
            "time_format": "HH:mm",
            "decimal_separator": "Period",
            "phone": null,
            "mobile": null,
            "website": null,
            "fax": null,
            "alias": null,
            "street": null,
            "city": null,
            "state": null,
            "zip": null,
            "dob": null,
            "signature": null,
            "Isonline": false,
            "personal_account": false,
            "sandboxDeveloper": false,
            "microsoft": false,
            "category": "regular_user",
            "status_reason__s": null,
            "sort_order_preference__s": "First Name,Last Name",
            "default_tab_group": "0",
            "created_time": zoho_time(&u.time_zone, u.created),
            "Modified_Time": zoho_time(&u.time_zone, u.created),
            "created_by": created_by,
            "Modified_By": admin.map(|a| json!({"id": a.id, "name": a.full_name(), "first_name": a.first_name, "last_name": a.last_name})),
        })
    }

    pub fn users_json(&self) -> Vec<Value> {
        self.users.iter().map(|u| self.user_json(u)).collect()
    }

    /// `GET /crm/v8/users?type=...`.
    pub fn list_users(&self, caller: &str, q: &HashMap<String, String>) -> ApiResponse {
        let ty = q.get("type").map(String::as_str).unwrap_or("AllUsers");
        let pick: Box<dyn Fn(&User) -> bool> = match ty {
            "AllUsers" => Box::new(|_| true),
            "ActiveUsers" => Box::new(|u| u.active),
            "DeactiveUsers" => Box::new(|u| !u.active),
            "ConfirmedUsers" => Box::new(|u| u.confirmed),
            "NotConfirmedUsers" => Box::new(|u| !u.confirmed),
            "DeletedUsers" => Box::new(|_| false),
            "ActiveConfirmedUsers" => Box::new(|u| u.active && u.confirmed),
            "AdminUsers" => Box::new(|u| u.is_admin()),
            "ActiveConfirmedAdmins" => Box::new(|u| u.is_admin() && u.active && u.confirmed),
            "CurrentUser" => {
                let c = caller.to_string();
                Box::new(move |u| u.id == c)
            }
            _ => {
                return ApiResponse::json(
                    400,
                    json!({"code": "INVALID_DATA", "details": {"api_name": "type"}, "message": "invalid data", "status": "error"}),
                );
            }
        };
        let ids: Option<Vec<&str>> = q.get("ids").map(|s| s.split(',').map(str::trim).collect());
        let users: Vec<Value> = self
            .users
            .iter()
            .filter(|u| pick(u))
            .filter(|u| ids.as_ref().is_none_or(|ids| ids.contains(&u.id.as_str())))
            .map(|u| self.user_json(u))
            .collect();
        paged_as("users", users, q)
    }

    pub fn get_user(&self, id: &str) -> ApiResponse {
        match self.user(id) {
            Some(u) => ApiResponse::json(
                200,
                json!({"users": [self.user_json(u)],
                       "info": {"per_page": 200, "count": 1, "page": 1, "more_records": false}}),
            ),
            None => ApiResponse::no_content(),
        }
    }
}
