//! The local stack is as strict as AWS: each function runs with its own role
//! (the template through the SAM translator, enforced by moto), its own
//! environment, and its time-out.

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use e2e::{TestSystem, altered_template, fixture};
use graph_sandbox::{Endpoint, SeedMedia};

/// Whether an AWS error means "not allowed" (as opposed to a call that was
/// authorised and then failed for another reason). moto answers a refused
/// Secrets Manager call in XML, which the JSON SDK cannot read: its 403
/// tells.
fn is_access_denied<E: ProvideErrorMetadata, R: HttpStatus>(
    error: &aws_sdk_sqs::error::SdkError<E, R>,
) -> bool {
    let code = error.as_service_error().and_then(|e| e.code());
    matches!(code, Some("AccessDenied" | "AccessDeniedException"))
        || error.raw_response().is_some_and(|r| r.status_code() == 403)
}

trait HttpStatus {
    fn status_code(&self) -> u16;
}

impl HttpStatus for aws_sdk_sqs::config::http::HttpResponse {
    fn status_code(&self) -> u16 {
        self.status().as_u16()
    }
}

async fn reads_secret(config: &aws_config::SdkConfig, arn: &str) -> bool {
    let result = aws_sdk_secretsmanager::Client::new(config)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await;
    let denied = result.as_ref().err().is_some_and(is_access_denied);
    assert!(
        denied || result.is_ok(),
        "reading {arn} failed otherwise: {result:?}"
    );
    !denied
}

/// Whether the role may send to the queue. The probe leaves nothing on it:
/// a FIFO send without a group id is refused after authorisation.
async fn sends_to(config: &aws_config::SdkConfig, queue_url: &str) -> bool {
    let result = aws_sdk_sqs::Client::new(config)
        .send_message()
        .queue_url(queue_url)
        .message_body("iam probe")
        .send()
        .await;
    let error = result.expect_err("the probe must not enqueue anything");
    !is_access_denied(&error)
}

/// Whether the role may change visibility on the queue (a made-up receipt
/// handle is refused after authorisation).
async fn changes_visibility(config: &aws_config::SdkConfig, queue_url: &str) -> bool {
    let result = aws_sdk_sqs::Client::new(config)
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle("not-a-receipt-handle")
        .visibility_timeout(5)
        .send()
        .await;
    let error = result.expect_err("a made-up receipt handle is refused");
    !is_access_denied(&error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_function_may_call_only_what_its_role_grants() {
    let system = TestSystem::start().await;
    let stack = &system.local.stack;
    let secret = |id: &str| stack.secret_ids[id].clone();
    let queue = |id: &str| stack.queue_url(id).expect("queue").to_owned();
    // (function, secrets it reads, queues it sends to, queue it backs off on)
    type Grants<'a> = (&'a str, &'a [&'a str], &'a [&'a str], Option<&'a str>);
    let expected: [Grants; 5] = [
        (
            "WebhookFunction",
            &["AppKeySecret", "MetaAppSecret"],
            &["SyncQueue"],
            None,
        ),
        (
            "OAuthFunction",
            &["AppKeySecret", "ZohoClientSecret"],
            &["SyncQueue"],
            None,
        ),
        (
            "ApiFunction",
            &["AppKeySecret", "OperatorKeySecret", "ZohoClientSecret"],
            &["SyncQueue"],
            None,
        ),
        (
            "RecordSyncFunction",
            &["AppKeySecret", "ZohoClientSecret"],
            &["NotesQueue", "SyncQueue"],
            Some("SyncQueue"),
        ),
        (
            "NoteAppendFunction",
            &["AppKeySecret", "ZohoClientSecret"],
            &["SyncQueue"],
            Some("NotesQueue"),
        ),
    ];
    let all_secrets = [
        "AppKeySecret",
        "OperatorKeySecret",
        "MetaAppSecret",
        "ZohoClientSecret",
    ];
    let all_queues = [
        "SyncQueue",
        "NotesQueue",
        "SyncDeadLetterQueue",
        "NotesDeadLetterQueue",
    ];
    let mut wrong = Vec::new();
    for (function, secrets, sends, backs_off_on) in expected {
        let config = system.local.aws_as(function).expect("the function's role");
        for id in all_secrets {
            let allowed = reads_secret(&config, &secret(id)).await;
            if allowed != secrets.contains(&id) {
                wrong.push(format!("{function} reads {id}: {allowed}"));
            }
        }
        for id in all_queues {
            let allowed = sends_to(&config, &queue(id)).await;
            if allowed != sends.contains(&id) {
                wrong.push(format!("{function} sends to {id}: {allowed}"));
            }
            let allowed = changes_visibility(&config, &queue(id)).await;
            if allowed != (backs_off_on == Some(id)) {
                wrong.push(format!("{function} changes visibility on {id}: {allowed}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "roles differ from what the code needs: {wrong:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permission_removed_from_the_template_is_refused_locally() {
    // The webhook loses its right to send to the sync queue.
    let template = altered_template(|t| {
        t.replacen(
            "/index/ByChat\"\n        - SQSSendMessagePolicy:\n            QueueName: !GetAtt SyncQueue.QueueName\n        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref MetaAppSecret",
            "/index/ByChat\"\n        - AWSSecretsManagerGetSecretValuePolicy:\n            SecretArn: !Ref MetaAppSecret",
            1,
        )
    });
    let system = TestSystem::start_with_template(template, None).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    let config = system.local.aws_as("WebhookFunction").expect("role");
    let sync_queue = system.local.stack.queue_url("SyncQueue").expect("queue");
    assert!(
        !sends_to(&config, sync_queue).await,
        "the altered role may not send"
    );
    // Meta's delivery fails (and Meta will deliver it again) instead of
    // being acknowledged and never synced.
    let response = system
        .post_webhook(&fixture("cloud-text-inbound.json"))
        .await;
    assert_eq!(response.status(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_would_outlive_the_invocation_is_given_up_in_time() {
    // note-append gets 14 s (a group is started only with 10 s left); the
    // media download is held far longer. The call is given up before the
    // deadline, the batch answered, and the message tried again later:
    // Lambda never has to cut the invocation off.
    let template = altered_template(|t| {
        t.replacen(
            "      Description: Appends conversation notes to CRM records (NotesQueue consumer).\n",
            "      Description: Appends conversation notes to CRM records (NotesQueue consumer).\n      Timeout: 14\n",
            1,
        )
    });
    let system = TestSystem::start_with_template(template, None).await;
    let workspace = system.workspace("bruno@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system.graph.seed_media(SeedMedia::generated(
        "1200000000000001",
        "image/jpeg",
        48_213,
    ));
    let held = system.graph.hold(Endpoint::Metadata);
    let response = system
        .post_webhook(&fixture("cloud-image-inbound.json"))
        .await;
    assert_eq!(response.status(), 200);
    let photo_id = "wamid.HBgMNDQ3NzAwOTAwMTIzFQIAEhgURkFLRTAwMDAwMDAwMDAwMDAwMDQA";
    system.wait_for_message_state(photo_id, "retrying").await;
    held.release();
    system
        .wait_for_note_line("+447700900123", "(attached: image-1200000000000001.jpg)")
        .await;
    system.wait_for_message_state(photo_id, "appended").await;
    assert_eq!(
        system.local.functions["NoteAppendFunction"].timeouts(),
        0,
        "no invocation ran into Lambda's time-out"
    );
    let attached = system
        .sandbox
        .attachments()
        .iter()
        .filter(|a| a["File_Name"] == "image-1200000000000001.jpg")
        .count();
    assert_eq!(attached, 1, "the file is attached once");
}
