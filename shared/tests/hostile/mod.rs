//! Hostile input: generated requests and values thrown at the webhook, the
//! phone normaliser, the note renderers, the OAuth callback and every JSON
//! body the API accepts, each checked against what must hold whatever the
//! input. Shared by the property tests (`tests/hostile_input.rs`, a small
//! count with shrinking) and the benchmark run (`benches/hostile_input.rs`,
//! ≥ 100,000 cases, a table of outcomes).
//!
//! Every check returns the [`Violation`] it found; a panic is left to the
//! caller to catch (proptest catches and shrinks it, the benchmark counts it).

#![allow(dead_code)] // each of the two targets uses its own part

pub mod api;
pub mod notes;
pub mod oauth;
pub mod phone;
pub mod webhook;

use std::future::Future;
use std::sync::{Arc, OnceLock};

use graph_sandbox::{GraphSandbox, GraphSandboxConfig, GraphSandboxHandle};
use lambda_http::Body;
use shared::adapters::crms::CrmClients;
use shared::config::Config;
use shared::crypto::hash_token;
use shared::deps::Deps;
use shared::model::{Role, User, WhatsAppNumber, Workspace};
use shared::retention::Retention;
use shared::secrets::Secrets;

use shared::testing::{FixedClock, MemoryQueue, MemorySecrets, MemoryStore, closed_config};

/// The Meta app secret the webhook checks signatures with.
pub const APP_SECRET: &str = "hostile-input-meta-app-secret";
/// The seeded workspace, its users' API tokens and its WhatsApp number.
pub const WORKSPACE_ID: &str = "ws-hostile";
pub const OWNER_ID: &str = "u-owner";
pub const OWNER_TOKEN: &str = "owner-token-hostile";
pub const MEMBER_ID: &str = "u-member";
pub const MEMBER_TOKEN: &str = "member-token-hostile";
pub const OPERATOR_KEY: &str = "operator-key-hostile";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const DISPLAY_NUMBER: &str = "+15550253483";
/// Unix seconds the clock stands at.
pub const NOW: i64 = 1_750_000_000;

/// What a check found wrong.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// A request refused for want of a valid signature or state stored or
    /// queued something: the writes made.
    StoredWithoutSignature(Vec<String>),
    /// A refusal that is not a 4xx, or a 4xx without a clear message.
    NotClearRefusal { status: u16, body: String },
    /// Any other property that does not hold.
    Property(String),
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::StoredWithoutSignature(writes) => {
                write!(f, "stored or queued without a valid signature: {writes:?}")
            }
            Self::NotClearRefusal { status, body } => {
                write!(f, "refusal {status} is not a clear 4xx: {body}")
            }
            Self::Property(what) => f.write_str(what),
        }
    }
}

pub type Checked = Result<(), Violation>;

/// Fails with `what` unless `holds`.
pub fn ensure(holds: bool, what: impl FnOnce() -> String) -> Checked {
    if holds {
        Ok(())
    } else {
        Err(Violation::Property(what()))
    }
}

/// What every case shares: one runtime, the Graph sandbox (a registered
/// number is proven against it), the secrets and the HTTP client.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    config: Config,
    secrets: Arc<Secrets>,
    base: Deps,
    /// The CRM clients, reading their client credentials from `secrets`.
    crms: Arc<CrmClients>,
    _graph: GraphSandboxHandle,
}

/// One case's dependencies: a fresh store and queue, seeded.
pub struct Case {
    pub deps: Deps,
    pub store: Arc<MemoryStore>,
    pub queue: Arc<MemoryQueue>,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

pub fn harness() -> &'static Harness {
    HARNESS.get_or_init(Harness::start)
}

