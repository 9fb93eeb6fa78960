//! In-memory state of the fake Pipedrive and the API behaviour on top of it.
//!
//! Everything is synchronous and lives behind one mutex: a request's
//! "authenticated, counted, validated, stored" steps happen atomically, so
//! test assertions are deterministic. Each aggregate has its own file;
//! handlers are `fn(&mut Store, &Ctx) -> Reply`.

mod deals;
mod fields;
mod files;
mod leads;
mod limits;
mod notes;
mod oauth;
mod page;
mod persons;
mod search;
mod users;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use crate::contract::ContractViolation;
use crate::{PipedriveSandboxConfig, RecordedRequest};

pub use deals::{Conversion, Deal, Pipeline, Stage};
pub use fields::{Entity, Field};
pub use files::StoredFile;
pub use leads::Lead;
pub use limits::{Limits, RateHeaders, Refusal};
pub use notes::Note;
pub use oauth::{AuthFailure, IssuedTokens, OAuth};
pub use persons::Person;
pub use users::{Company, User};

/// An answer of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: ReplyBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ReplyBody {
    Json(Value),
    Bytes {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: ReplyBody::Json(body),
        }
    }

    /// `{"success": true, "data": …}`.
    pub fn data(status: u16, data: Value) -> Self {
        Self::json(status, json!({"success": true, "data": data}))
    }

    /// `{"success": true, "data": …, "additional_data": …}`.
    pub fn list(data: Vec<Value>, additional: Value) -> Self {
        Self::json(
            200,
            json!({"success": true, "data": data, "additional_data": additional}),
        )
    }
}

/// What a handler returns: both sides are answers; `Err` lets `?` end a
/// handler early with an error reply.
pub type Answer = Result<Reply, Reply>;

/// The reference's error envelope (§2).
pub fn error_body(message: &str) -> Value {
    json!({
        "success": false,
        "error": message,
        "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
        "data": null,
        "additional_data": null
    })
}

pub fn error(status: u16, message: &str) -> Reply {
    Reply::json(status, error_body(message))
}

pub fn bad_request(message: impl AsRef<str>) -> Reply {
    error(400, message.as_ref())
}

/// The message of an injected fault's status.
pub fn status_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "unauthorized access",
        402 => {
            "Company account is not open (possible reason: trial expired, payment details not entered)"
        }
        403 => "You do not have permissions to perform this action",
        404 => "Not found",
        410 => "Gone",
        429 => "Request over limit",
        502 => "Bad gateway",
        503 => "Service temporarily unavailable (maintenance)",
        504 => "Gateway timeout",
        _ => "Internal server error",
    }
}

/// Who an API call runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub user_id: u64,
    pub company_id: u64,
}

/// An uploaded file part.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// A parsed request body.
#[derive(Debug, Clone)]
pub enum Input {
    None,
    Json(Value),
    /// `application/x-www-form-urlencoded` (no handler takes one).
    Form,
    Multipart {
        fields: BTreeMap<String, String>,
        file: Option<Upload>,
    },
    /// Body present but unusable (media type, JSON syntax): the reason.
    Invalid(String),
}

/// Everything a handler needs from the request.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub caller: Caller,
    pub params: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub input: Input,
}

impl Ctx {
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A numeric path parameter (`id`): a non-number is a 400.
    pub fn id(&self, name: &str) -> Result<u64, Reply> {
        self.param(name)
            .parse()
            .map_err(|_| bad_request(format!("{name} must be an integer")))
    }

    /// The JSON object body; anything else is a 400.
    pub fn json_object(&self) -> Result<&Map<String, Value>, Reply> {
        match &self.input {
            Input::Json(Value::Object(m)) => Ok(m),
            Input::Json(_) => Err(bad_request("Request body must be a JSON object")),
            Input::None => Err(bad_request("Request body is missing")),
            Input::Invalid(why) => Err(bad_request(why)),
            Input::Form | Input::Multipart { .. } => Err(bad_request(
                "Request body must be JSON (Content-Type: application/json)",
            )),
        }
    }
}

/// Fault injection state.
#[derive(Debug, Default)]
pub struct Faults {
    /// (remaining, status) for `fail_next`.
    pub fail: Option<(u32, u16)>,
    /// (method, path, status) for `lose_next_response`.
    pub lost: Vec<(String, String, u16)>,
    /// (remaining, delay) for `slow_next`.
    pub slow: Option<(u32, Duration)>,
}

impl Faults {
    pub fn take_slow(&mut self) -> Option<Duration> {
        let (n, d) = self.slow?;
        self.slow = (n > 1).then(|| (n - 1, d));
        Some(d)
    }

