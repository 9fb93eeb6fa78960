//! Running a soak: the system and its two workspaces, the faults switched
//! on, the deliveries posted while the CRMs' state is watched, the grants
//! revoked and reconnected, then the checks.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graph_sandbox::{SeedMedia, SeedPhoneNumber};
use serde_json::json;
use shared::crypto::meta_signature;
use tokio::sync::Semaphore;
use zoho_sandbox::SandboxConfig;

use super::SoakOptions;
use super::check::{self, lines_by_message, soak_notes};
use super::plan::{Crm, Kind, Plan, document_name};
use super::report::{CrmFigures, QueueSamples, SoakReport};
use crate::{META_APP_SECRET, TestSystem, TestWorkspace};

/// How often the CRMs' state and the queues are looked at.
const POLL: Duration = Duration::from_millis(500);
/// Attempts at a webhook post the stack refused, or at a reconnection.
const ATTEMPTS: usize = 20;

/// Runs the soak `options` describe and reports what it found.
pub async fn run(options: &SoakOptions) -> SoakReport {
    let crms = options.crms.clone();
    let plan = Plan::draw(
        &crms,
        options.chats,
        options.messages,
        options.redeliver,
        options.seed,
    );
    let system = TestSystem::start_custom(
        // A soak expires tokens hundreds of times faster than Zoho (hourly):
        // its refresh limit would refuse the refreshes, not Zoho's.
        vec![SandboxConfig {
            refresh_limit: 100_000,
            ..SandboxConfig::default()
        }],
        Some(1),
        // A 429 after waiting out its burst reset reads as a spent budget,
        // which waits up to this long (3 hours deployed) before going on.
        vec![("BUDGET_WAIT_MAX_SECS".into(), "5".into())],
    )
    .await;
    let mut owners = BTreeMap::new();
    for crm in &crms {
        let workspace = workspace_for(&system, *crm).await;
        owners.insert(*crm, workspace.owner_token);
    }
    for chat in &plan.chats {
        for message in &chat.messages {
            let Some(id) = &message.media_id else {
                continue;
            };
            let media = match message.kind {
                Kind::Document => SeedMedia::generated(id, "application/pdf", 18_000)
                    .with_filename(&document_name(message)),
                _ => SeedMedia::generated(id, "image/jpeg", 24_000),
            };
            system.graph.seed_media(media);
        }
    }
    // Pipedrive's daily budget is not what this measures (pacing is).
    system.pipedrive.set_daily_budget(1_000_000_000);
    system.sandbox.clear_requests();
    system.pipedrive.clear_requests();
    let tokens_before = system.pipedrive.tokens_used();
    let refreshes_before = (
        system.sandbox.token_refresh_count(),
        system.pipedrive.token_refresh_count(),
    );
    for crm in &crms {
        let set = match crm {
            Crm::Zoho => system.sandbox.faults().set(options.fault_config(*crm)),
            Crm::Pipedrive => system.pipedrive.faults().set(options.fault_config(*crm)),
        };
        set.unwrap_or_else(|e| panic!("the fault plan: {e}"));
    }

    let first_post: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; plan.deliveries.len()]));
    let posted = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let posting = post_all(&system, &plan, options, &first_post, &posted, &refused);
    let watching = watch(&system, &plan, options, &owners, &posted);
    let ((), watched) = tokio::join!(posting, watching);

    for crm in &crms {
        match crm {
            Crm::Zoho => system.sandbox.faults().clear(),
            Crm::Pipedrive => system.pipedrive.faults().clear(),
        }
    }
    let mut findings = check::check_notes(&system, &plan, &crms);
    (findings.ledger_disagrees, findings.ledger_samples) =
        check::ledger_disagreements(&system, &plan, &crms, &owners).await;
    findings.dead_lettered = system.queue_depth("SyncDeadLetterQueue").await
        + system.queue_depth("NotesDeadLetterQueue").await;

    let first_post = first_post.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies = Vec::new();
    for (index, delivery) in plan.deliveries.iter().enumerate() {
        let Some(posted_at) = first_post[index] else {
            continue;
        };
        for seq in &delivery.messages {
            if let Some(seen) = watched.first_seen.get(&(delivery.chat, *seq)) {
                latencies.push(seen.saturating_duration_since(posted_at));
            }
        }
    }
    latencies.sort();
    let per_crm = crms
        .iter()
        .map(|crm| crm_figures(&system, *crm, &plan, tokens_before, refreshes_before))
        .collect();
    SoakReport {
        chats: options.chats,
        messages_per_chat: options.messages,
        fault_rate: options.fault_rate,
        redeliver: options.redeliver,
        post_rate: options.post_rate,
        findings,
        deliveries: plan.deliveries.len(),
        posts: plan.postings.len(),
        refused_posts: refused.load(Ordering::Relaxed),
        latencies,
        busy: watched.last_seen.map_or(started.elapsed(), |last| {
            last.saturating_duration_since(started)
        }),
        per_crm,
        revoked: watched.revoked,
        reconnected: watched.reconnected,
        queues: watched.queues,
        contract_violations: system.sandbox.contract_violations().len()
            + system.pipedrive.contract_violations().len(),
    }
}