impl Harness {
    fn start() -> Self {
        // The handlers' own logs, when a failure needs them.
        if std::env::var_os("HOSTILE_LOG").is_some() {
            shared::deps::init_tracing();
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let graph = runtime
            .block_on(GraphSandbox::start(GraphSandboxConfig::default()))
            .expect("the Graph sandbox starts");
        // Nothing under test may reach a real CRM: their servers are a
        // closed local port (a connection there is refused at once).
        let config = closed_config("https://hostile.test", &graph.base_url());
        let client = r#"{"client_id":"hostile-client","client_secret":"hostile-client-secret"}"#;
        let secrets = [
            ("app-key", "hostile-input-master-key-32-bytes!".to_owned()),
            ("operator-key", OPERATOR_KEY.to_owned()),
            (
                "meta",
                format!(r#"{{"app_secret":"{APP_SECRET}","verify_token":"verify"}}"#),
            ),
            ("zoho", client.to_owned()),
            ("pipedrive", client.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let secrets = Arc::new(Secrets::new(Box::new(MemorySecrets(secrets)), &config));
        let aws = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let base = Deps::build(config.clone(), &aws).expect("dependencies");
        let crms = Arc::new(CrmClients::new(
            base.http.clone(),
            secrets.clone(),
            config.clone(),
        ));
        Self {
            crms,
            runtime,
            config,
            secrets,
            base,
            _graph: graph,
        }
    }

    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Fresh, seeded state for one case; the rest shared.
    pub fn case(&self) -> Case {
        let store = Arc::new(MemoryStore::default());
        seed(&store);
        let queue = Arc::new(MemoryQueue::default());
        let deps = Deps {
            config: self.config.clone(),
            store: store.clone(),
            queue: queue.clone(),
            secrets: self.secrets.clone(),
            http: self.base.http.clone(),
            clock: Arc::new(FixedClock(NOW)),
            media: self.base.media.clone(),
            business_numbers: self.base.business_numbers.clone(),
            crms: self.crms.clone(),
        };
        Case { deps, store, queue }
    }
}

fn seed(store: &MemoryStore) {
    store.seed_workspace(Workspace {
        id: WORKSPACE_ID.into(),
        name: "Hostile Ltd".into(),
        time_zone: "Europe/London".into(),
        created_at: NOW - 86_400,
        retention: Retention::default(),
        deleting_since: None,
    });
    for (id, role, token) in [
        (OWNER_ID, Role::Owner, OWNER_TOKEN),
        (MEMBER_ID, Role::Member, MEMBER_TOKEN),
    ] {
        store.seed_user(
            User {
                workspace_id: WORKSPACE_ID.into(),
                id: id.into(),
                email: format!("{id}@hostile.test"),
                role,
                created_at: NOW - 86_400,
            },
            &hash_token(token),
        );
    }
    store.seed_number(WhatsAppNumber {
        workspace_id: WORKSPACE_ID.into(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        display_phone_number: DISPLAY_NUMBER.into(),
        owner_user_id: OWNER_ID.into(),
        access_token_enc: None,
        waba_id: None,
    });
}

/// A text as a failure shows it: its length and beginning.
pub fn short(text: &str) -> String {
    let count = text.chars().count();
    if count <= 60 {
        format!("{text:?}")
    } else {
        let start: String = text.chars().take(40).collect();
        format!("{start:?}… ({count} chars)")
    }
}

thread_local! {
    /// The status of the last answer this thread read, for the benchmark's
    /// table of answers.
    pub static LAST_STATUS: std::cell::Cell<u16> = const { std::cell::Cell::new(0) };
}

/// A response's status and body text.
pub fn answer(response: &lambda_http::Response<Body>) -> (u16, String) {
    LAST_STATUS.with(|s| s.set(response.status().as_u16()));
    let body = match response.body() {
        Body::Text(text) => text.clone(),
        Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        _ => String::new(),
    };
    (response.status().as_u16(), body)
}

/// A refusal must be a 4xx whose JSON body names a code and says why.
pub fn clear_refusal(status: u16, body: &str) -> Checked {
    let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    let message = value["error"]["message"].as_str().unwrap_or_default();
    let code = value["error"]["code"].as_str().unwrap_or_default();
    let clear = (400..500).contains(&status)
        && !code.is_empty()
        && message.trim().len() >= 8
        && message != "internal error";
    if clear {
        Ok(())
    } else {
        Err(Violation::NotClearRefusal {
            status,
            body: body.chars().take(300).collect(),
        })
    }
}

/// Any answer but a server error; a refusal must be a clear one.
pub fn no_server_error(status: u16, body: &str) -> Checked {
    if status < 400 {
        Ok(())
    } else {
        clear_refusal(status, body)
    }
}
