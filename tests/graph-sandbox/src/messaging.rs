//! Sending, as tests see it: the types of the messaging API and the handle's
//! calls to record inbound traffic, inject failures, configure and emit
//! status webhooks, seed templates and read what was sent.

use std::time::Duration;

use serde_json::Value;

use crate::errors::CloudError;
use crate::templates::SeedTemplate;
use crate::{GraphSandboxError, GraphSandboxHandle, statuses};

/// The customer-service window: free-form messages may be sent for 24 hours
/// after the user's last message (WhatsApp reference §8).
pub const CUSTOMER_SERVICE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// How a free-form send outside the window fails. Meta: "fails with 131047
/// (often asynchronously, in a `failed` status webhook)".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowErrorMode {
    /// The send is accepted (a wamid is answered), then a `failed` status
    /// webhook with error 131047 follows — what Meta usually does.
    #[default]
    StatusWebhook,
    /// The send answers HTTP 400 with code 131047.
    HttpError,
}

/// A status of a business-sent message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    /// First play of a voice message.
    Played,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = GraphSandboxError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sent" => Ok(Self::Sent),
            "delivered" => Ok(Self::Delivered),
            "read" => Ok(Self::Read),
            "played" => Ok(Self::Played),
            "failed" => Ok(Self::Failed),
            other => Err(GraphSandboxError::UnknownStatus(other.to_owned())),
        }
    }
}

/// The status webhooks the sandbox sends by itself after a successful send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusProgression {
    /// `false`: no automatic `sent`/`delivered`/`read` (failures of a send —
    /// 131047, [`GraphSandboxHandle::fail_next_delivery`] — are still sent);
    /// tests emit statuses with [`GraphSandboxHandle::emit_status`].
    pub enabled: bool,
    /// Wait before each webhook (the first one included).
    pub step_delay: Duration,
    /// The last status reached: `Sent`, `Delivered` or `Read`. Reactions
    /// stop at `sent` whatever this says (live-chat reference §3.3).
    pub until: DeliveryStatus,
    /// Post `read` before `delivered` (Meta does not guarantee the order);
    /// timestamps keep the true order.
    pub read_before_delivered: bool,
}

impl Default for StatusProgression {
    fn default() -> Self {
        Self {
            enabled: true,
            step_delay: Duration::from_millis(20),
            until: DeliveryStatus::Delivered,
            read_before_delivered: false,
        }
    }
}

/// Where status webhooks go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    pub url: String,
    /// Keys `X-Hub-Signature-256`.
    pub app_secret: String,
}

/// What became of a `POST …/messages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Answered with a wamid; statuses follow.
    Accepted,
    /// Answered with a wamid; a `failed` status with this code follows.
    AcceptedThenFailed { code: i64 },
    /// A mark-as-read (or typing indicator) call that succeeded.
    MarkedRead,
    /// Answered with Graph's error envelope.
    Refused { status: u16, code: i64 },
}

/// One `POST …/messages` the sandbox received.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    pub phone_number_id: String,
    /// The request body as parsed (a JSON string of the raw text when it was
    /// not JSON).
    pub body: Value,
    /// The body's `type` (`text`, `template`, …), `read` for mark-as-read,
    /// `""` when unknown.
    pub kind: String,
    /// `to` as given.
    pub to: Option<String>,
    /// `to` as WhatsApp resolved it (digits).
    pub wa_id: Option<String>,
    /// The wamid answered (for a mark-as-read: the message marked).
    pub message_id: Option<String>,
    pub outcome: SendOutcome,
    /// Unix seconds (sandbox clock).
    pub timestamp: i64,
}

/// One status inside an emitted webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedStatus {
    pub message_id: String,
    pub status: DeliveryStatus,
    /// The error code of a `failed` status.
    pub error_code: Option<i64>,
}

/// A status webhook the sandbox produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedWebhook {
    pub statuses: Vec<EmittedStatus>,
    /// The exact bytes posted (escaped-Unicode JSON, as Meta signs it).
    pub body: String,
    /// `X-Hub-Signature-256` value (`sha256=<hex>`); `None` without target.
    pub signature: Option<String>,
    /// The URL posted to; `None`: no webhook target was set, nothing posted.
    pub url: Option<String>,
    /// The receiver's HTTP status.
    pub response_status: Option<u16>,
    /// Why the POST failed (connection refused, timeout…).
    pub error: Option<String>,
}

impl GraphSandboxHandle {
    /// The user `wa_id` wrote to the business number at `timestamp` (unix
    /// seconds): opens (or extends) the 24-hour window. Call it with each
    /// inbound webhook a test posts.
    pub fn record_inbound(&self, phone_number_id: &str, wa_id: &str, timestamp: i64) {
        self.shared
            .store()
            .chat
            .record_inbound(phone_number_id, wa_id, timestamp);
    }

