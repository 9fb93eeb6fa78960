#![recursion_limit = "256"]
//! Zoho CRM sandbox: a local HTTP server that behaves like Zoho's accounts
//! server (OAuth 2.0) and the CRM REST API v8, for end-to-end tests and the
//! local demo. The same origin serves both (`accounts-server` and
//! `api_domain` are the sandbox's base URL).
//!
//! Behaviour follows the team's Zoho reference; request and response bodies
//! are checked against Zoho's OAS files (see [`contract`]) and violations are
//! exposed through [`SandboxHandle::contract_violations`].

pub mod contract;
mod faults;
mod metadata;
pub mod scopes;
pub mod search;
mod server;
mod store;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;

pub use contract::ContractViolation;
pub use store::{GrantInfo, IssuedTokens};

/// The seeded organisation.
#[derive(Debug, Clone)]
pub struct SeedOrg {
    pub id: String,
    pub company_name: String,
    pub primary_email: String,
    pub time_zone: String,
    pub country: String,
    pub country_code: String,
    pub currency: String,
    pub currency_symbol: String,
    pub iso_code: String,
    pub domain_name: String,
    pub zgid: String,
    pub phone: String,
}

impl Default for SeedOrg {
    fn default() -> Self {
        Self {
            id: "20093921".into(),
            company_name: "Acme Ltd".into(),
            primary_email: "ana@acme.example".into(),
            time_zone: "Europe/London".into(),
            country: "United Kingdom".into(),
            country_code: "GB".into(),
            currency: "Pound Sterling".into(),
            currency_symbol: "£".into(),
            iso_code: "GBP".into(),
            domain_name: "org20093921".into(),
            zgid: "20093921".into(),
            phone: "+44 20 7946 0000".into(),
        }
    }
}

/// A seeded (or runtime-added) CRM user.
#[derive(Debug, Clone)]
pub struct SeedUser {
    /// `None` = allocate a Zoho-style id.
    pub id: Option<String>,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// `"Administrator"` or `"Standard"`.
    pub profile: String,
    pub role: String,
    pub active: bool,
    pub confirmed: bool,
    pub time_zone: String,
    /// A user of another Zoho organization (`GET /org` with their token
    /// answers this id): for tests of connections across organizations.
    pub foreign_org_id: Option<String>,
}

impl SeedUser {
    /// An active, confirmed Standard-profile sales user.
    pub fn sales(email: &str, first: &str, last: &str) -> Self {
        Self {
            id: None,
            email: email.into(),
            first_name: first.into(),
            last_name: last.into(),
            profile: "Standard".into(),
            role: "Sales Representative".into(),
            active: true,
            confirmed: true,
            time_zone: "Europe/London".into(),
            foreign_org_id: None,
        }
    }
}

/// Sandbox configuration. `Default` gives the demo org "Acme Ltd".
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// DC reported in the OAuth callback (`location=`).
    pub location: String,
    pub client_id: String,
    pub client_secret: String,
    /// Registered redirect URIs; empty = accept any.
    pub redirect_uris: Vec<String>,
    /// 0 = ephemeral port.
    pub port: u16,
    pub access_token_ttl: Duration,
    pub grant_code_ttl: Duration,
    /// Records created/edited less than this ago are invisible to `/search`
    /// (Zoho's index delay).
    pub search_index_delay: Duration,
    pub note_content_max: usize,
    /// Access-token refreshes allowed per refresh token per `refresh_window`.
    pub refresh_limit: u32,
    pub refresh_window: Duration,
    /// Max in-flight CRM API calls before answering 429.
    pub max_concurrency: usize,
    /// API credits available (`None` = unlimited).
    pub credit_limit: Option<u64>,
    pub attachment_max_bytes: usize,
    /// Validate bodies against the OAS files.
    pub contract_checks: bool,
    pub org: SeedOrg,
    pub users: Vec<SeedUser>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            location: "us".into(),
            client_id: "1000.SANDBOXCLIENT".into(),
            client_secret: "sandbox-secret".into(),
            redirect_uris: Vec::new(),
            port: 0,
            access_token_ttl: Duration::from_secs(3600),
            grant_code_ttl: Duration::from_secs(120),
            search_index_delay: Duration::ZERO,
            note_content_max: 32_000,
            refresh_limit: 10,
            refresh_window: Duration::from_secs(600),
            max_concurrency: 20,
            credit_limit: None,
            attachment_max_bytes: 20 * 1024 * 1024,
            contract_checks: true,
            org: SeedOrg::default(),
            users: vec![
                SeedUser {
                    id: Some("5725767000000411001".into()),
                    email: "ana@acme.example".into(),
                    first_name: "Ana".into(),
                    last_name: "Souza".into(),
                    profile: "Administrator".into(),
                    role: "CEO".into(),
                    active: true,
                    confirmed: true,
                    time_zone: "Europe/London".into(),
                    foreign_org_id: None,
                },
                SeedUser {
                    id: Some("5725767000000411002".into()),
                    ..SeedUser::sales("bruno@acme.example", "Bruno", "Lima")
                },
                SeedUser {
                    id: Some("5725767000000411003".into()),
                    ..SeedUser::sales("carla@acme.example", "Carla", "Mendes")
                },
                SeedUser {
                    id: Some("5725767000000411004".into()),
                    active: false,
                    ..SeedUser::sales("diego@acme.example", "Diego", "Alves")
                },
            ],
        }
    }
}

