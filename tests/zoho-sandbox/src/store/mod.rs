//! In-memory state of the fake Zoho org and the CRM behaviour on top of it.
//!
//! Everything is synchronous and lives behind one mutex: requests are tiny and
//! a single lock keeps "counted/validated/stored" steps atomic, which makes
//! test assertions deterministic.
//!
//! `Store` and the helpers every part uses live here; each part of the API
//! has its own file (users, OAuth, limits, org metadata, records, search,
//! notes, conversion, attachments) with its own `impl Store` block.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::contract::ContractViolation;
use crate::metadata::{self, MODULES};
use crate::{RecordedRequest, SandboxConfig};

mod attachments;
mod conversion;
mod library;
mod limits;
mod notes;
mod oauth;
mod org;
mod record_search;
mod records;
mod users;

/// A JSON answer of the CRM API (`body: None` = empty body, e.g. 204).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Option<Value>,
}

impl ApiResponse {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
        }
    }
    pub fn no_content() -> Self {
        Self {
            status: 204,
            body: None,
        }
    }
}

/// Zoho's whole-request error body.
pub fn error_body(code: &str, message: &str, details: Value) -> Value {
    json!({"code": code, "details": details, "message": message, "status": "error"})
}

pub fn error(status: u16, code: &str, message: &str, details: Value) -> ApiResponse {
    ApiResponse::json(status, error_body(code, message, details))
}

/// Default message for a Zoho error code (used by fault injection).
pub fn default_message(code: &str) -> &'static str {
    match code {
        "INTERNAL_ERROR" => "Internal server error occurred.",
        "TOO_MANY_REQUESTS" => "too many requests",
        "INVALID_TOKEN" => "invalid oauth token",
        "NO_PERMISSION" => "permission denied",
        "INVALID_URL_PATTERN" => "Please check if the URL trying to access is a correct one",
        "OAUTH_SCOPE_MISMATCH" => "invalid oauth scope to access this URL",
        "AUTHENTICATION_FAILURE" => "Authentication failed",
        _ => "invalid data",
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub zuid: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub profile: String,
    pub role: String,
    pub active: bool,
    pub confirmed: bool,
    pub time_zone: String,
    pub created: DateTime<Utc>,
    pub foreign_org_id: Option<String>,
}

impl User {
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name)
            .trim()
            .to_string()
    }
    pub fn is_admin(&self) -> bool {
        self.profile == "Administrator"
    }
    fn minified(&self) -> Value {
        json!({"id": self.id, "name": self.full_name(), "email": self.email})
    }
}

#[derive(Debug)]
struct GrantCode {
    client_id: String,
    redirect_uri: String,
    user_id: String,
    offline: bool,
    expires: Instant,
    used: bool,
    /// PKCE (RFC 7636, S256): base64url(SHA-256(verifier)).
    code_challenge: Option<String>,
    /// What the authorization request asked for (and the user approved).
    scopes: Vec<String>,
}

#[derive(Debug)]
struct RefreshToken {
    client_id: String,
    user_id: String,
    revoked: bool,
    refreshes: VecDeque<Instant>,
    scopes: Vec<String>,
}

#[derive(Debug)]
struct AccessToken {
    user_id: String,
    refresh: Option<String>,
    expires: Instant,
    revoked: bool,
    scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct StoredRecord {
    data: Map<String, Value>,
    /// Instant of the last create/edit; the record is invisible to /search
    /// until `search_index_delay` has passed since then.
    touched: Instant,
}

impl StoredRecord {
    /// An update's validated fields, stamped with who changed it and when
    /// (in the caller's time zone, as Zoho answers); the edit also hides the
    /// record from search again until it is re-indexed.
    fn apply_edit(&mut self, valid: Map<String, Value>, tz: &str, editor: Value) {
        self.data.extend(valid);
        self.data
            .insert("Modified_Time".into(), json!(zoho_time(tz, now_utc())));
        self.data.insert("Modified_By".into(), editor);
        self.touched = Instant::now();
    }
}

#[derive(Debug, Clone)]
struct Fault {
    remaining: u32,
    status: u16,
    code: String,
}

/// A refresh token's grant as tests inspect it (the token itself stays
/// inside the sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantInfo {
    pub scopes: Vec<String>,
    pub revoked: bool,
}

/// Tokens handed out by [`Store::issue_tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
}

pub struct Store {
    pub cfg: SandboxConfig,
    pub base_url: String,
    users: Vec<User>,
    authorizing_user: String,
    codes: HashMap<String, GrantCode>,
    refresh: HashMap<String, RefreshToken>,
    access: HashMap<String, AccessToken>,
    records: BTreeMap<String, Vec<StoredRecord>>,
    attachments: Vec<Value>,
    fields: HashMap<String, Vec<Value>>,
    module_ids: HashMap<String, String>,
    pub requests: Vec<RecordedRequest>,
    pub violations: Vec<ContractViolation>,
    fault: Option<Fault>,
    /// `(method, path, status)`: the next such request is carried out, but
    /// its answer is lost and the client gets `status` (a gateway timeout
    /// after Zoho did the work).
    lost_response: Option<(String, String, u16)>,
    pub credits_used: u64,
    pub credit_limit: Option<u64>,
    pub token_refreshes: u64,
    /// While set, the revoke endpoint answers 503, as during an outage.
    pub revocation_outage: bool,
    pub max_concurrency: usize,
    pub refresh_limit: u32,
    /// Modules whose records a user who is not an administrator may read
    /// only if they own them (a private sharing rule).
    pub owner_only_modules: Vec<String>,
    /// Every refresh token issued, in order (grant inspection for tests).
    issued_refresh: Vec<String>,
    next_id: u64,
}

