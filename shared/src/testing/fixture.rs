//! A workspace ready to sync, for tests of the domain rules: in London, its
//! owner's WhatsApp number, an active organization connection and active
//! settings (Zoho: new chats become Leads, the number in `Mobile`, the name
//! in `Last_Name`), and messages from its contact.

use crate::model::{
    Chat, Connection, ConnectionKind, ConnectionStatus, CrmKind, MessageState, Role, StoredMessage,
    SyncSettings, User, WhatsAppNumber, Workspace, chat_key,
};
use crate::phone::E164;
use crate::queue::MessageRef;
use crate::retention::Retention;
use crate::whatsapp::Direction;

use super::{MemoryStore, new_chat};

pub const WORKSPACE_ID: &str = "ws";
pub const OWNER_ID: &str = "u-owner";
pub const OWNER_EMAIL: &str = "owner@acme.example";
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const OTHER_PHONE_NUMBER_ID: &str = "106540352242923";
/// The contact of every chat: `+447700900123`.
pub const CONTACT: &str = "447700900123";

/// Seeds the workspace, syncing to Zoho; returns it.
pub fn seed_workspace(store: &MemoryStore) -> Workspace {
    let workspace = Workspace {
        id: WORKSPACE_ID.into(),
        name: "Acme".into(),
        time_zone: "Europe/London".into(),
        created_at: 0,
        retention: Retention::default(),
        deleting_since: None,
    };
    store.seed_workspace(workspace.clone());
    store.seed_user(
        User {
            workspace_id: WORKSPACE_ID.into(),
            id: OWNER_ID.into(),
            email: OWNER_EMAIL.into(),
            role: Role::Owner,
            created_at: 0,
        },
        "owner-token-hash",
    );
    for (phone_number_id, display) in [
        (PHONE_NUMBER_ID, "+15550253483"),
        (OTHER_PHONE_NUMBER_ID, "+15550253484"),
    ] {
        store.seed_number(WhatsAppNumber {
            workspace_id: WORKSPACE_ID.into(),
            phone_number_id: phone_number_id.into(),
            display_phone_number: display.into(),
            owner_user_id: OWNER_ID.into(),
            access_token_enc: None,
            waba_id: None,
        });
    }
    store.seed_connection(organization_connection());
    store.seed_sync_settings(SyncSettings {
        destination_module: Some("Leads".into()),
        number_field: Some("Mobile".into()),
        name_field: Some("Last_Name".into()),
        active: true,
        ..SyncSettings::new(WORKSPACE_ID, CrmKind::Zoho, 0)
    });
    workspace
}

/// Seeds the contact's chat with the business number `phone_number_id`
/// (named Ana, not linked); returns it.
pub fn seed_chat(store: &MemoryStore, phone_number_id: &str) -> Chat {
    let contact = E164::from_wa_id(CONTACT).unwrap_or_else(|e| panic!("{CONTACT}: {e}"));
    let chat = Chat {
        contact_name: Some("Ana".into()),
        ..new_chat(
            WORKSPACE_ID,
            &chat_key(phone_number_id, &contact),
            phone_number_id,
            contact,
        )
    };
    store.seed_chat(chat.clone());
    chat
}

/// Seeds the contact's `texts` in `chat`, a minute apart from `start`
/// (unix seconds), queued; returns them as the queue hands them over.
pub fn seed_messages(
    store: &MemoryStore,
    chat: &Chat,
    start: i64,
    texts: &[&str],
) -> Vec<MessageRef> {
    texts
        .iter()
        .zip(0_i64..)
        .map(|(text, i)| {
            let message_id = format!("wamid.{}.{start}.{i}", chat.phone_number_id);
            store.seed_message(StoredMessage {
                workspace_id: WORKSPACE_ID.into(),
                message_id: message_id.clone(),
                chat_key: chat.key.clone(),
                direction: Direction::Inbound,
                timestamp: start + 60 * i,
                kind: "text".into(),
                text: (*text).to_owned(),
                media: None,
                contact_name: chat.contact_name.clone(),
                state: MessageState::Queued,
                received_at: start,
                attachment: None,
                attachment_started_at: None,
                sent_by: None,
                delivery: None,
                reply_to: None,
                reaction_to: None,
            });
            MessageRef {
                workspace_id: WORKSPACE_ID.into(),
                chat_key: chat.key.clone(),
                message_id,
                resend: 0,
            }
        })
        .collect()
}

/// The workspace's active organization connection to Zoho, made by its
/// owner as the CRM user `crm-admin`; its access token never runs out.
pub fn organization_connection() -> Connection {
    Connection {
        workspace_id: WORKSPACE_ID.into(),
        crm: CrmKind::Zoho,
        kind: ConnectionKind::Organization,
        user_id: OWNER_ID.into(),
        location: "us".into(),
        accounts_server: "http://127.0.0.1:9".into(),
        api_domain: "http://127.0.0.1:9".into(),
        crm_user_id: "crm-admin".into(),
        crm_user_email: "admin@acme.example".into(),
        crm_org_id: "org".into(),
        access_token_enc: String::new(),
        refresh_token_enc: String::new(),
        access_expires_at: i64::MAX,
        access_issued_at: 0,
        status: ConnectionStatus::Active,
        connected_at: 0,
        version: 1,
        refresh_lease_until: 0,
        shares_organization_grant: false,
    }
}
