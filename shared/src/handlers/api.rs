//! The `api` function: workspaces (their retention, their deletion), users
//! and WhatsApp numbers.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use super::http::{
    ApiError, HttpResponse, bearer, caller, json_body, json_response, no_route, path_segments,
    query_params,
};
use crate::business_numbers::BusinessNumberError;
use crate::crypto::{hash_token, random_token, secrets_equal};
use crate::deps::Deps;
use crate::model::{
    Chat, ChatPatch, ConnectionKind, CrmKind, MessageState, RecordRef, Role, User, WhatsAppNumber,
    Workspace, chat_key_for_logs,
};
use crate::phone::E164;
use crate::queue::{MessageRef, QueueName};
use crate::retention::{self, Retention};
use crate::sync::resend_marker;
use crate::synclog::{self, LogEntryDraft, SyncEvent};

pub async fn handle(deps: &Deps, req: Request) -> Result<HttpResponse, lambda_http::Error> {
    Ok(route(deps, &req)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn route(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let segments = path_segments(req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method().as_str(), segments.as_slice()) {
        ("POST", ["api", "workspaces"]) => create_workspace(deps, req).await,
        ("GET", ["api", "me"]) => me(deps, req).await,
        ("GET", ["api", "workspace", "retention"]) => retention(deps, req).await,
        ("PUT", ["api", "workspace", "retention"]) => set_retention(deps, req).await,
        ("DELETE", ["api", "workspace"]) => delete_workspace(deps, req).await,
        ("POST", ["api", "users"]) => add_user(deps, req).await,
        ("POST", ["api", "whatsapp-numbers"]) => add_whatsapp_number(deps, req).await,
        ("DELETE", ["api", "users", user_id]) => remove_user(deps, req, user_id).await,
        ("POST", ["api", "me", "token"]) => rotate_token(deps, req).await,
        ("GET", ["api", "sync-log"]) => sync_log(deps, req).await,
        ("GET", ["api", "usage"]) => super::usage::show(deps, req).await,
        ("PUT", ["api", "usage"]) => super::usage::set_plan(deps, req).await,
        ("GET", ["api", "chats", chat_key, "messages"]) => chat_messages(deps, req, chat_key).await,
        ("GET", ["api", "chats"]) => list_chats(deps, req).await,
        ("PUT", ["api", "chats", chat_key, "responsible"]) => {
            set_responsible(deps, req, chat_key).await
        }
        ("PUT", ["api", "chats", chat_key, "record"]) => choose_record(deps, req, chat_key).await,
        ("POST", ["api", "chats", chat_key, "messages", message_id, "replay"]) => {
            replay(deps, req, chat_key, message_id).await
        }
        ("GET", ["live", "sdk", file]) => {
            crate::livechat::page::sdk(file).ok_or_else(|| no_route(req))
        }
        ("GET", ["live", crm]) => {
            crate::livechat::page::page(crm, &crate::livechat::page::extra_ancestors_from_env())
                .ok_or_else(|| no_route(req))
        }
        (_, ["api", "live", rest @ ..]) => super::live::route(deps, req, rest).await,
        (_, ["api", "settings", crm, rest @ ..]) => {
            super::settings::route(deps, req, crm, rest).await
        }
        (_, ["api", "workspaces" | "users" | "whatsapp-numbers"])
        | (_, ["api", "chats", _, "messages", _, "replay"])
        | (_, ["api", "me", "token"]) => Err(ApiError::MethodNotAllowed("POST")),
        (_, ["api", "me" | "sync-log" | "chats"]) | (_, ["api", "chats", _, "messages"]) => {
            Err(ApiError::MethodNotAllowed("GET"))
        }
        (_, ["api", "workspace"] | ["api", "users", _]) => {
            Err(ApiError::MethodNotAllowed("DELETE"))
        }
        (_, ["api", "workspace", "retention"] | ["api", "usage"]) => {
            Err(ApiError::MethodNotAllowed("GET, PUT"))
        }
        (_, ["api", "chats", _, "responsible" | "record"]) => {
            Err(ApiError::MethodNotAllowed("PUT"))
        }
        _ => Err(no_route(req)),
    }
}

#[derive(Deserialize)]
struct NewWorkspace {
    name: String,
    owner_email: String,
    time_zone: Option<String>,
}

/// Operator only: a new business and its owner. The owner's API token is in
/// the answer and nowhere else: only its hash is stored.
async fn create_workspace(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let operator_key = deps.secrets.operator_key().await?;
    let presented = bearer(req).unwrap_or_default();
    if presented.is_empty() || !secrets_equal(presented, operator_key) {
        return Err(ApiError::Unauthorized(
            "creating a workspace needs the operator key".into(),
        ));
    }
    let input: NewWorkspace = json_body(req)?;
    let time_zone = input.time_zone.unwrap_or_else(|| "UTC".to_owned());
    if !crate::time_zone::is_known(&time_zone) {
        return Err(ApiError::BadRequest(format!(
            "time_zone `{time_zone}` is not an IANA time zone"
        )));
    }
    let email = valid_email(&input.owner_email)?;
    let now = deps.clock.now();
    let workspace = Workspace {
        id: uuid::Uuid::new_v4().to_string(),
        name: input.name,
        time_zone,
        created_at: now,
        retention: Retention::default(),
        deleting_since: None,
    };
    let owner = User {
        workspace_id: workspace.id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        email,
        role: Role::Owner,
        created_at: now,
    };
    let token = random_token();
    deps.store
        .create_workspace(&workspace, &owner, &hash_token(&token))
        .await?;
    tracing::info!(workspace_id = %workspace.id, "workspace created");
    Ok(json_response(
        201,
        &json!({ "workspace": workspace, "owner": owner, "api_token": token }),
    ))
}

async fn me(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let workspace = deps.store.workspace(&user.workspace_id).await?;
    Ok(json_response(
        200,
        &json!({ "user": user, "workspace": workspace }),
    ))
}

/// How long the workspace keeps message content, and the bounds a change
/// must keep to.
fn retention_answer(retention: Retention) -> serde_json::Value {
    json!({
        "days": retention.days(),
        "default_days": retention::DEFAULT_DAYS,
        "min_days": retention::MIN_DAYS,
        "max_days": retention::MAX_DAYS,
    })
}

async fn retention(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let workspace = deps
        .store
        .workspace(&me.workspace_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("the workspace is gone".into()))?;
    Ok(json_response(200, &retention_answer(workspace.retention)))
}

#[derive(Deserialize)]
struct RetentionChange {
    /// Read as any JSON value, so that every wrong one gets the same clear
    /// refusal.
    #[serde(default)]
    days: serde_json::Value,
}

/// The owner or an admin sets how long message content is kept. Items
/// written from now on get it, and a job gives it to those stored.
async fn set_retention(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    if !me.role.manages_workspace() {
        return Err(ApiError::Forbidden(
            "only the workspace owner or an admin can change how long message content is kept"
                .into(),
        ));
    }
    let change: RetentionChange = json_body(req)?;
    let retention =
        Retention::from_json(&change.days).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if !deps
        .store
        .set_retention(&me.workspace_id, retention)
        .await?
    {
        return Err(ApiError::NotFound("the workspace is gone".into()));
    }
    tracing::info!(workspace_id = %me.workspace_id, days = retention.days(), "retention set");
    synclog::workspace_event(
        deps,
        &me.workspace_id,
        SyncEvent::RetentionSet,
        json!({ "days": retention.days(), "by_user": me.id }),
    )
    .await;
    if let Err(e) = retention::request(deps, &me.workspace_id, retention).await {
        tracing::error!(workspace_id = %me.workspace_id, error = %e, "could not request the retention's job for stored items");
        return Err(ApiError::Unfinished(
            "the retention is set for what is written from now on, but could not be applied to the stored items yet: set it again".into(),
        ));
    }
    Ok(json_response(200, &retention_answer(retention)))
}

#[derive(Deserialize)]
struct DeletionConfirmation {
    #[serde(default)]
    confirm_workspace_id: Option<String>,
}

/// The owner deletes the workspace: it accepts no work from now on, and a
/// job revokes its CRM grants and removes every item of it (`deletion`).
async fn delete_workspace(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    if me.role != Role::Owner {
        return Err(ApiError::Forbidden(
            "only the workspace owner can delete the workspace".into(),
        ));
    }
    let confirmation: DeletionConfirmation = json_body(req)?;
    if confirmation.confirm_workspace_id.as_deref() != Some(me.workspace_id.as_str()) {
        return Err(ApiError::BadRequest(
            "to delete the workspace, confirm it: {\"confirm_workspace_id\": \"<this workspace's id>\"}"
                .into(),
        ));
    }
    // The job first: should the writes below fail, it makes them itself,
    // and the owner (whose token stops working with the mark) need not
    // retry.
    let job_id = crate::deletion::request(deps, &me.workspace_id)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let since = deps
        .store
        .mark_workspace_deleting(&me.workspace_id, deps.clock.now())
        .await?
        .ok_or_else(|| ApiError::NotFound("the workspace is gone".into()))?;
    // Deliveries for its numbers are acknowledged and dropped from now on.
    let numbers = deps.store.remove_number_lookups(&me.workspace_id).await?;
    tracing::info!(workspace_id = %me.workspace_id, user_id = %me.id, %job_id, numbers, "workspace deletion begun");
    Ok(json_response(
        202,
        &json!({
            "workspace_id": me.workspace_id,
            "deleting_since": since,
            "job_id": job_id,
        }),
    ))
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
    role: Role,
}

async fn add_user(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let input: NewUser = json_body(req)?;
    let allowed = match input.role {
        Role::Owner => false,
        Role::Admin => me.role == Role::Owner,
        Role::Member => me.role.manages_workspace(),
    };
    if !allowed {
        return Err(ApiError::Forbidden(format!(
            "a {:?} cannot add a user with role {:?}",
            me.role, input.role
        )));
    }
    let user = User {
        workspace_id: me.workspace_id.clone(),
        id: uuid::Uuid::new_v4().to_string(),
        email: valid_email(&input.email)?,
        role: input.role,
        created_at: deps.clock.now(),
    };
    let token = random_token();
    deps.store.add_user(&user, &hash_token(&token)).await?;
    tracing::info!(workspace_id = %user.workspace_id, user_id = %user.id, "user added");
    Ok(json_response(
        201,
        &json!({ "user": user, "api_token": token }),
    ))
}

#[derive(Deserialize)]
struct NewWhatsAppNumber {
    phone_number_id: String,
    display_phone_number: String,
    owner_user_id: Option<String>,
    /// A Cloud API access token of the business that owns the number: it
    /// proves control of the number and downloads media; stored encrypted.
    access_token: Option<String>,
    /// The WhatsApp Business Account (for its message templates).
    #[serde(default)]
    waba_id: Option<String>,
}

async fn add_whatsapp_number(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    if !me.role.manages_workspace() {
        return Err(ApiError::Forbidden(
            "only the workspace owner or an admin can register a WhatsApp number".into(),
        ));
    }
    let input: NewWhatsAppNumber = json_body(req)?;
    if input.phone_number_id.is_empty()
        || !input.phone_number_id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(ApiError::BadRequest(
            "phone_number_id must be the Cloud API's numeric phone-number id".into(),
        ));
    }
    // Stored in E.164 however it was typed (WhatsApp Manager shows
    // `+44 7700 900100`); the refusal does not repeat it: refusals are logged.
    let display_phone_number = E164::parse_business_number(&input.display_phone_number)
        .map_err(|_| {
            ApiError::BadRequest(
                "display_phone_number must be the number with its country code, e.g. +44 7700 900100"
                    .into(),
            )
        })?;
    let access_token = input
        .access_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::BadRequest(
                "access_token is required: a Cloud API token of the business that owns the number, which proves the number is yours"
                    .into(),
            )
        })?;
    let owner_user_id = input.owner_user_id.unwrap_or_else(|| me.id.clone());
    if deps
        .store
        .user(&me.workspace_id, &owner_user_id)
        .await?
        .is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "owner_user_id {owner_user_id} is not a user of this workspace"
        )));
    }
    // Before anything about other workspaces is said: only whoever controls
    // the number learns that it is registered elsewhere.
    prove_control(
        deps,
        &input.phone_number_id,
        &display_phone_number,
        access_token,
    )
    .await?;
    let mut number = WhatsAppNumber {
        workspace_id: me.workspace_id.clone(),
        phone_number_id: input.phone_number_id,
        display_phone_number: display_phone_number.to_string(),
        owner_user_id,
        access_token_enc: None,
        waba_id: input
            .waba_id
            .map(|w| w.trim().to_owned())
            .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit())),
    };
    if let Some(existing) = deps.store.whatsapp_number(&number.phone_number_id).await?
        && existing.workspace_id != me.workspace_id
    {
        return Err(ApiError::Conflict(
            "this WhatsApp number is registered to another workspace".into(),
        ));
    }
    number.access_token_enc = Some(
        deps.secrets
            .keys()
            .await?
            .token_cipher()
            .encrypt(access_token, &number.token_binding()),
    );
    deps.store.put_whatsapp_number(&number).await?;
    // Media messages that waited for a token can be fetched now.
    if let Err(e) = crate::requeue::request(deps, &me.workspace_id).await {
        tracing::error!(workspace_id = %me.workspace_id, error = %e, "could not request the re-queue of waiting messages");
    }
    // Never the token, not even encrypted.
    Ok(json_response(
        201,
        &json!({ "whatsapp_number": {
            "workspace_id": number.workspace_id,
            "phone_number_id": number.phone_number_id,
            "display_phone_number": number.display_phone_number,
            "owner_user_id": number.owner_user_id,
            "has_access_token": number.access_token_enc.is_some(),
        } }),
    ))
}