/// Errors of the library API.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot bind the sandbox listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("contract files: {0}")]
    Contract(#[from] contract::ContractError),
    #[error("unknown user {0}")]
    UnknownUser(String),
    #[error("unknown module {0}")]
    UnknownModule(String),
    #[error("invalid field definition: {0}")]
    InvalidField(String),
    #[error("rejected by the sandbox: {0}")]
    Rejected(String),
}

/// One request the sandbox received (admin `/__sandbox/` calls excluded).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string, still percent-encoded ("" when absent).
    pub query: String,
    pub status: u16,
    /// Request body when it was JSON (or a form, as a JSON object).
    pub body: Option<Value>,
    pub response_body: Option<Value>,
}

pub(crate) struct Shared {
    pub store: Mutex<store::Store>,
    pub contract: Option<contract::Contract>,
    pub in_flight: std::sync::atomic::AtomicUsize,
    pub faults: sandbox_kit::faults::Faults,
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, store::Store> {
        // A panicking handler must not wedge every later test call.
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Entry point.
pub struct ZohoSandbox;

impl ZohoSandbox {
    /// Binds 127.0.0.1:`config.port` and starts serving in the background.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, SandboxError> {
        let contract = if config.contract_checks {
            Some(contract::Contract::load()?)
        } else {
            None
        };
        let bound = sandbox_kit::Bound::loopback(config.port).await?;
        let base_url = bound.base_url.clone();
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::new(config, base_url.clone())),
            contract,
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            faults: sandbox_kit::faults::Faults::default(),
        });
        let served = bound.serve(server::router(Arc::clone(&shared)), "zoho sandbox");
        Ok(SandboxHandle { shared, served })
    }
}

/// Control and inspection handle (cheap to clone).
#[derive(Clone)]
pub struct SandboxHandle {
    shared: Arc<Shared>,
    served: sandbox_kit::Served,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("base_url", &self.served.base_url)
            .finish()
    }
}

impl SandboxHandle {
    /// `http://127.0.0.1:<port>`: accounts server and API domain.
    pub fn base_url(&self) -> String {
        self.served.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.served.addr
    }

    /// Records of a module in insertion order, in the full read shape.
    pub fn records(&self, module: &str) -> Vec<Value> {
        self.shared.store().records_json(module)
    }

    pub fn record(&self, module: &str, id: &str) -> Option<Value> {
        self.shared.store().record_json(module, id)
    }

    /// Inserts a record as the authorizing user (validation applies); the
    /// record counts as "just edited" for the search index delay.
    pub fn insert_record(&self, module: &str, data: Value) -> Result<String, SandboxError> {
        self.shared.store().seed_record(module, data)
    }

    pub fn notes(&self) -> Vec<Value> {
        self.shared.store().records_json("Notes")
    }

    pub fn notes_of(&self, module: &str, record_id: &str) -> Vec<Value> {
        self.shared.store().notes_of(module, record_id)
    }

    pub fn attachments(&self) -> Vec<Value> {
        self.shared.store().attachments()
    }

    /// Users in the `GET /users` shape.
    pub fn users(&self) -> Vec<Value> {
        self.shared.store().users_json()
    }

    /// Adds a user; returns its id.
    pub fn add_user(&self, user: SeedUser) -> String {
        self.shared.store().add_user(user)
    }

    /// Which user "logs in and approves" the next `/oauth/v2/auth`.
    pub fn set_authorizing_user(&self, email: &str) -> Result<(), SandboxError> {
        self.shared.store().set_authorizing_user(email)
    }

