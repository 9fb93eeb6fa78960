//! Sandbox configuration: the app registration, the seeded companies and
//! users, limits and timings.

use std::time::Duration;

/// A Pipedrive subscription plan (older names in [`Plan::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Lite,
    Growth,
    Premium,
    Ultimate,
}

impl Plan {
    /// Daily-budget multiplier (reference §10).
    pub fn multiplier(self) -> u64 {
        match self {
            Plan::Lite => 1,
            Plan::Growth => 2,
            Plan::Premium => 5,
            Plan::Ultimate => 7,
        }
    }

    /// Burst limit per 2-second window for OAuth apps (reference §10).
    pub fn oauth_burst(self) -> u32 {
        match self {
            Plan::Lite => 80,
            Plan::Growth => 160,
            Plan::Premium => 400,
            Plan::Ultimate => 480,
        }
    }

    /// Current names plus the older ones (Essential = Lite, Advanced =
    /// Growth, Professional/Power = Premium, Enterprise = Ultimate; the
    /// reference gives Professional multiplier 3, which no current plan has,
    /// so it maps to the next plan up).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lite" | "essential" => Some(Plan::Lite),
            "growth" | "advanced" => Some(Plan::Growth),
            "premium" | "professional" | "power" => Some(Plan::Premium),
            "ultimate" | "enterprise" => Some(Plan::Ultimate),
            _ => None,
        }
    }
}

/// A Pipedrive company (account).
#[derive(Debug, Clone)]
pub struct SeedCompany {
    pub id: u64,
    pub name: String,
    /// Subdomain, e.g. `acme-sales`.
    pub domain: String,
    pub country: String,
    pub currency: String,
    pub plan: Plan,
    pub seats: u64,
    /// Overrides `30,000 × plan multiplier × seats`.
    pub daily_budget: Option<u64>,
}

impl SeedCompany {
    pub fn daily_budget(&self) -> u64 {
        self.daily_budget
            .unwrap_or(30_000 * self.plan.multiplier() * self.seats)
    }
}

/// A seeded (or runtime-added) user.
#[derive(Debug, Clone)]
pub struct SeedUser {
    /// `None` = allocate an id.
    pub id: Option<u64>,
    pub name: String,
    pub email: String,
    /// Admin of the company (`access[].admin`).
    pub admin: bool,
    pub active: bool,
    pub deleted: bool,
    pub timezone: String,
    /// `None` = the home company; otherwise the id of one of
    /// [`PipedriveSandboxConfig::foreign_companies`].
    pub company_id: Option<u64>,
}

impl SeedUser {
    /// An active regular (non-admin) user of the home company.
    pub fn regular(name: &str, email: &str) -> Self {
        Self {
            id: None,
            name: name.into(),
            email: email.into(),
            admin: false,
            active: true,
            deleted: false,
            timezone: "Europe/Lisbon".into(),
            company_id: None,
        }
    }
}

/// The scopes a default app registration has: reference §1's table minus
/// the rows it marks "only if"/"not needed" (`admin`, `*-fields:full`,
/// `messengers-integration`).
pub const DEFAULT_SCOPES: &[&str] = &[
    "base",
    "contacts:full",
    "leads:full",
    "deals:full",
    "users:read",
    "search:read",
];

/// Sandbox configuration. `Default` gives the demo company "Acme Sales".
#[derive(Debug, Clone)]
pub struct PipedriveSandboxConfig {
    /// 0 = ephemeral port.
    pub port: u16,
    pub client_id: String,
    pub client_secret: String,
    /// The registered callback URL; `None` accepts any `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// Scopes of the app registration (every token gets all of them).
    pub app_scopes: Vec<String>,
    pub access_token_ttl: Duration,
    pub code_ttl: Duration,
    /// A refresh token unused this long stops working (60 days).
    pub refresh_token_idle_ttl: Duration,
    /// Persons created or changed less than this ago are found by search
    /// in their previous state (or not at all when new).
    pub search_index_delay: Duration,
    /// Status polls of a lead conversion answering `running` before it
    /// completes.
    pub conversion_polls: u32,
    pub note_content_max: usize,
    pub file_max_bytes: usize,
    /// Burst window (rolling).
    pub burst_window: Duration,
    /// Requests per window per access token; `None` = the plan's OAuth number.
    pub burst_limit: Option<u32>,
    pub search_burst_limit: u32,
    pub bursts_enabled: bool,
    /// Add `Retry-After` to 429 answers (current docs do not mention it).
    pub retry_after_header: bool,
    /// Check requests and responses against the OpenAPI files.
    pub contract_checks: bool,
    pub company: SeedCompany,
    pub foreign_companies: Vec<SeedCompany>,
    pub users: Vec<SeedUser>,
}

impl Default for PipedriveSandboxConfig {
    fn default() -> Self {
        let user = |id: u64, name: &str, email: &str, admin: bool| SeedUser {
            id: Some(id),
            admin,
            ..SeedUser::regular(name, email)
        };
        Self {
            port: 0,
            client_id: "pd-sandbox-client".into(),
            client_secret: "pd-sandbox-secret".into(),
            redirect_uri: None,
            app_scopes: DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            access_token_ttl: Duration::from_secs(3599),
            code_ttl: Duration::from_secs(300),
            refresh_token_idle_ttl: Duration::from_secs(60 * 24 * 3600),
            search_index_delay: Duration::ZERO,
            conversion_polls: 1,
            note_content_max: 100_000,
            file_max_bytes: 50 * 1024 * 1024,
            burst_window: Duration::from_secs(2),
            burst_limit: None,
            search_burst_limit: 10,
            bursts_enabled: true,
            retry_after_header: false,
            contract_checks: true,
            company: SeedCompany {
                id: 7_100_001,
                name: "Acme Sales".into(),
                domain: "acme-sales".into(),
                country: "PT".into(),
                currency: "EUR".into(),
                plan: Plan::Lite,
                seats: 3,
                daily_budget: None,
            },
            foreign_companies: vec![SeedCompany {
                id: 7_200_002,
                name: "Globex Trading".into(),
                domain: "globex".into(),
                country: "DE".into(),
                currency: "EUR".into(),
                plan: Plan::Growth,
                seats: 1,
                daily_budget: None,
            }],
            users: vec![
                user(11_001, "Ana Admin", "ana@acme.example", true),
                user(11_002, "Bruno Sales", "bruno@acme.example", false),
                user(11_003, "Carla Sales", "carla@acme.example", false),
                SeedUser {
                    active: false,
                    ..user(11_004, "Diego Former", "diego@acme.example", false)
                },
                SeedUser {
                    company_id: Some(7_200_002),
                    timezone: "Europe/Berlin".into(),
                    ..user(21_001, "Greta Globex", "greta@globex.example", true)
                },
            ],
        }
    }
}