/// Proves that whoever registers `phone_number_id` controls it: the Cloud
/// API reads a number only for a token of the business that owns it, and
/// the number it reads must be the one registered. Refusals name why; the
/// number WhatsApp holds is only ever shown redacted.
async fn prove_control(
    deps: &Deps,
    phone_number_id: &str,
    registered: &E164,
    access_token: &str,
) -> Result<(), ApiError> {
    let read = deps
        .business_numbers
        .read(access_token, phone_number_id)
        .await
        .map_err(|e| match e {
            BusinessNumberError::Unavailable(_) => ApiError::WhatsAppUnavailable(format!(
                "could not check phone_number_id {phone_number_id} with WhatsApp: {e}"
            )),
            refused => ApiError::BadRequest(format!(
                "access_token does not prove control of phone_number_id {phone_number_id}: {refused}"
            )),
        })?;
    let held = E164::parse_business_number(&read.display_phone_number).map_err(|_| {
        ApiError::WhatsAppUnavailable(format!(
            "WhatsApp answered no readable number for phone_number_id {phone_number_id}"
        ))
    })?;
    if held != *registered {
        return Err(ApiError::BadRequest(format!(
            "display_phone_number is not the number of phone_number_id {phone_number_id}: WhatsApp holds {} for it",
            held.redacted()
        )));
    }
    tracing::info!(phone_number_id, "control of the WhatsApp number proven");
    Ok(())
}