/// A workspace syncing to `crm`, its two business numbers registered (Graph
/// knows them), connected through OAuth, settings active.
async fn workspace_for(system: &TestSystem, crm: Crm) -> TestWorkspace {
    let [first, second] = crm.business_numbers();
    for (id, digits) in [first, second] {
        let display = format!("+{} {} {}", &digits[..2], &digits[2..6], &digits[6..]);
        system
            .graph
            .seed_phone_number(SeedPhoneNumber::new(id, &display, "Acme Lettings"));
    }
    let owner = match crm {
        Crm::Zoho => "bruno@acme.example",
        Crm::Pipedrive => "ana@acme.example",
    };
    let workspace = system
        .workspace_with_number(owner, crm.time_zone(), first.0, first.1)
        .await;
    let (status, body) = system
        .call(
            reqwest::Method::POST,
            "/api/whatsapp-numbers",
            &workspace.owner_token,
            Some(json!({
                "phone_number_id": second.0,
                "display_phone_number": second.1,
                "owner_user_id": workspace.owner_id,
                "access_token": graph_sandbox::DEFAULT_ACCESS_TOKEN,
            })),
        )
        .await;
    assert_eq!(status, 201, "the second number registered: {body}");
    match crm {
        Crm::Zoho => system.connect_zoho(&workspace).await,
        Crm::Pipedrive => {
            system.connect_pipedrive(&workspace, owner, json!({})).await;
        }
    }
    workspace
}

