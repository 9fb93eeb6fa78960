//! In-memory state of the fake Zoho org and the CRM behaviour on top of it.
//!
//! Everything is synchronous and lives behind one mutex: requests are tiny and
//! a single lock keeps "counted/validated/stored" steps atomic, which makes
//! test assertions deterministic.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Map, Value, json};

use crate::contract::ContractViolation;
use crate::metadata::{self, MODULES};
use crate::scopes;
use crate::search::{self, Criteria, CriteriaError};
use crate::{RecordedRequest, SandboxConfig, SandboxError, SeedUser};

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

    // ---------------------------------------------------------------- users

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

    // ---------------------------------------------------------------- OAuth

    pub fn known_client(&self, client_id: &str) -> bool {
        client_id == self.cfg.client_id
    }

    pub fn redirect_allowed(&self, uri: &str) -> bool {
        self.cfg.redirect_uris.is_empty() || self.cfg.redirect_uris.iter().any(|r| r == uri)
    }

    /// Issues a grant code for the authorizing user.
    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        offline: bool,
        code_challenge: Option<String>,
        scopes: Vec<String>,
    ) -> String {
        let code = random_token("1000");
        self.codes.insert(
            code.clone(),
            GrantCode {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                user_id: self.authorizing_user.clone(),
                offline,
                expires: Instant::now() + self.cfg.grant_code_ttl,
                used: false,
                code_challenge,
                scopes,
            },
        );
        code
    }

    fn token_body(&self, access: &str, refresh: Option<&str>, scopes: &[String]) -> Value {
        let mut v = json!({
            "access_token": access,
            "scope": scopes.join(" "),
            "api_domain": self.base_url,
            "token_type": "Bearer",
            "expires_in": self.cfg.access_token_ttl.as_secs(),
        });
        if let (Some(r), Some(o)) = (refresh, v.as_object_mut()) {
            o.insert("refresh_token".into(), json!(r));
        }
        v
    }

    fn mint_access(&mut self, user_id: &str, refresh: Option<&str>, scopes: &[String]) -> String {
        let token = random_token("1000");
        self.access.insert(
            token.clone(),
            AccessToken {
                user_id: user_id.to_string(),
                refresh: refresh.map(str::to_string),
                expires: Instant::now() + self.cfg.access_token_ttl,
                revoked: false,
                scopes: scopes.to_vec(),
            },
        );
        // At most 15 live access tokens per refresh token: the 16th
        // invalidates the oldest (§1.7).
        if let Some(r) = refresh {
            let mut live: Vec<(&String, Instant)> = self
                .access
                .iter()
                .filter(|(_, a)| a.refresh.as_deref() == Some(r) && !a.revoked)
                .map(|(k, a)| (k, a.expires))
                .collect();
            if live.len() > 15 {
                live.sort_by_key(|(_, e)| *e);
                let oldest = live[0].0.clone();
                if let Some(a) = self.access.get_mut(&oldest) {
                    a.revoked = true;
                }
            }
        }
        token
    }

    /// `POST /oauth/v2/token`. Always HTTP 200, errors as `{"error":...}`.
    pub fn token(&mut self, p: &HashMap<String, String>) -> Value {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        if get("client_id") != self.cfg.client_id || get("client_secret") != self.cfg.client_secret
        {
            return json!({"error": "invalid_client"});
        }
        match get("grant_type") {
            "authorization_code" => {
                let code = get("code");
                let now = Instant::now();
                let Some(g) = self.codes.get_mut(code) else {
                    return json!({"error": "invalid_code"});
                };
                if g.used || g.expires <= now || g.client_id != get("client_id") {
                    g.used = true;
                    return json!({"error": "invalid_code"});
                }
                if g.redirect_uri != get("redirect_uri") {
                    return json!({"error": "invalid_redirect_uri"});
                }
                if let Some(challenge) = &g.code_challenge {
                    let verifier = get("code_verifier");
                    let expected = base64::Engine::encode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        sha2::Digest::finalize(sha2::Digest::chain_update(
                            <sha2::Sha256 as sha2::Digest>::new(),
                            verifier.as_bytes(),
                        )),
                    );
                    if verifier.is_empty() || expected != *challenge {
                        g.used = true;
                        return json!({"error": "invalid_code"});
                    }
                }
                g.used = true;
                let (user_id, offline, scopes) = (g.user_id.clone(), g.offline, g.scopes.clone());
                let refresh = offline.then(|| {
                    let r = random_token("1000");
                    self.refresh.insert(
                        r.clone(),
                        RefreshToken {
                            client_id: get("client_id").to_string(),
                            user_id: user_id.clone(),
                            revoked: false,
                            refreshes: VecDeque::new(),
                            scopes: scopes.clone(),
                        },
                    );
                    self.issued_refresh.push(r.clone());
                    r
                });
                self.enforce_refresh_token_cap(&user_id);
                let access = self.mint_access(&user_id, refresh.as_deref(), &scopes);
                self.token_body(&access, refresh.as_deref(), &scopes)
            }
            "refresh_token" => {
                let rt = get("refresh_token").to_string();
                let now = Instant::now();
                let window = self.cfg.refresh_window;
                let limit = self.refresh_limit as usize;
                let Some(r) = self.refresh.get_mut(&rt) else {
                    return json!({"error": "invalid_code"});
                };
                if r.revoked || r.client_id != get("client_id") {
                    return json!({"error": "invalid_code"});
                }
                while r
                    .refreshes
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    r.refreshes.pop_front();
                }
                if r.refreshes.len() >= limit {
                    return json!({
                        "error": "Access Denied",
                        "error_description": "You have made too many requests continuously. Please try again after some time.",
                        "status": "failure"
                    });
                }
                r.refreshes.push_back(now);
                let (user_id, scopes) = (r.user_id.clone(), r.scopes.clone());
                self.token_refreshes += 1;
                let access = self.mint_access(&user_id, Some(&rt), &scopes);
                self.token_body(&access, None, &scopes)
            }
            _ => json!({"error": "unsupported_grant_type"}),
        }
    }

    /// Max 20 refresh tokens per user per client: the 21st silently deletes
    /// the oldest and its access tokens (§1.7).
    fn enforce_refresh_token_cap(&mut self, user_id: &str) {
        let mine: Vec<String> = self
            .refresh
            .iter()
            .filter(|(_, r)| r.user_id == user_id && !r.revoked)
            .map(|(k, _)| k.clone())
            .collect();
        if mine.len() > 20 {
            // HashMap order is arbitrary; any one is fine for a sandbox.
            if let Some(victim) = mine.first() {
                self.revoke(victim);
            }
        }
    }

    /// Revokes a refresh token and its access tokens; false if unknown.
    pub fn revoke(&mut self, token: &str) -> bool {
        let Some(r) = self.refresh.get_mut(token) else {
            return false;
        };
        if r.revoked {
            return false;
        }
        r.revoked = true;
        for a in self.access.values_mut() {
            if a.refresh.as_deref() == Some(token) {
                a.revoked = true;
            }
        }
        true
    }

    pub fn revoke_all_refresh_tokens(&mut self) {
        let all: Vec<String> = self.refresh.keys().cloned().collect();
        for t in all {
            self.revoke(&t);
        }
    }

    /// The access token in `Authorization: Zoho-oauthtoken …` expires now.
    pub fn expire_access_token(&mut self, header: Option<&str>) {
        let token = header
            .and_then(|h| h.strip_prefix("Zoho-oauthtoken "))
            .map(str::trim);
        if let Some(a) = token.and_then(|t| self.access.get_mut(t)) {
            a.expires = Instant::now();
        }
    }

    pub fn expire_access_tokens(&mut self) {
        let past = Instant::now();
        for a in self.access.values_mut() {
            a.expires = past;
        }
    }

    /// Mints tokens for a user without the browser dance (test shortcut).
    pub fn issue_tokens(&mut self, email: &str) -> Result<IssuedTokens, SandboxError> {
        let user_id = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .map(|u| u.id.clone())
            .ok_or_else(|| SandboxError::UnknownUser(email.to_string()))?;
        let r = random_token("1000");
        let everything: Vec<String> = scopes::EVERYTHING.iter().map(|s| (*s).to_owned()).collect();
        self.refresh.insert(
            r.clone(),
            RefreshToken {
                client_id: self.cfg.client_id.clone(),
                user_id: user_id.clone(),
                revoked: false,
                refreshes: VecDeque::new(),
                scopes: everything.clone(),
            },
        );
        self.issued_refresh.push(r.clone());
        let a = self.mint_access(&user_id, Some(&r), &everything);
        Ok(IssuedTokens {
            access_token: a,
            refresh_token: r,
        })
    }

    /// Resolves an `Authorization` header to the calling user and the
    /// scopes their token was granted.
    pub fn authenticate(&self, header: Option<&str>) -> Option<(String, Vec<String>)> {
        let token = header?.strip_prefix("Zoho-oauthtoken ")?.trim();
        let a = self.access.get(token)?;
        if a.revoked || a.expires <= Instant::now() {
            return None;
        }
        let u = self.user(&a.user_id)?;
        u.active.then(|| (u.id.clone(), a.scopes.clone()))
    }

    /// The grants (refresh tokens) issued to the user `email`, oldest first.
    pub fn grants_of(&self, email: &str) -> Vec<GrantInfo> {
        let Some(user) = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
        else {
            return Vec::new();
        };
        self.issued_refresh
            .iter()
            .filter_map(|t| self.refresh.get(t))
            .filter(|r| r.user_id == user.id)
            .map(|r| GrantInfo {
                scopes: r.scopes.clone(),
                revoked: r.revoked,
            })
            .collect()
    }

    /// Revokes every grant of the user `email` (as they would under
    /// Connected Apps); how many were live.
    pub fn revoke_grants_of(&mut self, email: &str) -> usize {
        let Some(user_id) = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .map(|u| u.id.clone())
        else {
            return 0;
        };
        let theirs: Vec<String> = self
            .refresh
            .iter()
            .filter(|(_, r)| r.user_id == user_id && !r.revoked)
            .map(|(t, _)| t.clone())
            .collect();
        theirs.iter().filter(|t| self.revoke(t)).count()
    }

    /// Whether `caller` may read the record: in an owner-only module, a
    /// user who is not an administrator reads only the records they own.
    pub fn may_read(&self, caller: &str, module: &str, id: &str) -> bool {
        if !self.owner_only_modules.iter().any(|m| m == module)
            || self.user(caller).is_some_and(User::is_admin)
        {
            return true;
        }
        self.find(module, id).is_none_or(|r| {
            r.data
                .get("Owner")
                .and_then(|o| o.get("id"))
                .and_then(Value::as_str)
                == Some(caller)
        })
    }

    // ------------------------------------------------------- faults, limits

    pub fn set_fault(&mut self, n: u32, status: u16, code: &str) {
        self.fault = (n > 0).then(|| Fault {
            remaining: n,
            status,
            code: code.to_string(),
        });
    }

    pub fn lose_next_response(&mut self, method: &str, path: &str, status: u16) {
        self.lost_response = Some((method.to_owned(), path.to_owned(), status));
    }

    /// The answer that replaces a carried-out request's, if it is the one
    /// whose answer is to be lost.
    pub fn take_lost_response(&mut self, method: &str, path: &str) -> Option<ApiResponse> {
        let (m, p, status) = self.lost_response.as_ref()?;
        if m != method || p != path {
            return None;
        }
        let status = *status;
        self.lost_response = None;
        Some(error(
            status,
            "INTERNAL_ERROR",
            default_message("INTERNAL_ERROR"),
            json!({}),
        ))
    }

    pub fn take_fault(&mut self) -> Option<ApiResponse> {
        let f = self.fault.as_mut()?;
        f.remaining = f.remaining.saturating_sub(1);
        let resp = error(f.status, &f.code, default_message(&f.code), json!({}));
        if f.remaining == 0 {
            self.fault = None;
        }
        Some(resp)
    }

    /// Charges API credits; `Err` with the 429 answer once the limit is hit.
    pub fn charge(&mut self, cost: u64) -> Result<(), ApiResponse> {
        if let Some(limit) = self.credit_limit
            && self.credits_used + cost > limit
        {
            return Err(error(
                429,
                "TOO_MANY_REQUESTS",
                "You have reached the API credit limit for the day",
                json!({}),
            ));
        }
        self.credits_used += cost;
        Ok(())
    }

    // ------------------------------------------------------------- metadata

    pub fn is_module(&self, m: &str) -> bool {
        self.records.contains_key(m)
    }

    fn module_def(&self, m: &str) -> Option<&'static metadata::ModuleDef> {
        MODULES.iter().find(|d| d.api_name == m)
    }

    fn api_module(&self, m: &str) -> bool {
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

    fn field(&self, module: &str, api_name: &str) -> Option<&Value> {
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
            serde_json::from_str(include_str!("templates/org.json")).unwrap_or(json!({}));
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

    // -------------------------------------------------------------- records

    fn find(&self, module: &str, id: &str) -> Option<&StoredRecord> {
        self.records
            .get(module)?
            .iter()
            .find(|r| r.data.get("id").and_then(Value::as_str) == Some(id))
    }

    fn find_mut(&mut self, module: &str, id: &str) -> Option<&mut StoredRecord> {
        self.records
            .get_mut(module)?
            .iter_mut()
            .find(|r| r.data.get("id").and_then(Value::as_str) == Some(id))
    }

    fn record_name(&self, module: &str, data: &Map<String, Value>) -> String {
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
    fn render(&self, module: &str, r: &StoredRecord, only: Option<&[String]>) -> Value {
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

    fn caller_tz(&self, caller: &str) -> String {
        self.user(caller)
            .map(|u| u.time_zone.clone())
            .unwrap_or_else(|| "UTC".to_string())
    }

    /// Validates and converts one input record (create or update).
    fn validate_item(
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
                "jsonarray" => {
                    if !v.is_array() {
                        return Err(invalid_type(dt));
                    }
                    v.clone()
                }
                "boolean" => {
                    if !v.is_boolean() {
                        return Err(invalid_type(dt));
                    }
                    v.clone()
                }
                "integer" => {
                    if !(v.is_i64() || v.is_u64()) {
                        return Err(invalid_type(dt));
                    }
                    v.clone()
                }
                "double" => {
                    if !v.is_number() {
                        return Err(invalid_type(dt));
                    }
                    v.clone()
                }
                _ => v.clone(),
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

    fn success_details(&self, data: &Map<String, Value>) -> Value {
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
    fn insert(
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

    fn module_error(&self) -> ApiResponse {
        error(
            400,
            "INVALID_MODULE",
            "The module name given seems to be invalid",
            json!({"resource_path_index": 0}),
        )
    }

    fn parse_data(body: &Value, max: usize) -> Result<&Vec<Value>, ApiResponse> {
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

    fn write_status(results: &[Value], all_ok: u16) -> u16 {
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
                for (k, v) in valid {
                    r.data.insert(k, v);
                }
                r.data
                    .insert("Modified_Time".into(), json!(zoho_time(&tz, now_utc())));
                r.data.insert("Modified_By".into(), me);
                r.touched = Instant::now();
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

    // --------------------------------------------------------------- search

    fn search_value_ok(v: &str) -> bool {
        v.trim().chars().count() >= 2
    }

    /// `GET /crm/v8/{module}/search`.
    pub fn search(&self, module: &str, q: &HashMap<String, String>) -> ApiResponse {
        if !self.api_module(module) || module == "Notes" {
            return error(
                400,
                "INVALID_MODULE",
                "The module name given seems to be invalid",
                json!({"resource_path_index": 0}),
            );
        }
        let converted = q.get("converted").map(String::as_str).unwrap_or("false");
        if !matches!(converted, "true" | "false" | "both") {
            return invalid_query("converted", "invalid value for converted", converted);
        }
        let fields_by_type = |t: &str| -> Vec<String> {
            self.fields_of(module)
                .iter()
                .filter(|f| f.get("data_type").and_then(Value::as_str) == Some(t))
                .filter_map(|f| {
                    f.get("api_name")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .collect()
        };
        // Precedence: criteria > email > phone > word (reference §4).
        let matcher: RecordMatcher = if let Some(c) = q.get("criteria") {
            let parsed = match search::parse(c) {
                Ok(p) => p,
                Err(CriteriaError::Operator { field, operator }) => {
                    return ApiResponse::json(
                        400,
                        json!({"code": "INVALID_QUERY", "details": {"operator": operator, "reason": "invalid operator found", "api_name": field},
                               "message": "Invalid query formed", "status": "error"}),
                    );
                }
                Err(CriteriaError::TooMany(_)) => {
                    return error(
                        400,
                        "CRITERIA_LIMIT_EXCEEDED",
                        "no of criterium that can be given exceed the limit 15",
                        json!({}),
                    );
                }
                Err(CriteriaError::Syntax(_)) => {
                    return ApiResponse::json(
                        400,
                        json!({"code": "INVALID_QUERY", "details": {"api_name": "criteria", "param_name": "criteria"},
                               "message": "Invalid query formed", "status": "error"}),
                    );
                }
            };
            for f in parsed.fields() {
                if self.field(module, f).is_none() && f != "id" {
                    return ApiResponse::json(
                        400,
                        json!({"code": "INVALID_QUERY", "details": {"reason": "invalid field found", "api_name": f},
                               "message": "Invalid query formed", "status": "error"}),
                    );
                }
            }
            if let Some(bad) = first_short_value(&parsed) {
                return invalid_query(
                    &bad.0,
                    "the value should have at least 2 characters",
                    &bad.1,
                );
            }
            let phone_fields = fields_by_type("phone");
            Box::new(move |r| eval(&parsed, r, &phone_fields))
        } else if let Some(e) = q.get("email") {
            if !Self::search_value_ok(e) {
                return invalid_query("email", "the value should have at least 2 characters", e);
            }
            let fs = fields_by_type("email");
            let e = e.trim().to_lowercase();
            Box::new(move |r| {
                fs.iter().any(|f| {
                    r.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| v.to_lowercase() == e)
                })
            })
        } else if let Some(p) = q.get("phone") {
            if !Self::search_value_ok(p) {
                return invalid_query("phone", "the value should have at least 2 characters", p);
            }
            let fs = fields_by_type("phone");
            let n = normalise_phone(p);
            Box::new(move |r| {
                fs.iter().any(|f| {
                    r.get(f)
                        .and_then(Value::as_str)
                        .is_some_and(|v| normalise_phone(v) == n)
                })
            })
        } else if let Some(w) = q.get("word") {
            if !Self::search_value_ok(w) {
                return invalid_query("word", "the value should have at least 2 characters", w);
            }
            let w = w.trim().to_lowercase();
            Box::new(move |r| {
                r.iter()
                    .filter(|(k, _)| !k.starts_with('$') && k.as_str() != "id")
                    .any(|(_, v)| v.as_str().is_some_and(|s| s.to_lowercase().contains(&w)))
            })
        } else {
            return ApiResponse::json(
                400,
                json!({"code": "EXPECTED_PARAM_MISSING", "details": {"param_names": ["criteria", "email", "phone", "word"]},
                       "message": "One of the expected parameter is missing", "status": "error"}),
            );
        };
        let delay = self.cfg.search_index_delay;
        let now = Instant::now();
        let fields = fields_param(q);
        let hits: Vec<Value> = self
            .records
            .get(module)
            .map(|rs| {
                rs.iter()
                    .filter(|r| now.duration_since(r.touched) >= delay)
                    .filter(|r| converted_filter(module, r, converted))
                    .filter(|r| matcher(&r.data))
                    .map(|r| self.render(module, r, fields.as_deref()))
                    .collect()
            })
            .unwrap_or_default();
        // Only the first 2000 matches can be paged (reference §4).
        let (page, per_page) = page_of(q);
        if (page - 1).saturating_mul(per_page) >= 2000 {
            return error(
                400,
                "LIMIT_REACHED",
                "maximum response iteration limit reached",
                json!({"limit": "2000"}),
            );
        }
        paged(hits, q)
    }

    // ---------------------------------------------------------------- notes

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
                        for (k, v) in valid {
                            r.data.insert(k, v);
                        }
                        r.data
                            .insert("Modified_Time".into(), json!(zoho_time(&tz, now_utc())));
                        r.data.insert("Modified_By".into(), me);
                        r.touched = Instant::now();
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

    // ----------------------------------------------------------- conversion

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

    // ---------------------------------------------------------- attachments

    pub fn add_attachment(
        &mut self,
        module: &str,
        id: &str,
        file_name: &str,
        size: usize,
        caller: &str,
    ) -> ApiResponse {
        if !self.api_module(module) {
            return self.module_error();
        }
        let Some(parent_name) = self
            .find(module, id)
            .map(|r| self.record_name(module, &r.data))
        else {
            return error(
                400,
                "INVALID_DATA",
                "the id given seems to be invalid",
                json!({"id": id}),
            );
        };
        if size > self.cfg.attachment_max_bytes {
            // attachments.json documents only INVALID_DATA for 400 (ZFS uses
            // FILE_SIZE_MORE_THAN_ALLOWED_SIZE; the Attachments cap is
            // unconfirmed), so the contract's code is used.
            return error(
                400,
                "INVALID_DATA",
                "file size exceeds the allowed limit",
                json!({"api_name": "file", "maximum_size": self.cfg.attachment_max_bytes}),
            );
        }
        let aid = self.new_id();
        let tz = self.caller_tz(caller);
        let now = zoho_time(&tz, now_utc());
        let me = self.user(caller).map(User::minified).unwrap_or(Value::Null);
        let module_id = self.module_ids.get(module).cloned().unwrap_or_default();
        let att = json!({
            "id": aid, "File_Name": file_name, "Size": size.to_string(), "$file_id": random_token("file"),
            "Parent_Id": {"module": {"api_name": module, "id": module_id}, "id": id, "name": parent_name},
            "Owner": me, "Created_By": me, "Modified_By": me, "Created_Time": now, "Modified_Time": now,
            "$editable": true, "$type": "Attachment", "$se_module": module, "$link_url": null, "$state": "save",
        });
        self.attachments.push(att.clone());
        ApiResponse::json(
            200,
            json!({"data": [{"code": "SUCCESS", "message": "attachment uploaded successfully", "status": "success",
                   "details": {"id": aid, "Created_Time": now, "Modified_Time": now, "Created_By": me, "Modified_By": me}}]}),
        )
    }

    pub fn list_attachments(
        &self,
        module: &str,
        id: &str,
        q: &HashMap<String, String>,
    ) -> ApiResponse {
        if !self.api_module(module) {
            return self.module_error();
        }
        let list: Vec<Value> = self
            .attachments
            .iter()
            .filter(|a| {
                a.pointer("/Parent_Id/id").and_then(Value::as_str) == Some(id)
                    && a.pointer("/Parent_Id/module/api_name")
                        .and_then(Value::as_str)
                        == Some(module)
            })
            .cloned()
            .collect();
        paged(list, q)
    }

    pub fn attachments(&self) -> Vec<Value> {
        self.attachments.clone()
    }

    // ------------------------------------------------------- library access

    pub fn records_json(&self, module: &str) -> Vec<Value> {
        self.records
            .get(module)
            .map(|rs| rs.iter().map(|r| self.render(module, r, None)).collect())
            .unwrap_or_default()
    }

    pub fn record_json(&self, module: &str, id: &str) -> Option<Value> {
        self.find(module, id).map(|r| self.render(module, r, None))
    }

    pub fn notes_of(&self, module: &str, id: &str) -> Vec<Value> {
        self.records
            .get("Notes")
            .map(|rs| {
                rs.iter()
                    .filter(|r| note_parent(&r.data) == Some((module, id)))
                    .map(|r| self.render("Notes", r, None))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Inserts a record directly (seeding), bypassing HTTP but not validation.
    pub fn seed_record(&mut self, module: &str, data: Value) -> Result<String, SandboxError> {
        if !self.api_module(module) || module == "Notes" {
            return Err(SandboxError::UnknownModule(module.to_string()));
        }
        let caller = self.authorizing_user.clone();
        let valid = self
            .validate_item(module, 0, &data, true, None)
            .map_err(|e| SandboxError::Rejected(e.to_string()))?;
        let stored = self.insert(module, valid, &caller);
        Ok(stored
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// A person deletes a record in Zoho: it goes, with its notes and
    /// attachments (Zoho moves them to the recycle bin together).
    pub fn delete_record(&mut self, module: &str, id: &str) -> bool {
        let Some(records) = self.records.get_mut(module) else {
            return false;
        };
        let before = records.len();
        records.retain(|r| r.data.get("id").and_then(Value::as_str) != Some(id));
        let deleted = records.len() < before;
        if let Some(notes) = self.records.get_mut("Notes") {
            notes.retain(|n| {
                n.data
                    .get("Parent_Id")
                    .and_then(|p| p.get("id"))
                    .and_then(Value::as_str)
                    != Some(id)
            });
        }
        self.attachments
            .retain(|a| a.pointer("/Parent_Id/id").and_then(Value::as_str) != Some(id));
        deleted
    }

    pub fn convert_lead_helper(&mut self, id: &str) -> Result<String, SandboxError> {
        let caller = self.authorizing_user.clone();
        let r = self.convert_lead(id, None, &caller);
        if r.status != 200 {
            return Err(SandboxError::Rejected(
                r.body.map(|b| b.to_string()).unwrap_or_default(),
            ));
        }
        r.body
            .as_ref()
            .and_then(|b| b.pointer("/data/0/details/Contacts/id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SandboxError::Rejected("no contact id".into()))
    }
}

/// Predicate a search applies to each stored record.
type RecordMatcher = Box<dyn Fn(&Map<String, Value>) -> bool>;

fn note_parent(data: &Map<String, Value>) -> Option<(&str, &str)> {
    let p = data.get("Parent_Id")?;
    Some((
        p.pointer("/module/api_name")?.as_str()?,
        p.get("id")?.as_str()?,
    ))
}

fn converted_filter(module: &str, r: &StoredRecord, converted: &str) -> bool {
    if module != "Leads" {
        return true;
    }
    let is = r.data.get("Converted__s") == Some(&json!(true));
    match converted {
        "true" => is,
        "both" => true,
        _ => !is,
    }
}

fn invalid_query(api_name: &str, reason: &str, value: &str) -> ApiResponse {
    ApiResponse::json(
        400,
        json!({"code": "INVALID_QUERY", "details": {"reason": reason, "api_name": api_name, "value": value},
               "message": "Invalid query formed", "status": "error"}),
    )
}

fn first_short_value(c: &Criteria) -> Option<(String, String)> {
    match c {
        Criteria::Cond { field, values, .. } => values
            .iter()
            .find(|v| v.trim().chars().count() < 2 && !v.trim().is_empty() || v.trim().is_empty())
            .map(|v| (field.clone(), v.clone())),
        Criteria::And(a, b) | Criteria::Or(a, b) => {
            first_short_value(a).or_else(|| first_short_value(b))
        }
    }
}

fn value_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Evaluates criteria against a record. On Zoho's Search API `equals` on
/// text behaves like "contains" (reference §4); phone fields compare
/// normalised values for equality (see [`normalise_phone`]).
fn eval(c: &Criteria, r: &Map<String, Value>, phone_fields: &[String]) -> bool {
    match c {
        Criteria::And(a, b) => eval(a, r, phone_fields) && eval(b, r, phone_fields),
        Criteria::Or(a, b) => eval(a, r, phone_fields) || eval(b, r, phone_fields),
        Criteria::Cond { field, op, values } => {
            let is_phone = phone_fields.iter().any(|p| p == field);
            let norm = |s: &str| {
                if is_phone {
                    normalise_phone(s)
                } else {
                    s.trim().to_lowercase()
                }
            };
            let stored = norm(&value_text(r.get(field)));
            let eq = |v: &String| {
                let q = norm(v);
                if is_phone || field == "id" {
                    stored == q
                } else {
                    !stored.is_empty() && stored.contains(&q)
                }
            };
            match op.as_str() {
                "equals" | "in" => values.iter().any(eq),
                "not_equal" | "not_in" => !values.iter().any(eq),
                "starts_with" => values
                    .iter()
                    .any(|v| !stored.is_empty() && stored.starts_with(&norm(v))),
                "greater_than" => values
                    .first()
                    .is_some_and(|v| stored.as_str() > norm(v).as_str()),
                "greater_equal" => values
                    .first()
                    .is_some_and(|v| stored.as_str() >= norm(v).as_str()),
                "less_than" => values
                    .first()
                    .is_some_and(|v| stored.as_str() < norm(v).as_str()),
                "less_equal" => values
                    .first()
                    .is_some_and(|v| stored.as_str() <= norm(v).as_str()),
                "between" => match (values.first(), values.get(1)) {
                    (Some(a), Some(b)) => {
                        stored.as_str() >= norm(a).as_str() && stored.as_str() <= norm(b).as_str()
                    }
                    _ => false,
                },
                _ => false,
            }
        }
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

impl Store {
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