/// The owner removes anyone but themselves; an admin removes members. A user
/// of another workspace is simply not found.
async fn remove_user(deps: &Deps, req: &Request, user_id: &str) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let target = deps
        .store
        .user(&me.workspace_id, user_id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user {user_id} in this workspace")))?;
    let allowed = match (me.role, target.role) {
        (_, Role::Owner) => false,
        (Role::Owner, _) => true,
        (Role::Admin, Role::Member) => true,
        _ => false,
    };
    if !allowed || target.id == me.id {
        return Err(ApiError::Forbidden(format!(
            "a {:?} cannot remove a {:?}",
            me.role, target.role
        )));
    }
    // Their personal CRM connections go with them, and so do their grants
    // at the CRM (unless shared with the organization's, which stays). A
    // grant the CRM would not revoke is logged; the user goes all the same.
    for crm in CrmKind::ALL {
        if let Some(own) = deps
            .store
            .connection(
                &me.workspace_id,
                crm,
                ConnectionKind::Personal,
                Some(&target.id),
            )
            .await?
        {
            super::oauth::remove_personal(deps, &own, None).await?;
        }
    }
    deps.store.remove_user(&me.workspace_id, &target.id).await?;
    tracing::info!(workspace_id = %me.workspace_id, user_id = %target.id, "user removed");
    Ok(json_response(200, &json!({ "removed": target.id })))
}