    pub fn take_fail(&mut self) -> Option<u16> {
        let (n, status) = self.fail?;
        self.fail = (n > 1).then(|| (n - 1, status));
        Some(status)
    }

    /// The status of a pending lost response for this request, if any.
    pub fn take_lost(&mut self, method: &str, path_matches: impl Fn(&str) -> bool) -> Option<u16> {
        let i = self
            .lost
            .iter()
            .position(|(m, p, _)| m.eq_ignore_ascii_case(method) && path_matches(p))?;
        Some(self.lost.remove(i).2)
    }
}

/// The whole fake Pipedrive.
pub struct Store {
    pub cfg: PipedriveSandboxConfig,
    pub base_url: String,
    pub companies: Vec<Company>,
    pub users: Vec<User>,
    /// Organizations: `(id, company_id, name)`; seeded, no endpoints.
    pub orgs: Vec<(u64, u64, String)>,
    pub oauth: OAuth,
    pub limits: Limits,
    pub fields: Vec<Field>,
    pub persons: BTreeMap<u64, Person>,
    pub leads: Vec<Lead>,
    pub lead_labels: Vec<(u64, Value)>,
    pub pipelines: Vec<Pipeline>,
    pub stages: Vec<Stage>,
    pub deals: BTreeMap<u64, Deal>,
    pub conversions: HashMap<String, Conversion>,
    pub notes: BTreeMap<u64, Note>,
    pub files: BTreeMap<u64, StoredFile>,
    pub requests: Vec<RecordedRequest>,
    pub violations: Vec<ContractViolation>,
    pub faults: Faults,
    next_id: u64,
}

/// RFC 3339 in UTC, seconds precision (v2 timestamps).
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// RFC 3339 with milliseconds (leads, uninstall notice).
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (v1 notes, files, users).
pub fn v1_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

impl Store {
    pub fn new(cfg: PipedriveSandboxConfig, base_url: String) -> Self {
        let mut st = Self {
            base_url,
            companies: Vec::new(),
            users: Vec::new(),
            orgs: Vec::new(),
            oauth: OAuth::default(),
            limits: Limits::new(cfg.bursts_enabled),
            fields: Vec::new(),
            persons: BTreeMap::new(),
            leads: Vec::new(),
            lead_labels: Vec::new(),
            pipelines: Vec::new(),
            stages: Vec::new(),
            deals: BTreeMap::new(),
            conversions: HashMap::new(),
            notes: BTreeMap::new(),
            files: BTreeMap::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            faults: Faults::default(),
            next_id: 1,
            cfg,
        };
        st.seed();
        st
    }

    /// Ids of persons, deals, notes, files and fields come from one sequence
    /// (so an id never means two things in a test).
    pub fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn seed(&mut self) {
        let mut companies = vec![self.cfg.company.clone()];
        companies.extend(self.cfg.foreign_companies.iter().cloned());
        for c in &companies {
            self.companies.push(Company::from_seed(c));
            let org = self.alloc_id();
            self.orgs
                .push((org, c.id, format!("{} Customer Org", c.name)));
            self.seed_fields(c.id);
            self.seed_pipelines(c.id);
            self.seed_lead_labels(c.id);
        }
        self.next_id = self.next_id.max(1000);
        for u in self.cfg.users.clone() {
            self.add_user(u);
        }
        if let Some(first) = self.home_users().first() {
            self.oauth.authorizing_user = first.id;
        }
    }

    pub fn home_company(&self) -> u64 {
        self.cfg.company.id
    }

    pub fn org_name(&self, company_id: u64, id: u64) -> Option<String> {
        self.orgs
            .iter()
            .find(|(o, c, _)| *o == id && *c == company_id)
            .map(|(_, _, n)| n.clone())
    }

    /// `GET /api/v2/organizations/{id}`: a seeded organization of the
    /// caller's company (the v2 read shape, without address or custom
    /// fields, which seeded ones do not have).
    pub fn get_organization(&mut self, ctx: &Ctx) -> Answer {
        let id = ctx.id("id")?;
        let company = ctx.caller.company_id;
        let Some(name) = self.org_name(company, id) else {
            return Err(error(404, "Organization not found"));
        };
        let owner = self
            .users
            .iter()
            .find(|u| u.company_id == company)
            .map_or(0, |u| u.id);
        let t = rfc3339(now());
        Ok(Reply::data(
            200,
            json!({
                "id": id, "name": name, "owner_id": owner, "add_time": t, "update_time": t,
                "is_deleted": false, "visible_to": 3, "label_ids": [], "custom_fields": {},
            }),
        ))
    }
}
