//! In-memory doubles of the ports — state, queue, secrets and a CRM — for
//! fast tests of the domain rules beside their code (`cfg(test)`) and of
//! the handlers' refusals (the hostile-input run, through the
//! `test-support` feature). No function is built with them.

pub mod crm;
pub mod fixture;
pub mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use crm::{MemoryCrm, MemoryCrms, MemoryNote};
pub use memory::{MemoryQueue, MemorySecrets, MemoryStore, new_chat};

use crate::adapters::crms::CrmClients;
use crate::clock::Clock;
use crate::config::Config;
use crate::deps::Deps;
use crate::secrets::Secrets;

/// A clock that stands still at the given unix second.
pub struct FixedClock(pub i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// A local port nothing listens on: a connection there is refused at once.
pub const CLOSED_PORT: &str = "http://127.0.0.1:9";

/// The configuration of a deployment at `public_base_url` whose Graph API is
/// `graph_api_url` and whose CRM servers are [`CLOSED_PORT`], so nothing
/// under test reaches a real one; the secrets are named `app-key`,
/// `operator-key`, `meta`, `zoho` and `pipedrive`.
pub fn closed_config(public_base_url: &str, graph_api_url: &str) -> Config {
    let vars: BTreeMap<&str, String> = [
        ("TABLE_NAME", "memory".to_owned()),
        ("SYNC_QUEUE_URL", "sync".to_owned()),
        ("NOTES_QUEUE_URL", "notes".to_owned()),
        ("APP_KEY_SECRET_ID", "app-key".to_owned()),
        ("OPERATOR_KEY_SECRET_ID", "operator-key".to_owned()),
        ("META_APP_SECRET_ID", "meta".to_owned()),
        ("ZOHO_CLIENT_SECRET_ID", "zoho".to_owned()),
        ("PIPEDRIVE_CLIENT_SECRET_ID", "pipedrive".to_owned()),
        ("PUBLIC_BASE_URL", public_base_url.to_owned()),
        ("GRAPH_API_URL", graph_api_url.to_owned()),
        ("ZOHO_ACCOUNTS_URL", CLOSED_PORT.to_owned()),
        ("ZOHO_ACCOUNTS_SERVERS", format!("us={CLOSED_PORT}")),
        ("ZOHO_API_DOMAINS", CLOSED_PORT.to_owned()),
        ("PIPEDRIVE_OAUTH_URL", CLOSED_PORT.to_owned()),
    ]
    .into_iter()
    .collect();
    match Config::from_lookup(|k| vars.get(k).cloned()) {
        Ok(config) => config,
        Err(e) => panic!("the test configuration is incomplete: {e}"),
    }
}

/// What the dependencies of [`memory_deps`] are made of.
pub struct MemoryDeps {
    pub deps: Deps,
    pub store: Arc<MemoryStore>,
    pub queue: Arc<MemoryQueue>,
    pub crm: Arc<MemoryCrm>,
}

/// Dependencies on memory, the clock standing at `now`: the state, the
/// queues, the secrets (an app key, CRM client credentials) and every CRM
/// API (`crm`). Nothing reaches a network: the CRMs' accounts servers and
/// the Graph API are a closed local port, where a connection is refused
/// at once.
pub fn memory_deps(crm: MemoryCrm, now: i64) -> MemoryDeps {
    let config = closed_config("https://memory.test", CLOSED_PORT);
    let client = r#"{"client_id":"memory-client","client_secret":"memory-client-secret"}"#;
    let secrets = [
        ("app-key", "in-memory-master-key-of-32-bytes"),
        ("operator-key", "in-memory-operator-key"),
        ("meta", r#"{"app_secret":"memory","verify_token":"verify"}"#),
        ("zoho", client),
        ("pipedrive", client),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let secrets = Arc::new(Secrets::new(Box::new(MemorySecrets(secrets)), &config));
    let aws = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let base = match Deps::build(config.clone(), &aws) {
        Ok(deps) => deps,
        Err(e) => panic!("the in-memory dependencies: {e}"),
    };
    let store = Arc::new(MemoryStore::default());
    let queue = Arc::new(MemoryQueue::default());
    let crm = Arc::new(crm);
    let deps = Deps {
        config: config.clone(),
        store: store.clone(),
        queue: queue.clone(),
        secrets: secrets.clone(),
        http: base.http.clone(),
        clock: Arc::new(FixedClock(now)),
        media: base.media.clone(),
        business_numbers: base.business_numbers.clone(),
        crms: Arc::new(MemoryCrms::new(
            Arc::new(CrmClients::new(
                base.http.clone(),
                secrets.clone(),
                config.clone(),
            )),
            crm.clone(),
        )),
    };
    MemoryDeps {
        deps,
        store,
        queue,
        crm,
    }
}