/// A new token for the caller; the old one stops working at once.
async fn rotate_token(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let token = random_token();
    deps.store.replace_token(&me, &hash_token(&token)).await?;
    Ok(json_response(200, &json!({ "api_token": token })))
}

/// The message ledger of one chat: every message with its state
/// (`received`, `queued`, `waiting` and why, `appended` to which note), so a
/// late message is never mistaken for a lost one. No message text.
async fn chat_messages(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let chat = own_chat(deps, &me, chat_key).await?;
    let messages = deps.store.chat_messages(&me.workspace_id, chat_key).await?;
    let ledger: Vec<serde_json::Value> = messages
        .iter()
        .map(|m| {
            let mut entry = json!({
                "message_id": m.message_id,
                "timestamp": m.timestamp,
                "direction": m.direction,
                "kind": m.kind,
            });
            if let (Ok(state), Some(object)) =
                (serde_json::to_value(&m.state), entry.as_object_mut())
            {
                object.extend(state.as_object().cloned().unwrap_or_default());
            }
            entry
        })
        .collect();
    Ok(json_response(
        200,
        &json!({ "chat": chat_key, "record": chat.record, "messages": ledger }),
    ))
}

/// The workspace's sync log, newest first: `?chat=<chat key>&before=<id>&limit=`.
async fn sync_log(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let params = query_params(req);
    let limit = params
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 200);
    let entries = deps
        .store
        .log_entries(
            &me.workspace_id,
            params.get("chat").map(String::as_str),
            params.get("before").map(String::as_str),
            limit,
            deps.clock.now(),
        )
        .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.clone()))
        .flatten();
    Ok(json_response(
        200,
        &json!({ "entries": entries, "next_before": next }),
    ))
}

