//! CRM failures delay sync; they never drop or duplicate a message. Queues
//! here redeliver after 1 s (instead of the template's 180 s) so the
//! retries and the dead-lettering can be watched.

use e2e::{TestSystem, fixture};
use zoho_sandbox::SandboxConfig;

const ALICE: &str = "+447700900123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crm_outage_delays_the_sync_and_loses_or_duplicates_nothing() {
    let system = TestSystem::start_with_fast_retries(SandboxConfig::default(), 1).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    // The next three CRM calls fail: two 503s and a 429.
    system.sandbox.fail_next(2, 503, "INTERNAL_ERROR");
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    system
        .wait_for("the outage to be hit", || {
            (system
                .sandbox
                .requests()
                .iter()
                .filter(|r| r.status == 503)
                .count()
                == 2)
                .then_some(())
        })
        .await;
    system.sandbox.fail_next(1, 429, "TOO_MANY_REQUESTS");

    let (_, notes) = system.wait_for_note_line(ALICE, "Elm Road").await;
    assert_eq!(system.leads_with_mobile(ALICE).len(), 1);
    assert_eq!(notes.len(), 1);
    let content = notes[0]["Note_Content"].as_str().unwrap_or_default();
    assert_eq!(content.matches("Elm Road").count(), 1, "{content}");
    assert_eq!(system.queue_depth("SyncDeadLetterQueue").await, 0);
    assert_eq!(system.queue_depth("NotesDeadLetterQueue").await, 0);
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_keeps_failing_lands_in_the_dead_letter_queue_after_five_receives() {
    let system = TestSystem::start_with_fast_retries(SandboxConfig::default(), 1).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    // Zoho refuses every call as bad data: retrying cannot help.
    system.sandbox.fail_next(1000, 400, "INVALID_DATA");
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;

    let depth = system
        .eventually("the message in the dead-letter queue", || async {
            match system.queue_depth("SyncDeadLetterQueue").await {
                0 => Err("the dead-letter queue is empty".to_owned()),
                depth => Ok(depth),
            }
        })
        .await;
    assert_eq!(depth, 1, "the message is dead-lettered, not dropped");
    let attempts = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/search"))
        .count();
    assert_eq!(
        attempts, 5,
        "maxReceiveCount receives, then the dead-letter queue"
    );
    assert_eq!(system.queue_depth("SyncQueue").await, 0);
    assert!(system.customer_leads().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_found_on_retry_not_made_twice() {
    // Zoho's search does not see new records for ten minutes here, so only
    // reading the newest records can tell that the lost create happened.
    let system = TestSystem::start_with_fast_retries(
        SandboxConfig {
            search_index_delay: std::time::Duration::from_secs(600),
            ..SandboxConfig::default()
        },
        1,
    )
    .await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system
        .sandbox
        .lose_next_response("POST", "/crm/v8/Leads", 504);
    system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    let (lead, notes) = system.wait_for_note_line(ALICE, "Elm Road").await;
    assert_eq!(system.customer_leads().len(), 1, "one lead, not two");
    assert_eq!(notes.len(), 1);
    let creates = system
        .sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/crm/v8/Leads" && r.status == 504)
        .count();
    assert_eq!(creates, 1, "the create's answer was lost once");
    let created = system
        .log_entry(&workspace.owner_token, "", "created")
        .await;
    assert_eq!(
        created["detail"]["found_after"],
        "an interrupted create whose answer was lost"
    );
    assert_eq!(created["detail"]["record"]["id"], lead["id"]);
    assert_eq!(created["detail"]["owner_reason"], "whatsapp_number_owner");
    system.assert_contract_kept();
}