fn now_utc() -> DateTime<Utc> {
    Utc::now()
}

/// ISO-8601 with offset in the given IANA zone, as Zoho renders date-times.
pub fn zoho_time(tz: &str, t: DateTime<Utc>) -> String {
    match tz.parse::<chrono_tz::Tz>() {
        Ok(z) => t
            .with_timezone(&z)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string(),
        Err(_) => t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
    }
}

fn random_token(prefix: &str) -> String {
    let mut rng = rand::rng();
    let a: String = (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect();
    let b: String = (0..32)
        .map(|_| format!("{:x}", rng.random_range(0..16u8)))
        .collect();
    format!("{prefix}.{a}.{b}")
}

/// Normalises a phone number for matching: drops spaces, dashes, dots and
/// brackets, keeps `+` and digits. Zoho's own normalisation for `phone=` is
/// undocumented (unconfirmed); this is the sandbox's stand-in, chosen so that
/// formatting differences match but `+49…` and `49…` (what a literal `+`
/// decoding to a space produces) do not.
pub fn normalise_phone(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '[' | ']'))
        .collect()
}

fn json_path(i: usize, field: &str) -> String {
    format!("$.data[{i}].{field}")
}

fn item_error(code: &str, message: &str, details: Value) -> Value {
    error_body(code, message, details)
}

impl Store {
    pub fn new(cfg: SandboxConfig, base_url: String) -> Self {
        let mut s = Self {
            max_concurrency: cfg.max_concurrency,
            refresh_limit: cfg.refresh_limit,
            credit_limit: cfg.credit_limit,
            base_url,
            users: Vec::new(),
            authorizing_user: String::new(),
            codes: HashMap::new(),
            refresh: HashMap::new(),
            access: HashMap::new(),
            records: BTreeMap::new(),
            attachments: Vec::new(),
            fields: HashMap::new(),
            module_ids: HashMap::new(),
            requests: Vec::new(),
            violations: Vec::new(),
            fault: None,
            lost_response: None,
            credits_used: 0,
            token_refreshes: 0,
            revocation_outage: false,
            owner_only_modules: Vec::new(),
            issued_refresh: Vec::new(),
            next_id: 5_725_767_000_000_400_001,
            cfg,
        };
        for def in MODULES {
            let id = s.new_id();
            s.module_ids.insert(def.api_name.to_string(), id);
        }
        for def in MODULES {
            let fds = metadata::default_fields(def.api_name);
            let list = fds
                .iter()
                .map(|fd| {
                    let id = s.new_id();
                    let lookup_id = fd.lookup.and_then(|m| s.module_ids.get(m).cloned());
                    fd.to_json(&id, lookup_id.as_deref())
                })
                .collect();
            s.fields.insert(def.api_name.to_string(), list);
            s.records.insert(def.api_name.to_string(), Vec::new());
        }
        for u in s.cfg.users.clone() {
            s.add_user(u);
        }
        s.authorizing_user = s
            .users
            .iter()
            .find(|u| u.is_admin() && u.active)
            .or(s.users.first())
            .map(|u| u.id.clone())
            .unwrap_or_default();
        s
    }

    fn new_id(&mut self) -> String {
        self.next_id += 1;
        self.next_id.to_string()
    }
}

pub fn fields_param(q: &HashMap<String, String>) -> Option<Vec<String>> {
    let f = q.get("fields")?;
    let v: Vec<String> = f
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    (!v.is_empty()).then_some(v)
}

fn page_of(q: &HashMap<String, String>) -> (usize, usize) {
    let page = q
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(200)
        .min(200);
    (page, per_page)
}

/// Pages a result list: 204 when empty, else `{"data":[...],"info":{...}}`.
pub fn paged(all: Vec<Value>, q: &HashMap<String, String>) -> ApiResponse {
    paged_as("data", all, q)
}

pub fn paged_as(key: &str, all: Vec<Value>, q: &HashMap<String, String>) -> ApiResponse {
    let (page, per_page) = page_of(q);
    let start = (page - 1).saturating_mul(per_page);
    let chunk: Vec<Value> = all.iter().skip(start).take(per_page).cloned().collect();
    if chunk.is_empty() {
        return ApiResponse::no_content();
    }
    let more = all.len() > start + chunk.len();
    ApiResponse::json(
        200,
        json!({key: chunk, "info": {"per_page": per_page, "count": chunk.len(), "page": page, "more_records": more}}),
    )
}