    /// [`Self::record_inbound`] that also remembers the message id, so a
    /// mark-as-read of it can be checked (30 days).
    pub fn record_inbound_message(
        &self,
        phone_number_id: &str,
        wa_id: &str,
        message_id: &str,
        timestamp: i64,
    ) {
        let mut st = self.shared.store();
        st.chat.record_inbound(phone_number_id, wa_id, timestamp);
        st.chat.inbound_ids.insert(message_id.to_owned(), timestamp);
    }

    /// The next message send (not mark-as-read) answers Graph's error for
    /// `code` over HTTP: 130429 (rate limit), 131056 (pair rate limit),
    /// 131026 (undeliverable), 131000 (HTTP 500), … Queued: each call fails
    /// one more send.
    pub fn fail_next_send(&self, code: i64) {
        self.shared.store().chat.send_faults.push_back(code);
    }

    /// The next accepted message send is answered with a wamid, then fails
    /// with `code` in a `failed` status webhook (how 131026 and 131047
    /// usually arrive).
    pub fn fail_next_delivery(&self, code: i64) {
        self.shared.store().chat.delivery_faults.push_back(code);
    }

    pub fn set_window_error_mode(&self, mode: WindowErrorMode) {
        self.shared.store().chat.window_mode = mode;
    }

    /// Status webhooks go to `url`, signed with `app_secret`.
    pub fn set_webhook(&self, url: &str, app_secret: &str) {
        self.shared.store().chat.webhook = Some(WebhookTarget {
            url: url.to_owned(),
            app_secret: app_secret.to_owned(),
        });
    }

    /// Status webhooks are only recorded from now on.
    pub fn clear_webhook(&self) {
        self.shared.store().chat.webhook = None;
    }

    pub fn set_status_progression(&self, progression: StatusProgression) {
        self.shared.store().chat.progression = progression;
    }

    pub fn set_include_conversation(&self, include: bool) {
        self.shared.store().chat.include_conversation = include;
    }

    /// Posts one status webhook for a message the sandbox accepted
    /// (`"sent"`, `"delivered"`, `"read"`, `"played"`; `"failed"` carries
    /// 131000 — use [`Self::emit_failure`] for another code). Any order
    /// is allowed: out-of-order delivery is a test's to make.
    pub async fn emit_status(
        &self,
        message_id: &str,
        status: &str,
    ) -> Result<EmittedWebhook, GraphSandboxError> {
        self.emit_statuses(message_id, &[status]).await
    }

    /// One webhook carrying several statuses of a message, in the given
    /// order (Meta batches; `["read", "delivered"]` is out of order).
    pub async fn emit_statuses(
        &self,
        message_id: &str,
        statuses: &[&str],
    ) -> Result<EmittedWebhook, GraphSandboxError> {
        let planned = statuses
            .iter()
            .map(|s| {
                let status: DeliveryStatus = s.parse()?;
                let error = (status == DeliveryStatus::Failed)
                    .then(|| CloudError::new(131000, "Message failed to send."));
                Ok(statuses::Planned::now(status, error))
            })
            .collect::<Result<Vec<_>, GraphSandboxError>>()?;
        statuses::emit(&self.shared, message_id, &planned).await
    }

    /// A `failed` status with `code` (details from the error catalogue).
    pub async fn emit_failure(
        &self,
        message_id: &str,
        code: i64,
    ) -> Result<EmittedWebhook, GraphSandboxError> {
        let error = CloudError::new(code, crate::errors::code_info(code).default_details);
        let planned = statuses::Planned::now(DeliveryStatus::Failed, Some(error));
        statuses::emit(&self.shared, message_id, &[planned]).await
    }

    /// Waits until every automatic status webhook planned so far has been
    /// posted (or `timeout` passes); answers whether they all went.
    pub async fn settle_statuses(&self, timeout: Duration) -> bool {
        let mut pending = self.shared.pending_statuses.subscribe();
        tokio::time::timeout(timeout, pending.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Every `POST …/messages` so far, refused ones included.
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.shared.store().chat.sent.clone()
    }

    pub fn clear_sent_messages(&self) {
        self.shared.store().chat.sent.clear();
    }

    /// Every status webhook produced so far, posted or not.
    pub fn emitted_webhooks(&self) -> Vec<EmittedWebhook> {
        self.shared.store().chat.webhooks.clone()
    }

    /// Adds a template (or replaces the one with its WABA, name and
    /// language).
    pub fn seed_template(&self, template: SeedTemplate) {
        self.shared.store().chat.seed_template(template);
    }

    /// Changes a template's status (`PAUSED`, `DISABLED`, `APPROVED`…) in
    /// every WABA; answers whether one was found.
    pub fn set_template_status(&self, name: &str, language: &str, status: &str) -> bool {
        let mut st = self.shared.store();
        let mut found = false;
        for t in st
            .chat
            .templates
            .iter_mut()
            .filter(|t| t.name == name && t.language == language)
        {
            t.status = status.to_owned();
            found = true;
        }
        found
    }

    pub fn templates(&self) -> Vec<SeedTemplate> {
        self.shared.store().chat.templates.clone()
    }
}