/// Posts every planned delivery (copies included) as Meta would: signed,
/// `concurrency` at a time (started `post_rate` a second, if set), in the
/// plan's shuffled order. Remembers when each delivery was first posted.
async fn post_all(
    system: &TestSystem,
    plan: &Plan,
    options: &SoakOptions,
    first_post: &Arc<Mutex<Vec<Option<Instant>>>>,
    posted: &Arc<AtomicUsize>,
    refused: &Arc<AtomicUsize>,
) {
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let url = system.url("/webhooks/whatsapp");
    let start = tokio::time::Instant::now();
    for (n, delivery) in plan.postings.iter().enumerate() {
        if options.post_rate > 0.0 {
            let due = start + Duration::from_secs_f64(n as f64 / options.post_rate);
            tokio::time::sleep_until(due).await;
        }
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let body = plan.deliveries[*delivery].body.clone();
        let (http, url, delivery) = (system.http.clone(), url.clone(), *delivery);
        let (first_post, posted, refused) = (
            Arc::clone(first_post),
            Arc::clone(posted),
            Arc::clone(refused),
        );
        tasks.spawn(async move {
            let signature = meta_signature(META_APP_SECRET.as_bytes(), &body);
            for _ in 0..ATTEMPTS {
                let at = Instant::now();
                let answer = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-hub-signature-256", &signature)
                    .body(body.clone())
                    .send()
                    .await;
                if answer.is_ok_and(|a| a.status() == 200) {
                    let mut first = first_post.lock().unwrap_or_else(|e| e.into_inner());
                    let slot = &mut first[delivery];
                    *slot = Some(slot.map_or(at, |earlier| earlier.min(at)));
                    break;
                }
                refused.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            posted.fetch_add(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// What watching the run saw.
struct Watched {
    first_seen: HashMap<(usize, usize), Instant>,
    last_seen: Option<Instant>,
    revoked: bool,
    reconnected: Vec<Crm>,
    queues: QueueSamples,
}

/// Watches the CRMs' notes until every message has its line and the queues
/// are empty, or nothing has moved for `stall_secs`; revokes the grants
/// once half the messages are in and reconnects each CRM whose connection
/// the product then reports broken.
async fn watch(
    system: &TestSystem,
    plan: &Plan,
    options: &SoakOptions,
    owners: &BTreeMap<Crm, String>,
    posted: &Arc<AtomicUsize>,
) -> Watched {
    let total = plan.message_count();
    let mut watched = Watched {
        first_seen: HashMap::new(),
        last_seen: None,
        revoked: false,
        reconnected: Vec::new(),
        queues: QueueSamples::default(),
    };
    let mut broken: Vec<Crm> = Vec::new();
    let mut last_progress = (Instant::now(), 0usize, (0u64, 0u64));
    let mut quiet_polls = 0;
    loop {
        tokio::time::sleep(POLL).await;
        let now = Instant::now();
        let notes = soak_notes(system, &options.crms);
        for key in lines_by_message(&notes).into_keys() {
            watched.first_seen.entry(key).or_insert_with(|| {
                watched.last_seen = Some(now);
                now
            });
        }
        let depths = (
            system.queue_depth("SyncQueue").await,
            system.queue_depth("NotesQueue").await,
        );
        watched.queues.add(depths);
        if options.revoke_mid_run && !watched.revoked && watched.first_seen.len() * 2 >= total {
            revoke_grants(system, &options.crms);
            watched.revoked = true;
        }
        if watched.revoked {
            for crm in &options.crms {
                if broken.contains(crm) || !reported_broken(system, &owners[crm]).await {
                    continue;
                }
                broken.push(*crm);
                reconnect(system, *crm, &owners[crm]).await;
                watched.reconnected.push(*crm);
            }
        }
        let seen = watched.first_seen.len();
        if (seen, depths) != (last_progress.1, last_progress.2) {
            last_progress = (now, seen, depths);
        }
        let all_posted = posted.load(Ordering::Relaxed) == plan.postings.len();
        quiet_polls = if all_posted && seen == total && depths == (0, 0) {
            quiet_polls + 1
        } else {
            0
        };
        // Twice quiet in a row: nothing in flight that could still add a line.
        if quiet_polls >= 2
            || now.duration_since(last_progress.0) > Duration::from_secs(options.stall_secs)
        {
            return watched;
        }
    }
}

/// Every grant of the run's CRMs is revoked (as a user would in the CRM's
/// connected-apps page): refreshing now fails with the documented error.
fn revoke_grants(system: &TestSystem, crms: &[Crm]) {
    for crm in crms {
        match crm {
            Crm::Zoho => system.sandbox.revoke_refresh_tokens(),
            Crm::Pipedrive => system.pipedrive.revoke_refresh_tokens(),
        }
    }
}

/// Whether the workspace's sync log says its connection broke.
async fn reported_broken(system: &TestSystem, owner_token: &str) -> bool {
    // Newest first, and a broken connection parks every later message with
    // an entry of its own: its one `connection_broken` entry can be pages
    // down by the next poll, so the whole log is read.
    let mut before = String::new();
    loop {
        let body = system
            .sync_log_page(owner_token, &format!("?limit=200{before}"))
            .await;
        let entries = body["entries"].as_array().cloned().unwrap_or_default();
        if entries.iter().any(|e| e["event"] == "connection_broken") {
            return true;
        }
        match body["next_before"].as_str() {
            Some(id) => {
                before = format!(
                    "&before={}",
                    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
                );
            }
            None => return false,
        }
    }
}

/// Reconnects the organization as a user would (disconnect, then the whole
/// OAuth flow; the settings activated again if that left them inactive),
/// each step retried while injected faults fail its own CRM calls.
async fn reconnect(system: &TestSystem, crm: Crm, owner_token: &str) {
    let disconnect = || async {
        system
            .call(
                reqwest::Method::POST,
                &format!("/oauth/{}/disconnect", crm.name()),
                owner_token,
                Some(json!({ "connection": "organization" })),
            )
            .await
    };
    let connect = || async {
        if crm == Crm::Pipedrive {
            system
                .pipedrive
                .set_authorizing_user("ana@acme.example")
                .expect("a seeded Pipedrive user");
        }
        let (status, body) = system
            .crm_oauth(crm.name(), owner_token, "organization")
            .await;
        (status, json!(body))
    };
    let settings = format!("/api/settings/{}", crm.name());
    let activate = || async {
        let (status, current) = system
            .call(reqwest::Method::GET, &settings, owner_token, None)
            .await;
        if status == 200 && current["settings"]["active"] == true {
            return (200, current);
        }
        system
            .call(
                reqwest::Method::POST,
                &format!("{settings}/activate"),
                owner_token,
                None,
            )
            .await
    };
    until_ok(crm, "disconnect", disconnect).await;
    until_ok(crm, "connect", connect).await;
    until_ok(crm, "activate the settings", activate).await;
}

/// Retries `step` until it answers 200.
async fn until_ok<F: std::future::Future<Output = (u16, serde_json::Value)>>(
    crm: Crm,
    what: &str,
    step: impl Fn() -> F,
) {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let (status, body) = step().await;
        if status == 200 {
            return;
        }
        last = Some((status, body));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!(
        "{}: could not {what} in {ATTEMPTS} attempts; last: {last:?}",
        crm.name()
    );
}

/// The CRM calls, note writes and tokens the run cost.
fn crm_figures(
    system: &TestSystem,
    crm: Crm,
    plan: &Plan,
    tokens_before: u64,
    refreshes_before: (u64, u64),
) -> CrmFigures {
    let messages = plan
        .chats
        .iter()
        .filter(|c| c.crm == crm)
        .map(|c| c.messages.len())
        .sum();
    let (calls, note_writes, tokens, refreshes, faults) = match crm {
        Crm::Zoho => {
            let requests: Vec<_> = system
                .sandbox
                .requests()
                .into_iter()
                .filter(|r| r.path.starts_with("/crm/"))
                .collect();
            let writes = requests
                .iter()
                .filter(|r| {
                    (r.method == "POST" && r.path.ends_with("/Notes"))
                        || (r.method == "PUT" && r.path.contains("/Notes/"))
                })
                .count();
            (
                requests.len(),
                writes,
                None,
                system.sandbox.token_refresh_count() - refreshes_before.0,
                system.sandbox.faults().report(),
            )
        }
        Crm::Pipedrive => {
            let requests: Vec<_> = system
                .pipedrive
                .requests()
                .into_iter()
                .filter(|r| r.path.starts_with("/api/") || r.path.starts_with("/v1/"))
                .collect();
            let writes = requests
                .iter()
                .filter(|r| {
                    (r.method == "POST" && r.path == "/v1/notes")
                        || (r.method == "PUT" && r.path.starts_with("/v1/notes/"))
                })
                .count();
            (
                requests.len(),
                writes,
                Some(system.pipedrive.tokens_used() - tokens_before),
                system.pipedrive.token_refresh_count() - refreshes_before.1,
                system.pipedrive.faults().report(),
            )
        }
    };
    CrmFigures {
        crm,
        messages,
        calls,
        note_writes,
        tokens,
        refreshes,
        faults,
    }
}