/// The caller's chat, or 404 (a chat of another workspace is not found).
async fn own_chat(deps: &Deps, me: &User, chat_key: &str) -> Result<Chat, ApiError> {
    deps.store
        .chat(&me.workspace_id, chat_key)
        .await?
        .ok_or_else(|| unknown_chat(chat_key))
}

/// The refusal names the chat without the contact's number in clear: it is
/// logged too.
fn unknown_chat(chat_key: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no chat {} in this workspace",
        chat_key_for_logs(chat_key)
    ))
}

fn chat_summary(chat: &Chat) -> serde_json::Value {
    json!({
        "chat": chat.key,
        "phone_number_id": chat.phone_number_id,
        "contact": chat.contact.as_str(),
        "contact_name": chat.contact_name,
        "record": chat.record,
        "record_chosen_by": chat.record_chosen_by,
        "ambiguous_candidates": chat.ambiguous_candidates,
        "responsible_user_id": chat.responsible_user_id,
        "sync_stopped": chat.sync_stopped,
    })
}

/// The workspace's chats; `?ambiguous=true`: only those whose number
/// matched several records and that no person has settled yet.
async fn list_chats(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let only_ambiguous = query_params(req).get("ambiguous").map(String::as_str) == Some("true");
    let chats: Vec<serde_json::Value> = deps
        .store
        .chats(&me.workspace_id)
        .await?
        .iter()
        .filter(|c| !only_ambiguous || !c.ambiguous_candidates.is_empty())
        .map(chat_summary)
        .collect();
    Ok(json_response(200, &json!({ "chats": chats })))
}

#[derive(Deserialize)]
struct Responsible {
    user_id: Option<String>,
}

/// Managers assign anyone; a member may take a chat on or hand it back.
async fn set_responsible(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let chat = own_chat(deps, &me, chat_key).await?;
    let input: Responsible = json_body(req)?;
    let own_change = input.user_id.as_deref().is_none_or(|u| u == me.id)
        && chat
            .responsible_user_id
            .as_deref()
            .is_none_or(|u| u == me.id);
    if !me.role.manages_workspace() && !own_change {
        return Err(ApiError::Forbidden(
            "a member can only make themselves responsible for a chat, or stop being so".into(),
        ));
    }
    if let Some(user_id) = &input.user_id
        && deps.store.user(&me.workspace_id, user_id).await?.is_none()
    {
        return Err(ApiError::BadRequest(format!(
            "user_id {user_id} is not a user of this workspace"
        )));
    }
    let patch = ChatPatch {
        responsible_user_id: Some(input.user_id.clone()),
        ..ChatPatch::default()
    };
    let detail = json!({ "user_id": input.user_id, "by_user": me.id });
    change_chat(
        deps,
        &me,
        chat_key,
        &patch,
        SyncEvent::ResponsibleSet,
        detail,
    )
    .await
}

/// Applies a person's change to a chat, logs it, and answers the chat.
async fn change_chat(
    deps: &Deps,
    me: &User,
    chat_key: &str,
    patch: &ChatPatch,
    event: SyncEvent,
    detail: serde_json::Value,
) -> Result<HttpResponse, ApiError> {
    deps.store
        .patch_chat(&me.workspace_id, chat_key, patch)
        .await?;
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &me.workspace_id,
            event,
            chat_key: Some(chat_key),
            message_id: None,
            detail,
        },
    )
    .await;
    let chat = own_chat(deps, me, chat_key).await?;
    Ok(json_response(200, &chat_summary(&chat)))
}

