//! The messaging side of the sandbox's state: templates, the customer-service
//! windows, messages sent, injected send failures and the webhook settings.
//! Held inside [`crate::store::Store`], under its lock.

use std::collections::{HashMap, VecDeque};

use crate::messaging::{
    EmittedWebhook, SentMessage, StatusProgression, WebhookTarget, WindowErrorMode,
};
use crate::templates::SeedTemplate;

/// What a send left behind for its status webhooks.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub phone_number_id: String,
    pub wa_id: String,
    /// `pricing` of its `sent` and `delivered` statuses.
    pub pricing: serde_json::Value,
    /// `conversation.id` when statuses carry a conversation.
    pub conversation_id: String,
    /// Echoed in its statuses, as Meta does.
    pub biz_opaque_callback_data: Option<String>,
    /// Unix seconds of the send.
    pub sent_at: i64,
}

pub struct ChatState {
    pub default_waba_id: String,
    pub templates: Vec<SeedTemplate>,
    /// Last inbound message time (unix seconds) by (business number, wa_id).
    pub last_inbound: HashMap<(String, String), i64>,
    /// Inbound message ids the tests told about, with their time.
    pub inbound_ids: HashMap<String, i64>,
    /// Messages the sandbox accepted, by wamid.
    pub outgoing: HashMap<String, Outgoing>,
    pub sent: Vec<SentMessage>,
    /// Codes the next sends answer over HTTP.
    pub send_faults: VecDeque<i64>,
    /// Codes the next accepted sends fail with, in a status webhook.
    pub delivery_faults: VecDeque<i64>,
    pub window_mode: WindowErrorMode,
    pub progression: StatusProgression,
    pub webhook: Option<WebhookTarget>,
    pub include_conversation: bool,
    pub webhooks: Vec<EmittedWebhook>,
}

impl ChatState {
    pub fn new(config: &crate::GraphSandboxConfig) -> Self {
        Self {
            default_waba_id: config.waba_id.clone(),
            templates: config.templates.clone(),
            last_inbound: HashMap::new(),
            inbound_ids: HashMap::new(),
            outgoing: HashMap::new(),
            sent: Vec::new(),
            send_faults: VecDeque::new(),
            delivery_faults: VecDeque::new(),
            window_mode: config.window_error_mode,
            progression: config.status_progression.clone(),
            webhook: config.webhook.clone(),
            include_conversation: config.include_conversation,
            webhooks: Vec::new(),
        }
    }

    /// Adds a template or replaces the one of the same WABA, name and
    /// language.
    pub fn seed_template(&mut self, template: SeedTemplate) {
        let default = self.default_waba_id.clone();
        let waba = |t: &SeedTemplate| t.waba_id.clone().unwrap_or_else(|| default.clone());
        let new_waba = waba(&template);
        self.templates.retain(|t| {
            !(t.name == template.name && t.language == template.language && waba(t) == new_waba)
        });
        self.templates.push(template);
    }

    pub fn waba_of_template<'a>(&'a self, t: &'a SeedTemplate) -> &'a str {
        t.waba_id.as_deref().unwrap_or(&self.default_waba_id)
    }

    /// The templates of one WABA, in seeding order.
    pub fn templates_of<'a>(
        &'a self,
        waba_id: &'a str,
    ) -> impl Iterator<Item = &'a SeedTemplate> + Clone + 'a {
        self.templates
            .iter()
            .filter(move |t| self.waba_of_template(t) == waba_id)
    }

    pub fn record_inbound(&mut self, phone_number_id: &str, wa_id: &str, timestamp: i64) {
        let key = (phone_number_id.to_owned(), digits(wa_id));
        let last = self.last_inbound.entry(key).or_insert(timestamp);
        // Webhooks may arrive out of order: the window follows the newest.
        *last = (*last).max(timestamp);
    }

    /// Whether a free-form message may go to `wa_id` at `now` (unix seconds).
    pub fn window_open(&self, phone_number_id: &str, wa_id: &str, now: i64) -> bool {
        let window = crate::messaging::CUSTOMER_SERVICE_WINDOW.as_secs() as i64;
        self.last_inbound
            .get(&(phone_number_id.to_owned(), wa_id.to_owned()))
            .is_some_and(|last| now - last < window)
    }
}

/// The digits of a phone number or wa_id (`+44 7700-900123` →
/// `447700900123`).
pub fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}
