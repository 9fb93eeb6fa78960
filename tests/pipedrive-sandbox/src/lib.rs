//! Pipedrive sandbox: a local HTTP server that behaves like Pipedrive's OAuth
//! server and REST API (v1 and v2), for end-to-end tests and the local demo.
//! One origin serves both: token responses name the sandbox's own base URL
//! as `api_domain`.
//!
//! Served: `/oauth/authorize`, `/oauth/token`, `/oauth/token/`,
//! `/oauth/revoke`; the API under `/v1/…` and `/api/v1/…` (v1) and
//! `/api/v2/…` (v2) — the operations listed by [`implemented_operations`];
//! other operations of the OpenAPI files answer 501; `/__sandbox/…` admin
//! endpoints for the demo.
//!
//! Behaviour follows the team's reference (`shared/reference/pipedrive.md`)
//! and Pipedrive's OpenAPI files (embedded from `oas/`), which also supply
//! every operation's token cost (`x-token-cost`) and scopes
//! (`security.oauth2`). Requests and responses are checked against the
//! files ([`contract`]); violations are recorded, never enforced.
//!
//! # Documented facts the sandbox reproduces
//! * OAuth: authorize redirect with `code` and `state`, `error=user_denied`
//!   on denial; registered `redirect_uri` must match; codes single-use,
//!   5-minute expiry; token endpoint takes client credentials in HTTP Basic
//!   only and a form body only; `expires_in` 3599, `token_type` Bearer,
//!   comma-separated `scope` with `base`, `api_domain`; refresh rotates the
//!   refresh token; refresh tokens die after 60 idle days; the documented
//!   400 messages (`Missing parameter: grant_type`, `Invalid grant:
//!   refresh_token is invalid`, `Invalid request: content must be
//!   application/x-www-form-urlencoded`, …); revoking a refresh token
//!   uninstalls the app for that user; the uninstall notice (`DELETE` to the
//!   callback with Basic client credentials and `{client_id, company_id,
//!   user_id, timestamp}`).
//! * API: Bearer tokens; 401 `{"success":false,"error":"unauthorized
//!   access","errorCode":401}`; "Scope and URL mismatch"; malformed
//!   `Authorization` → "Invalid request: malformed authorization header";
//!   the success/error envelopes; v1 `start`/`limit` and v2 `limit` (≤ 500)
//!   /`cursor` pagination; v2 strict types; lead 201 and 404 "requested lead
//!   not found"; leads need a person or an organization, get UUID ids and
//!   `source_name` "API"; conversion is asynchronous, moves notes and files
//!   and deletes the lead, the deal gets `source_lead_id`; notes HTML is
//!   sanitised and capped at 100,000 characters; daily token budget
//!   `30,000 × plan multiplier × seats` per company charged with
//!   `x-token-cost`, 429 when spent; burst limits per token over 2 s (OAuth
//!   app numbers per plan) and 10 / 2 s for search; `x-ratelimit-limit`,
//!   `-remaining`, `-reset` headers; custom-field keys are 40-character
//!   hashes that differ per company.
//!
//! # The sandbox's choices where the reference says "unconfirmed" or is silent
//! * Token-endpoint error bodies: RFC 6749 `{"error", "error_description"}`
//!   carrying the documented message; all token errors are 400. Revoke
//!   answers 200 with an empty body, also for unknown tokens (RFC 7009).
//! * `/oauth/authorize` skips the consent page and redirects at once as the
//!   "authorizing user"; unknown client or bad `redirect_uri` → 400 page.
//! * Malformed `Authorization` (not `Bearer <token>`) answers 400 (the
//!   status table that names the message does not survive in the stored
//!   docs); a missing header is a 401. Personal API tokens (`x-api-token`)
//!   are not accepted (Marketplace apps cannot use them), so
//!   `x-daily-requests-left` is never sent.
//! * 403 for a scope mismatch (status assumed by the reference); the error
//!   envelope `{success:false, error, error_info, data:null,
//!   additional_data:null}` for every other API error, messages of the form
//!   `Validation failed: <field>: <problem>` for v2 validation.
//! * 429 body: the error envelope with "Request over limit" and
//!   `errorCode: 429`, the same for budget and burst (tell them apart by the
//!   headers); no `Retry-After` unless `retry_after_header` is set. A call
//!   is refused when its cost would take the day's usage past the budget;
//!   refused, unauthenticated (401) and scope-refused (403) calls cost
//!   nothing; every admitted call costs its `x-token-cost`, whatever its
//!   status. The day rolls over at midnight UTC. Search calls count only
//!   against the search window (which is per token, like the general one).
//! * Person search compares values exactly as stored (no digit or
//!   punctuation normalisation), case-insensitively; `exact_match=true`
//!   compares whole values, otherwise substrings; `notes` searches the text
//!   of notes attached to the person; results are ordered by a score (1 for
//!   a whole-value match, else the share of the value the term covers).
//!   Searches see persons as they were `search_index_delay` ago.
//! * v2 persons/deals: unknown body fields are rejected (400); `name`
//!   (persons) and `title` (deals) are required on create; phones/emails get
//!   label `work` when none is given and exactly one `primary`; `custom_fields`
//!   values are type-checked against the field metadata (`set` values `[]`
//!   refused — send `null`); a deal needs a person or an organization;
//!   deleted persons and deals answer 404; `source_lead_id` appears only with
//!   `include_fields=source_lead_id`.
//! * Leads: PATCH on an archived lead may only change `is_archived`;
//!   `visible_to` 5/7 refused on Lite/Growth. Conversion: `running` for
//!   `conversion_polls` status polls, then `completed` (or `failed` when the
//!   lead vanished); the deal keeps the lead's origin/channel; the same for
//!   UI conversions ([`PipedriveSandboxHandle::convert_lead_in_ui`]).
//! * Notes: allow-list in [`sanitize`]; targets must exist; answers 200 (as
//!   the spec says) on create; DELETE removes the note (GET → 404).
//! * Files: at least one link field required; uploads over `file_max_bytes`
//!   (default 50 MiB; the real maximum is not documented) → 413 envelope.
//! * Organizations exist only as seeded ids (one per company) for links,
//!   readable one at a time (`GET /api/v2/organizations/{id}`).
//! * Every company (the home one and the foreign ones) has its own users,
//!   records, budget, pipelines, lead labels and field keys; a token sees
//!   only its company.
//! * Faults (`fail_next`, `slow_next`, `lose_next_response`) act on API
//!   calls only, never on the OAuth server; an injected failure costs no
//!   tokens, a lost response costs what the call cost.
//! * Operations of the files the sandbox does not implement answer 501 with
//!   the error envelope (before authentication), so a gap shows up as such.
//! * Time stamps: v2 RFC 3339 (`2026-05-04T10:11:12Z`), leads RFC 3339 with
//!   milliseconds, v1 notes/files/users `YYYY-MM-DD HH:MM:SS` (UTC).

