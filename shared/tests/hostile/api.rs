//! Every JSON body the HTTP API accepts, given arbitrary JSON and arbitrary
//! bytes: an answer below 500 (a refusal a clear 4xx), never a panic.

use lambda_http::Body;
use proptest::prelude::*;
use serde_json::{Value, json};
use shared::handlers::{api, oauth};
use shared::model::{Chat, CrmKind, MessageState, RecordRef, StoredMessage};
use shared::phone::E164;
use shared::testing::{MemoryStore, new_chat};

use super::{
    Checked, MEMBER_TOKEN, NOW, OPERATOR_KEY, OWNER_TOKEN, PHONE_NUMBER_ID, Violation,
    WORKSPACE_ID, answer, harness, no_server_error,
};

/// A route that reads a JSON body: method, path, which function serves it.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub oauth: bool,
    /// The fields a body of the right shape has, to mutate.
    pub shape: &'static str,
}

pub const ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/api/workspaces",
        oauth: false,
        shape: r#"{"name":"Acme","owner_email":"a@acme.test","time_zone":"Europe/Lisbon"}"#,
    },
    Route {
        method: "PUT",
        path: "/api/workspace/retention",
        oauth: false,
        shape: r#"{"days":30}"#,
    },
    Route {
        method: "DELETE",
        path: "/api/workspace",
        oauth: false,
        shape: r#"{"confirm_workspace_id":"ws-other"}"#,
    },
    Route {
        method: "POST",
        path: "/api/users",
        oauth: false,
        shape: r#"{"email":"b@acme.test","role":"member"}"#,
    },
    Route {
        method: "POST",
        path: "/api/whatsapp-numbers",
        oauth: false,
        shape: r#"{"phone_number_id":"106540352242999","display_phone_number":"+44 7700 900100","access_token":"forged","waba_id":"1"}"#,
    },
    Route {
        method: "PUT",
        path: "/api/chats/106540352242922%23447700900123/responsible",
        oauth: false,
        shape: r#"{"user_id":"u-member"}"#,
    },
    Route {
        method: "PUT",
        path: "/api/chats/106540352242922%23447700900123/record",
        oauth: false,
        shape: r#"{"crm":"zoho","module":"Leads","id":"1"}"#,
    },
    Route {
        method: "POST",
        path: "/api/chats/106540352242922%23447700900123/messages/wamid.seeded/replay",
        oauth: false,
        shape: r#"{}"#,
    },
    Route {
        method: "PUT",
        path: "/api/settings/zoho",
        oauth: false,
        shape: r#"{"destination_module":"Leads","number_field":"Phone","name_field":"Last_Name","on_converted":"stop","time_zone":"UTC"}"#,
    },
    Route {
        method: "PATCH",
        path: "/api/settings/pipedrive",
        oauth: false,
        shape: r#"{"destination_module":"persons","number_field":"phone","create":"person_and_lead"}"#,
    },
    Route {
        method: "POST",
        path: "/api/live/pipedrive/session",
        oauth: false,
        shape: r#"{"token":"eyJhbGciOiJIUzI1NiJ9.e30.x"}"#,
    },
    Route {
        method: "POST",
        path: "/api/live/chats/106540352242922%23447700900123/messages",
        oauth: false,
        shape: r#"{"text":"hi","client_id":"c-1"}"#,
    },
    Route {
        method: "POST",
        path: "/oauth/zoho/start",
        oauth: true,
        shape: r#"{"connection":"personal"}"#,
    },
    Route {
        method: "POST",
        path: "/oauth/pipedrive/disconnect",
        oauth: true,
        shape: r#"{"connection":"organization"}"#,
    },
];

/// Who calls: the owner, a member, the operator, or a forged token.
#[derive(Debug, Clone, Copy)]
pub enum Caller {
    Owner,
    Member,
    Operator,
    Forged,
}

#[derive(Debug, Clone)]
pub struct Call {
    pub route: usize,
    pub caller: Caller,
    pub body: Vec<u8>,
}

