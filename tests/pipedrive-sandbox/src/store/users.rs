//! Companies and users: `GET /v1/users/me`, `GET /v1/users`,
//! `GET /v1/users/{id}`.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{Answer, Caller, Ctx, Reply, Store, bad_request, error, now, v1_time};
use crate::SandboxError;
use crate::config::{SeedCompany, SeedUser};

#[derive(Debug, Clone)]
pub struct Company {
    pub seed: SeedCompany,
    /// Overrides the seed's budget (`set_daily_budget`).
    pub budget_override: Option<u64>,
}

impl Company {
    pub fn from_seed(seed: &SeedCompany) -> Self {
        Self {
            seed: seed.clone(),
            budget_override: None,
        }
    }

    pub fn id(&self) -> u64 {
        self.seed.id
    }

    pub fn daily_budget(&self) -> u64 {
        self.budget_override
            .unwrap_or_else(|| self.seed.daily_budget())
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: u64,
    pub company_id: u64,
    /// Name, e-mail, admin, active, deleted, time zone as seeded.
    pub seed: SeedUser,
    pub created: DateTime<Utc>,
    /// Stable per user: what `access[].permission_set_id` shows.
    pub permission_set_id: String,
}

impl User {
    /// The `GET /v1/users` item, as seen by `viewer`.
    pub fn json(&self, viewer: u64, currency: &str) -> Value {
        let access = if self.seed.admin {
            json!([
                {"app": "sales", "admin": true, "permission_set_id": self.permission_set_id},
                {"app": "global", "admin": true, "permission_set_id": self.permission_set_id},
                {"app": "account_settings", "admin": true, "permission_set_id": self.permission_set_id}
            ])
        } else {
            json!([{"app": "sales", "admin": false, "permission_set_id": self.permission_set_id}])
        };
        json!({
            "id": self.id,
            "name": self.seed.name,
            "default_currency": currency,
            "locale": "en_US",
            "lang": 1,
            "email": self.seed.email,
            "phone": null,
            "activated": self.seed.active,
            "last_login": v1_time(self.created),
            "created": v1_time(self.created),
            "modified": null,
            "has_created_company": self.seed.admin,
            "access": access,
            "active_flag": self.seed.active,
            "timezone_name": self.seed.timezone,
            "timezone_offset": "+00:00",
            "role_id": 1,
            "icon_url": null,
            "is_you": self.id == viewer,
            "is_deleted": self.seed.deleted
        })
    }
}

impl Store {
    pub fn company(&self, id: u64) -> Option<&Company> {
        self.companies.iter().find(|c| c.id() == id)
    }

    pub fn currency_of(&self, company_id: u64) -> String {
        self.company(company_id)
            .map(|c| c.seed.currency.clone())
            .unwrap_or_else(|| "EUR".into())
    }

    pub fn user(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.seed.email.eq_ignore_ascii_case(email))
    }

    /// Whether `id` is a user of `company_id` (owner checks).
    pub fn is_company_user(&self, company_id: u64, id: u64) -> bool {
        self.user(id)
            .is_some_and(|u| u.company_id == company_id && !u.seed.deleted)
    }

    pub fn home_users(&self) -> Vec<&User> {
        let home = self.home_company();
        self.users.iter().filter(|u| u.company_id == home).collect()
    }

    pub fn add_user(&mut self, seed: SeedUser) -> u64 {
        let id = seed.id.unwrap_or_else(|| self.alloc_id() + 10_000);
        let company_id = seed.company_id.unwrap_or(self.cfg.company.id);
        self.users.retain(|u| u.id != id);
        self.users.push(User {
            id,
            company_id,
            seed,
            created: now(),
            permission_set_id: uuid::Uuid::new_v4().to_string(),
        });
        id
    }

    pub fn set_authorizing_user(&mut self, email: &str) -> Result<(), SandboxError> {
        let id = self
            .user_by_email(email)
            .map(|u| u.id)
            .ok_or_else(|| SandboxError::UnknownUser(email.to_string()))?;
        self.oauth.authorizing_user = id;
        Ok(())
    }

    /// The authorizing user, for helpers that act "in the UI".
    pub fn ui_caller(&self) -> Caller {
        let user_id = self.oauth.authorizing_user;
        let company_id = self
            .user(user_id)
            .map(|u| u.company_id)
            .unwrap_or_else(|| self.home_company());
        Caller {
            user_id,
            company_id,
        }
    }

    pub fn users_json(&self, company_id: u64, viewer: u64) -> Vec<Value> {
        let currency = self.currency_of(company_id);
        self.users
            .iter()
            .filter(|u| u.company_id == company_id)
            .map(|u| u.json(viewer, &currency))
            .collect()
    }

    // ------------------------------------------------------------ handlers

    pub fn get_users_me(&mut self, ctx: &Ctx) -> Answer {
        let (Some(u), Some(c)) = (
            self.user(ctx.caller.user_id),
            self.company(ctx.caller.company_id),
        ) else {
            return Err(error(401, "unauthorized access"));
        };
        let mut data = u.json(u.id, &c.seed.currency);
        if let Some(obj) = data.as_object_mut() {
            obj.insert("company_id".into(), json!(c.id()));
            obj.insert("company_name".into(), json!(c.seed.name));
            obj.insert("company_domain".into(), json!(c.seed.domain));
            obj.insert("company_country".into(), json!(c.seed.country));
            obj.insert("company_industry".into(), json!(null));
            obj.insert(
                "language".into(),
                json!({"language_code": "en", "country_code": "US"}),
            );
        }
        Ok(Reply::data(200, data))
    }

    pub fn get_users(&mut self, ctx: &Ctx) -> Answer {
        Ok(Reply::data(
            200,
            Value::Array(self.users_json(ctx.caller.company_id, ctx.caller.user_id)),
        ))
    }

    /// `GET /v1/users/find`: `term` matches names (substring, any case), or
    /// e-mails with `search_by_email=1`.
    pub fn find_users(&mut self, ctx: &Ctx) -> Answer {
        let term = ctx.q("term").unwrap_or("").to_lowercase();
        if term.is_empty() {
            return Err(bad_request("term is required"));
        }
        let by_email = match ctx.q("search_by_email").unwrap_or("0") {
            "0" => false,
            "1" => true,
            _ => return Err(bad_request("search_by_email must be 0 or 1")),
        };
        let currency = self.currency_of(ctx.caller.company_id);
        let found = self
            .users
            .iter()
            .filter(|u| u.company_id == ctx.caller.company_id)
            .filter(|u| {
                let hay = if by_email {
                    &u.seed.email
                } else {
                    &u.seed.name
                };
                hay.to_lowercase().contains(&term)
            })
            .map(|u| u.json(ctx.caller.user_id, &currency))
            .collect();
        Ok(Reply::data(200, Value::Array(found)))
    }

    pub fn get_user(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        let currency = self.currency_of(ctx.caller.company_id);
        Ok(
            match self
                .user(id)
                .filter(|u| u.company_id == ctx.caller.company_id)
            {
                Some(u) => Reply::data(200, u.json(ctx.caller.user_id, &currency)),
                None => Reply::json(404, json!({"success": false, "error": "User not found"})),
            },
        )
    }
}