pub mod config;
pub mod contract;
pub mod sanitize;
mod server;
pub mod spec;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

pub use config::{DEFAULT_SCOPES, PipedriveSandboxConfig, Plan, SeedCompany, SeedUser};
pub use contract::ContractViolation;
pub use store::IssuedTokens;

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot bind the sandbox listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("OpenAPI files: {0}")]
    Spec(#[from] spec::SpecError),
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("invalid field definition: {0}")]
    InvalidField(String),
    #[error("rejected by the sandbox: {0}")]
    Rejected(String),
    #[error("uninstall notice failed: {0}")]
    Notice(String),
}

/// One request the sandbox received (admin `/__sandbox/` calls excluded).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string, still percent-encoded ("" when absent).
    pub query: String,
    /// JSON body, or a form/multipart body as a JSON object of strings
    /// (an uploaded file as its file name).
    pub body: Option<Value>,
    /// Tokens charged (the operation's `x-token-cost`; 0 when refused).
    pub token_cost: u64,
    pub status: u16,
    pub response_body: Option<Value>,
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub contract_checks: bool,
    pub max_body: usize,
    pub faults: sandbox_kit::faults::Faults,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, store::Store> {
        // A panicking handler must not wedge every later call.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Labels (`GET /api/v2/persons/{id}`, …) of the operations served.
pub fn implemented_operations() -> Vec<String> {
    server::implemented()
}

/// Entry point.
pub struct PipedriveSandbox;

impl PipedriveSandbox {
    /// Binds 127.0.0.1:`config.port` and serves in the background. The
    /// OpenAPI files are parsed on the first start in the process.
    pub async fn start(
        config: PipedriveSandboxConfig,
    ) -> Result<PipedriveSandboxHandle, SandboxError> {
        spec::spec()?;
        let bound = sandbox_kit::Bound::loopback(config.port).await?;
        let max_body = config.file_max_bytes.saturating_add(1024 * 1024);
        let shared = Arc::new(Shared {
            contract_checks: config.contract_checks,
            max_body,
            faults: sandbox_kit::faults::Faults::default(),
            store: Mutex::new(store::Store::new(config, bound.base_url.clone())),
        });
        let served = bound.serve(
            server::router(Arc::clone(&shared), max_body),
            "pipedrive sandbox",
        );
        Ok(PipedriveSandboxHandle { shared, served })
    }
}

/// Control and inspection handle (cheap to clone). Helpers act on the home
/// company, "in the UI", as the authorizing user.
#[derive(Clone)]
pub struct PipedriveSandboxHandle {
    shared: Arc<Shared>,
    served: sandbox_kit::Served,
}

impl std::fmt::Debug for PipedriveSandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipedriveSandboxHandle")
            .field("base_url", &self.served.base_url)
            .finish()
    }
}