/// Any JSON value, nested a few levels, with the keys the API reads among
/// the random ones.
pub fn any_json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        3 => proptest::sample::select(&[
            "name", "owner_email", "time_zone", "days", "confirm_workspace_id", "email",
            "role", "phone_number_id", "display_phone_number", "access_token", "waba_id",
            "owner_user_id", "user_id", "crm", "module", "id", "connection", "token",
            "text", "client_id", "destination_module", "number_field", "on_converted",
            "object", "entry", "changes", "value", "messages", "metadata", "type",
        ][..]).prop_map(str::to_owned),
        1 => any::<String>(),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        prop_oneof![
            Just(u64::MAX),
            Just(0),
            Just(1),
            Just(3651),
            Just(i64::MAX as u64 + 1)
        ]
        .prop_map(|n| json!(n)),
        super::webhook::any_text().prop_map(Value::String),
        proptest::sample::select(
            &[
                "",
                " ",
                "owner",
                "admin",
                "member",
                "organization",
                "personal",
                "zoho",
                "pipedrive",
                "UTC",
                "Mars/Olympus",
                "a@b",
                "a@b.c",
                "ws-hostile",
                "u-owner",
                "106540352242922",
                "+44 7700 900100",
                "stop",
                "continue",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(3, 24, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: bytes, any JSON, or the route's own shape with one field
/// removed, retyped or given another value.
fn body_for(route: usize) -> impl Strategy<Value = Vec<u8>> {
    let shape: Value = serde_json::from_str(ROUTES[route].shape).unwrap_or_default();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        2 => any_json().prop_map(|v| v.to_string().into_bytes()),
        3 => (any::<usize>(), prop::option::of(any_json())).prop_map(move |(at, value)| {
            let mut body = shape.clone();
            if let Some(map) = body.as_object_mut()
                && !map.is_empty()
            {
                let key = map.keys().nth(at % map.len()).cloned().unwrap_or_default();
                match value {
                    Some(v) => {
                        map.insert(key, v);
                    }
                    None => {
                        map.remove(&key);
                    }
                }
            }
            body.to_string().into_bytes()
        }),
    ]
}

pub fn call() -> impl Strategy<Value = Call> {
    (0..ROUTES.len()).prop_flat_map(|route| {
        (
            Just(route),
            prop_oneof![
                6 => Just(Caller::Owner),
                2 => Just(Caller::Member),
                1 => Just(Caller::Operator),
                1 => Just(Caller::Forged),
            ],
            body_for(route),
        )
            .prop_map(|(route, caller, body)| Call {
                route,
                caller,
                body,
            })
    })
}

pub fn check(call: &Call) -> Checked {
    let h = harness();
    let case = h.case();
    seed_chat_with_message(&case.store);
    let route = ROUTES[call.route];
    let token = match call.caller {
        Caller::Owner => OWNER_TOKEN,
        Caller::Member => MEMBER_TOKEN,
        // The operator key is the one bearer POST /api/workspaces takes.
        Caller::Operator => OPERATOR_KEY,
        Caller::Forged => "forged-token",
    };
    let request = lambda_http::http::Request::builder()
        .method(route.method)
        .uri(format!("https://hostile.test{}", route.path))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::Binary(call.body.clone()))
        .map_err(|e| Violation::Property(format!("request: {e}")))?;
    let response = if route.oauth {
        h.block_on(oauth::handle(&case.deps, request))
    } else {
        h.block_on(api::handle(&case.deps, request))
    }
    .map_err(|e| Violation::Property(format!("the handler failed: {e}")))?;
    let (status, body) = answer(&response);
    no_server_error(status, &body)
}

/// The chat the chat routes address, with two candidate records and a
/// dead-lettered message.
fn seed_chat_with_message(store: &MemoryStore) {
    let contact = E164::from_wa_id("447700900123").expect("a number");
    let key = shared::model::chat_key(PHONE_NUMBER_ID, &contact);
    let candidate = |id: &str| RecordRef {
        crm: CrmKind::Zoho,
        module: "Leads".into(),
        id: id.into(),
    };
    store.seed_chat(Chat {
        contact_name: Some("Ana".into()),
        ambiguous_candidates: vec![candidate("1"), candidate("2")],
        ..new_chat(WORKSPACE_ID, &key, PHONE_NUMBER_ID, contact)
    });
    store.seed_message(StoredMessage {
        workspace_id: WORKSPACE_ID.into(),
        message_id: "wamid.seeded".into(),
        chat_key: key,
        direction: shared::whatsapp::Direction::Inbound,
        timestamp: NOW - 3600,
        kind: "text".into(),
        text: "hello".into(),
        media: None,
        contact_name: Some("Ana".into()),
        state: MessageState::DeadLettered {
            reason: "the CRM refused it".into(),
        },
        received_at: NOW - 3600,
        attachment: None,
        attachment_started_at: None,
        sent_by: None,
        delivery: None,
        reply_to: None,
        reaction_to: None,
    });
}
