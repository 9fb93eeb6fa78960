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
    let closed = "http://127.0.0.1:9";
    let vars: BTreeMap<&str, String> = [
        ("TABLE_NAME", "memory"),
        ("SYNC_QUEUE_URL", "sync"),
        ("NOTES_QUEUE_URL", "notes"),
        ("APP_KEY_SECRET_ID", "app-key"),
        ("OPERATOR_KEY_SECRET_ID", "operator-key"),
        ("META_APP_SECRET_ID", "meta"),
        ("ZOHO_CLIENT_SECRET_ID", "zoho"),
        ("PIPEDRIVE_CLIENT_SECRET_ID", "pipedrive"),
        ("PUBLIC_BASE_URL", "https://memory.test"),
        ("GRAPH_API_URL", closed),
        ("ZOHO_ACCOUNTS_URL", closed),
        ("ZOHO_ACCOUNTS_SERVERS", "us=http://127.0.0.1:9"),
        ("ZOHO_API_DOMAINS", closed),
        ("PIPEDRIVE_OAUTH_URL", closed),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let config = match Config::from_lookup(|k| vars.get(k).cloned()) {
        Ok(config) => config,
        Err(e) => panic!("the in-memory configuration is incomplete: {e}"),
    };
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