impl PipedriveSandboxHandle {
    fn st(&self) -> MutexGuard<'_, store::Store> {
        self.shared.store()
    }

    /// `http://127.0.0.1:<port>`: OAuth server and `api_domain`.
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    /// The home company's id.
    pub fn company_id(&self) -> u64 {
        self.st().home_company()
    }

    /// Persons of the home company (v2 shape; deleted ones with `is_deleted`).
    pub fn persons(&self) -> Vec<Value> {
        let st = self.st();
        st.persons_json(st.home_company())
    }

    /// A person of the home company, deleted or not.
    pub fn person(&self, id: u64) -> Option<Value> {
        let st = self.st();
        st.persons
            .get(&id)
            .filter(|p| p.company_id == st.home_company())
            .map(store::Person::json)
    }

    /// The home company's seeded organization: (id, name).
    pub fn organization(&self) -> Option<(u64, String)> {
        let st = self.st();
        let company = st.home_company();
        st.orgs
            .iter()
            .find(|(_, c, _)| *c == company)
            .map(|(id, _, name)| (*id, name.clone()))
    }

    /// Creates a person (v2 body, v2 validation) as the authorizing user;
    /// it counts as just changed for the search index delay.
    pub fn insert_person(&self, person: Value) -> Result<u64, SandboxError> {
        self.st().insert_person(&person)
    }

    /// Deletes a person as a user would in Pipedrive.
    pub fn delete_person(&self, id: u64) -> bool {
        let mut st = self.st();
        let home = st.home_company();
        st.delete_person_by_id(home, id)
    }

    /// Leads of the home company (converted and deleted leads are gone).
    pub fn leads(&self) -> Vec<Value> {
        let st = self.st();
        st.leads_json(st.home_company())
    }

    /// Deals of the home company (`source_lead_id` included).
    pub fn deals(&self) -> Vec<Value> {
        let st = self.st();
        st.deals_json(st.home_company())
    }

    pub fn notes(&self) -> Vec<Value> {
        let st = self.st();
        st.notes_json(st.home_company())
    }

    /// Notes attached to `target_kind` (`person`, `deal`, `lead`, `org`) `id`.
    pub fn notes_of(&self, target_kind: &str, id: &str) -> Vec<Value> {
        let st = self.st();
        st.notes_of(st.home_company(), target_kind, id)
    }

    pub fn files(&self) -> Vec<Value> {
        let st = self.st();
        st.files_json(st.home_company())
    }

    /// Users of the home company in the `GET /v1/users` shape.
    pub fn users(&self) -> Vec<Value> {
        let st = self.st();
        st.users_json(st.home_company(), st.oauth.authorizing_user)
    }

    /// Adds (or replaces) a user; returns its id.
    pub fn add_user(&self, seed: SeedUser) -> u64 {
        self.st().add_user(seed)
    }

    /// Which user "logs in and approves" the next `/oauth/authorize`.
    pub fn set_authorizing_user(&self, email: &str) -> Result<(), SandboxError> {
        self.st().set_authorizing_user(email)
    }

    /// The next `/oauth/authorize` redirects with `error=user_denied`.
    pub fn deny_next_authorization(&self) {
        self.st().oauth.deny_next = true;
    }

    /// Tokens for a user without the browser round trip.
    pub fn issue_tokens(&self, email: &str) -> Result<IssuedTokens, SandboxError> {
        self.st().issue_tokens(email)
    }

    /// Scopes of tokens issued from now on.
    pub fn set_app_scopes(&self, scopes: &[&str]) {
        self.st().cfg.app_scopes = scopes.iter().map(|s| s.to_string()).collect();
    }

    /// Adds a custom person field (`{name, field_type, options?}`); returns
    /// its 40-character key.
    pub fn add_person_field(&self, field: Value) -> Result<String, SandboxError> {
        let mut st = self.st();
        let home = st.home_company();
        st.add_field(home, store::Entity::Person, &field)
    }

    /// Adds a custom deal (and lead) field; returns its key.
    pub fn add_deal_field(&self, field: Value) -> Result<String, SandboxError> {
        let mut st = self.st();
        let home = st.home_company();
        st.add_field(home, store::Entity::Deal, &field)
    }

    /// Key of a home-company field by entity (`person`, `deal`) and name.
    pub fn field_key(&self, entity: &str, name: &str) -> Option<String> {
        let st = self.st();
        let entity = store::Entity::parse(entity)?;
        st.fields_of(st.home_company(), entity)
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| f.key.clone())
    }

    /// Every issued access token expires now (next API call → 401).
    pub fn expire_access_tokens(&self) {
        self.st().expire_access_tokens();
    }

    /// Every refresh token (and access token) stops working.
    pub fn revoke_refresh_tokens(&self) {
        self.st().revoke_refresh_tokens();
    }

    /// Successful `grant_type=refresh_token` exchanges so far.
    pub fn token_refresh_count(&self) -> u64 {
        self.st().oauth.refreshes
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.st().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.st().requests.clear();
    }

    /// Random faults on API calls (see [`sandbox_kit::faults`]); also
    /// `POST /__sandbox/faults`.
    pub fn faults(&self) -> &sandbox_kit::faults::Faults {
        &self.shared.faults
    }

    /// The next `n` API calls answer `status` with the error envelope.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.st().faults.fail = (n > 0).then_some((n, status));
    }

    /// The next `method` `path` call (e.g. `POST`, `/v1/notes`; a template
    /// such as `/api/v2/persons/{id}` matches any id) is carried out, but the
    /// client gets `status` instead of the answer.
    pub fn lose_next_response(&self, method: &str, path: &str, status: u16) {
        self.st()
            .faults
            .lost
            .push((method.to_string(), path.to_string(), status));
    }

    /// The next `n` API calls wait `delay` before being handled.
    pub fn slow_next(&self, n: u32, delay: Duration) {
        self.st().faults.slow = (n > 0).then_some((n, delay));
    }

    /// The home company's daily token budget from now on.
    pub fn set_daily_budget(&self, tokens: u64) {
        self.st().set_daily_budget(tokens);
    }

    /// Tokens the home company used today.
    pub fn tokens_used(&self) -> u64 {
        let st = self.st();
        st.limits.used(st.home_company())
    }

    pub fn tokens_used_by_company(&self, company_id: u64) -> u64 {
        self.st().limits.used(company_id)
    }

    /// A new day: every company's usage goes back to 0.
    pub fn reset_day(&self) {
        self.st().limits.reset_day();
    }

    /// Turns the burst limits on or off (budgets still apply).
    pub fn set_bursts_enabled(&self, enabled: bool) {
        self.st().limits.bursts_enabled = enabled;
    }

    pub fn set_search_index_delay(&self, delay: Duration) {
        self.st().cfg.search_index_delay = delay;
    }

    /// Status polls answering `running` for conversions started from now on.
    pub fn set_conversion_polls(&self, polls: u32) {
        self.st().cfg.conversion_polls = polls;
    }

    /// Completes every running conversion now.
    pub fn finish_conversions(&self) {
        self.st().finish_conversions();
    }

    /// Converts a lead to a deal as a user would in the UI; returns the
    /// deal id.
    pub fn convert_lead_in_ui(&self, lead_id: &str) -> Result<u64, SandboxError> {
        self.st().convert_lead_in_ui(lead_id)
    }

    /// Contract violations seen so far, one line each.
    pub fn contract_violations(&self) -> Vec<String> {
        sandbox_kit::contract::lines(&self.st().violations)
    }

    pub fn contract_violation_details(&self) -> Vec<ContractViolation> {
        self.st().violations.clone()
    }

    /// Sends Pipedrive's uninstall notice for `user_email`: the app is
    /// uninstalled for that user (their tokens stop working), then
    /// `DELETE <callback_url>` with Basic client credentials and
    /// `{client_id, company_id, user_id, timestamp}`. Returns the callback's
    /// status (Pipedrive ignores it).
    pub async fn send_uninstall(
        &self,
        callback_url: &str,
        user_email: &str,
    ) -> Result<u16, SandboxError> {
        let (body, auth) = {
            let mut st = self.st();
            let (user_id, company_id) = st
                .user_by_email(user_email)
                .map(|u| (u.id, u.company_id))
                .ok_or_else(|| SandboxError::UnknownUser(user_email.to_string()))?;
            st.uninstall_for(user_id);
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", st.cfg.client_id, st.cfg.client_secret));
            let body = json!({
                "client_id": st.cfg.client_id,
                "company_id": company_id,
                "user_id": user_id,
                "timestamp": store::rfc3339_ms(store::now())
            });
            (body, auth)
        };
        let resp = reqwest::Client::new()
            .delete(callback_url)
            .header(reqwest::header::AUTHORIZATION, format!("Basic {auth}"))
            .json(&body)
            .send()
            .await
            .map_err(|e| SandboxError::Notice(e.to_string()))?;
        Ok(resp.status().as_u16())
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(&self) {
        self.served.shutdown().await;
    }
}