/// A person settles an ambiguous match: the chosen record is remembered
/// and the chat syncs to it from now on.
async fn choose_record(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let chat = own_chat(deps, &me, chat_key).await?;
    let chosen: RecordRef = json_body(req)?;
    if !chat.ambiguous_candidates.contains(&chosen) {
        return Err(ApiError::BadRequest(format!(
            "{}/{} is not one of the records that matched this chat's number",
            chosen.module, chosen.id
        )));
    }
    let patch = ChatPatch {
        record: Some(chosen.clone()),
        record_created_by_us: Some(false),
        record_name: Some(None),
        ambiguous_candidates: Some(Vec::new()),
        record_chosen_by: Some(Some(me.id.clone())),
        ..ChatPatch::default()
    };
    let detail = json!({ "record": chosen, "previous": chat.record, "by_user": me.id });
    change_chat(deps, &me, chat_key, &patch, SyncEvent::RecordChosen, detail).await
}

/// How long past its announced next attempt a retrying message (or past
/// its arrival a queued one) may be replayed.
const REPLAY_OVERDUE_SECS: i64 = 15 * 60;

/// Sends a dead-lettered message through the sync again, once its cause is
/// fixed. Day notes hold message ids, so a replay never adds a line twice.
async fn replay(
    deps: &Deps,
    req: &Request,
    chat_key: &str,
    message_id: &str,
) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    own_chat(deps, &me, chat_key).await?;
    let message = deps
        .store
        .message(&me.workspace_id, message_id)
        .await?
        .filter(|m| m.chat_key == chat_key)
        .ok_or_else(|| ApiError::NotFound(format!("no message {message_id} in this chat")))?;
    // A retry long overdue means the queue lost track of the message (the
    // invocation died before it could record the last failure): it is as
    // good as dead-lettered. So is a message still `queued` long after it
    // arrived (a function died between marking it queued and sending it).
    // Replaying one still in flight is harmless anyway: notes hold message
    // ids and a chat creates one record.
    let overdue = |at: i64| at + REPLAY_OVERDUE_SECS < deps.clock.now();
    let replayable = match &message.state {
        MessageState::DeadLettered { .. } => true,
        MessageState::Retrying {
            next_attempt_at, ..
        } => overdue(*next_attempt_at),
        MessageState::Queued => overdue(message.received_at),
        _ => false,
    };
    if !replayable {
        return Err(ApiError::Conflict(format!(
            "message is {}; only a dead-lettered message (or one retrying or queued for over {} min) can be replayed",
            message.state.name(),
            REPLAY_OVERDUE_SECS / 60
        )));
    }
    let reference = MessageRef {
        workspace_id: me.workspace_id.clone(),
        message_id: message_id.to_owned(),
        chat_key: chat_key.to_owned(),
        resend: resend_marker(),
    };
    if !deps
        .store
        .set_message_state(
            &me.workspace_id,
            message_id,
            &MessageState::Queued,
            Some(&["dead_lettered", "retrying", "queued"]),
        )
        .await?
    {
        return Err(ApiError::Conflict("the message changed meanwhile".into()));
    }
    if let Err(e) = deps.queue.send(QueueName::Sync, &reference).await {
        // Back to where it was, so it can be replayed again.
        deps.store
            .set_message_state(&me.workspace_id, message_id, &message.state, None)
            .await?;
        return Err(ApiError::Internal(e.to_string()));
    }
    synclog::record(
        deps,
        LogEntryDraft {
            workspace_id: &me.workspace_id,
            event: SyncEvent::Replayed,
            chat_key: Some(chat_key),
            message_id: Some(message_id),
            detail: json!({ "by_user": me.id }),
        },
    )
    .await;
    Ok(json_response(
        202,
        &json!({ "message_id": message_id, "state": "queued" }),
    ))
}

fn valid_email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => Ok(email),
        _ => Err(ApiError::BadRequest(format!(
            "`{raw}` is not an e-mail address"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_chat_is_named_without_the_contacts_number() {
        let refusal = unknown_chat("170000000000001#447700900123");
        assert_eq!(
            refusal.to_string(),
            "no chat 170000000000001#+44********23 in this workspace"
        );
    }
}