    /// Tokens for a user without the browser round trip.
    pub fn issue_tokens(&self, email: &str) -> Result<IssuedTokens, SandboxError> {
        self.shared.store().issue_tokens(email)
    }

    /// Adds (or replaces) a field in a module's metadata.
    pub fn add_field(&self, module: &str, field: Value) -> Result<(), SandboxError> {
        self.shared.store().add_field(module, field)
    }

    /// Makes every issued access token expired (next CRM call → 401).
    pub fn expire_access_tokens(&self) {
        self.shared.store().expire_access_tokens();
    }

    /// Revokes every refresh token and its access tokens.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.store().revoke_all_refresh_tokens();
    }

    /// The grants (refresh tokens) issued to the user `email`, oldest first,
    /// with their scopes and whether they were revoked.
    pub fn grants_of(&self, email: &str) -> Vec<GrantInfo> {
        self.shared.store().grants_of(email)
    }

    /// Revokes every grant of the user `email`, as they would in Zoho's
    /// Connected Apps; how many were live.
    pub fn revoke_grants_of(&self, email: &str) -> usize {
        self.shared.store().revoke_grants_of(email)
    }

    /// From now on, users who are not administrators read only the records
    /// of `module` they own (a private sharing rule); others answer
    /// `403 NO_PERMISSION`.
    pub fn restrict_to_owners(&self, module: &str) {
        self.shared
            .store()
            .owner_only_modules
            .push(module.to_owned());
    }

    /// While `down`, token revocations fail with 503 and revoke nothing.
    pub fn set_revocation_outage(&self, down: bool) {
        self.shared.store().revocation_outage = down;
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.store().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.shared.store().requests.clear();
    }

    /// Successful `grant_type=refresh_token` exchanges so far.
    pub fn token_refresh_count(&self) -> u64 {
        self.shared.store().token_refreshes
    }

    /// Random faults on CRM API calls (see [`sandbox_kit::faults`]); also
    /// `POST /__sandbox/faults`.
    pub fn faults(&self) -> &sandbox_kit::faults::Faults {
        &self.shared.faults
    }

    /// The next `n` CRM API calls answer `status` with a Zoho error body
    /// carrying `zoho_code` (e.g. `500`/`INTERNAL_ERROR`, `429`/`TOO_MANY_REQUESTS`).
    pub fn fail_next(&self, n: u32, status: u16, zoho_code: &str) {
        self.shared.store().set_fault(n, status, zoho_code);
    }

    /// The next `method` `path` request (e.g. `POST`, `/crm/v8/Leads`) is
    /// carried out, but the client gets `status` instead of the answer: the
    /// "did it happen or not?" case.
    pub fn lose_next_response(&self, method: &str, path: &str, status: u16) {
        self.shared.store().lose_next_response(method, path, status);
    }

    /// API credits available from now on (counted against `credits_used`).
    pub fn set_credit_limit(&self, limit: u64) {
        self.shared.store().credit_limit = Some(limit);
    }

    pub fn clear_credit_limit(&self) {
        self.shared.store().credit_limit = None;
    }

    pub fn credits_used(&self) -> u64 {
        self.shared.store().credits_used
    }

    pub fn reset_credits(&self) {
        self.shared.store().credits_used = 0;
    }

    pub fn set_max_concurrency(&self, n: usize) {
        self.shared.store().max_concurrency = n;
    }

    /// Refreshes allowed per refresh token per window (default 10 / 10 min).
    pub fn set_refresh_limit(&self, n: u32) {
        self.shared.store().refresh_limit = n;
    }

    /// Converts a lead as the authorizing user; returns the Contact id.
    /// Deletes a record as a person would in Zoho (notes go with it).
    pub fn delete_record(&self, module: &str, id: &str) -> bool {
        self.shared.store().delete_record(module, id)
    }

    pub fn convert_lead(&self, lead_id: &str) -> Result<String, SandboxError> {
        self.shared.store().convert_lead_helper(lead_id)
    }

    /// Contract violations seen so far, one line each.
    pub fn contract_violations(&self) -> Vec<String> {
        sandbox_kit::contract::lines(&self.shared.store().violations)
    }

    pub fn contract_violation_details(&self) -> Vec<ContractViolation> {
        self.shared.store().violations.clone()
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(&self) {
        self.served.shutdown().await;
    }
}
