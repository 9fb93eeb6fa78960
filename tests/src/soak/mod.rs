//! The soak: many chats through signed webhooks into the local stack while
//! both CRM sandboxes inject faults, every delivery posted one to three
//! times, concurrently and out of order, a grant revoked mid-run and
//! reconnected through the product's own OAuth flow; then every promise
//! checked from the sandboxes' own state ([`check`]). Shared by the `soak`
//! binary (the figures) and `tests/tests/soak.rs` (the counts).

pub mod check;
pub mod plan;
mod report;
mod run;

use sandbox_kit::faults::{FaultConfig, FaultKind, FaultKinds};

pub use check::Findings;
pub use plan::{Crm, Plan};
pub use report::{CrmFigures, SoakReport};
pub use run::run;

/// How big and how hostile a soak is.
#[derive(Debug, Clone)]
pub struct SoakOptions {
    /// Chats in all, spread evenly over `crms`.
    pub chats: usize,
    /// Messages per chat.
    pub messages: usize,
    /// Share of CRM API calls that fail.
    pub fault_rate: f64,
    /// Which faults, and how often each (weights).
    pub fault_kinds: FaultKinds,
    /// How long a slow answer takes.
    pub slow_ms: u64,
    /// Most times a delivery is posted (each 1..=this, at random).
    pub redeliver: u32,
    pub crms: Vec<Crm>,
    /// Revoke every grant once half the messages are in, then reconnect.
    pub revoke_mid_run: bool,
    /// Webhook posts in flight at once.
    pub concurrency: usize,
    /// Webhook posts started a second (0: as fast as `concurrency` allows,
    /// so the latency is the backlog's).
    pub post_rate: f64,
    /// Give up once nothing has moved for this long.
    pub stall_secs: u64,
    pub seed: u64,
}

/// Time-outs hold a worker for the product's whole 20-s call limit, and the
/// local stack runs one batch per queue at a time: they are drawn a fifth
/// as often as the quick faults, or a soak would mostly wait on them.
pub fn default_fault_kinds() -> FaultKinds {
    FaultKinds::Weighted(
        FaultKind::ALL
            .iter()
            .map(|k| {
                let weight = match k {
                    FaultKind::Timeout => 1,
                    FaultKind::Slow | FaultKind::ExpiredToken => 3,
                    _ => 5,
                };
                (*k, weight)
            })
            .collect(),
    )
}

impl Default for SoakOptions {
    /// The full soak: 100 chats × 20 messages on both CRMs, 20 % faults,
    /// up to three deliveries each.
    fn default() -> Self {
        Self {
            chats: 100,
            messages: 20,
            fault_rate: 0.2,
            fault_kinds: default_fault_kinds(),
            slow_ms: 3_000,
            redeliver: 3,
            crms: vec![Crm::Zoho, Crm::Pipedrive],
            revoke_mid_run: true,
            concurrency: 8,
            post_rate: 0.0,
            stall_secs: 180,
            seed: 2026,
        }
    }
}

impl SoakOptions {
    /// The soak of the test command: 10 chats × 6 messages per CRM.
    pub fn small() -> Self {
        Self {
            chats: 20,
            messages: 6,
            slow_ms: 2_000,
            stall_secs: 90,
            ..Self::default()
        }
    }

    /// The fault plan each sandbox gets (its own seed).
    pub fn fault_config(&self, crm: Crm) -> FaultConfig {
        FaultConfig {
            kinds: self.fault_kinds.clone(),
            slow_ms: self.slow_ms,
            ..FaultConfig::every_kind(self.fault_rate, self.seed + crm as u64)
        }
    }
}
