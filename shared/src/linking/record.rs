//! Finding or creating the chat's record, and who owns a new one.

use serde_json::json;

use crate::crm::{Crm, CrmError, FoundRecord, NewRecord};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{Chat, ChatPatch, Connection, CrmKind, CrmUser, OnConverted, RecordRef};
use crate::phone::E164;
use crate::store::ContactClaim;
use crate::sync::{chat_link, record_fields, record_name, record_of};
use crate::synclog::SyncEvent;

use super::conversion::stop_chat;
use super::{CREATION_CLAIM_SECS, Linking};

/// Finds the chat's record by number — in the destination, then in the
/// converted destination — or creates it, and remembers it. `None` when the
/// number belongs to a converted record and the settings say stop.
pub(super) async fn link_record(ctx: &Linking<'_>) -> Result<Option<RecordRef>, WorkError> {
    if let Some(record) = recover_interrupted_create(ctx).await? {
        return Ok(Some(record));
    }
    let chat = ctx.chat;
    let settings = ctx.settings;
    let mut places = Vec::new();
    if let (Some(module), Some(field)) = (&settings.destination_module, &settings.number_field) {
        places.push((module.clone(), field.clone()));
    }
    // Searched whatever the rule: with `stop`, a person whose Lead was
    // converted must not come back as a new Lead either.
    if settings.zoho.destination_convertable
        && let (Some(module), Some(field)) = (
            &settings.zoho.converted_module,
            &settings.zoho.converted_number_field,
        )
    {
        places.push((module.clone(), field.clone()));
    }
    for (module, field) in &places {
        let found = ctx.crm.find_by_phone(module, field, &chat.contact).await?;
        let matches = confirmed_matches(found, &chat.contact);
        let Some(best) = matches.first() else {
            continue;
        };
        let in_converted = Some(module) != settings.destination_module.as_ref();
        if in_converted && settings.zoho.on_converted == OnConverted::Stop {
            let reason = format!(
                "the number belongs to a {module} record (where converted leads go) and the settings say stop"
            );
            stop_chat(ctx, &best.record, &reason).await?;
            return Ok(None);
        }
        let candidates: Vec<RecordRef> = matches.iter().map(|m| m.record.clone()).collect();
        return ctx
            .link_found(&candidates, &format!("{module}.{field}"))
            .await
            .map(Some);
    }
    create_record(ctx).await.map(Some)
}

/// An earlier attempt that claimed the creation and never linked a record
/// may have created it (its answer was lost). Zoho's search cannot see a
/// record that new, so the newest records are read, before any search; a
/// record found there is the one this product made.
async fn recover_interrupted_create(ctx: &Linking<'_>) -> Result<Option<RecordRef>, WorkError> {
    let (chat, settings) = (ctx.chat, ctx.settings);
    let (Some(_), Some(module), Some(field)) = (
        &chat.creating_by,
        &settings.destination_module,
        &settings.number_field,
    ) else {
        return Ok(None);
    };
    let recent = ctx.crm.recently_created(module, field).await?;
    let Some(found) = confirmed_matches(recent, &chat.contact).into_iter().next() else {
        return Ok(None);
    };
    let (owner_id, owner_reason) = ctx.owner().await?;
    ctx.remember_for_contact(&found.record).await?;
    ctx.patch(ChatPatch {
        record: Some(found.record.clone()),
        record_created_by_us: Some(true),
        record_name: Some(Some(record_name(
            chat.contact_name.as_deref(),
            &chat.contact,
        ))),
        record_checked_at: Some(ctx.deps.clock.now()),
        ..ChatPatch::default()
    })
    .await?;
    ctx.log(
        SyncEvent::Created,
        json!({
            "record": found.record,
            "owner_id": owner_id,
            "owner_reason": owner_reason,
            "found_after": "an interrupted create whose answer was lost",
        }),
    )
    .await;
    Ok(Some(found.record))
}

/// Who holds a chat's record-creation claim: the chat, not one of its
/// messages. The sync queue hands a chat's messages over one at a time (one
/// FIFO group per chat), so a claim another of its messages left is an
/// earlier attempt's that has ended (failed, or parked until a reconnect or
/// the budget's reset), and [`recover_interrupted_create`] has just looked
/// for what it may have made. Claimed per message, the chat's next message
/// was refused as busy until the claim expired (2 minutes), spending its
/// receives on it, and was dead-lettered (found by the soak).
fn creation_claimant(chat_key: &str) -> String {
    format!("chat#{chat_key}")
}

async fn create_record(ctx: &Linking<'_>) -> Result<RecordRef, WorkError> {
    let (deps, chat, settings) = (ctx.deps, ctx.chat, ctx.settings);
    let module = settings
        .destination_module
        .clone()
        .ok_or(WorkError::NotActive)?;
    let now = deps.clock.now();
    let claimant = creation_claimant(&chat.key);
    if !deps
        .store
        .claim_record_creation(
            &chat.workspace_id,
            &chat.key,
            &claimant,
            now,
            now + CREATION_CLAIM_SECS,
        )
        .await?
    {
        // Another worker is creating it right now (or just did): try again
        // shortly and find it linked.
        return Err(WorkError::Contended(
            "the chat's record is being created by another worker".into(),
        ));
    }
    // The same person may be writing to another business number of the
    // workspace: one record per contact, not per chat.
    match deps
        .store
        .claim_contact_creation(
            &chat.workspace_id,
            &chat.contact,
            &chat.key,
            now,
            now + CREATION_CLAIM_SECS,
        )
        .await?
    {
        ContactClaim::Claimed => {}
        ContactClaim::Created(record) => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, &claimant)
                .await?;
            return ctx
                .link_found(&[record], "the record made for this contact's other chat")
                .await;
        }
        ContactClaim::Busy => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, &claimant)
                .await?;
            return Err(WorkError::Contended(
                "this contact's record is being created for another of its chats".into(),
            ));
        }
    }
    let (owner_id, owner_reason) = ctx.owner().await?;
    let name = record_name(chat.contact_name.as_deref(), &chat.contact);
    let created = ctx
        .crm
        .create_record(&NewRecord {
            module,
            fields: record_fields(settings, &name, &chat.contact, &chat_link(&chat.contact)),
            owner_id: Some(owner_id.clone()),
        })
        .await;
    let record = match created {
        Ok(record) => record,
        // The org marks the number field unique and holds the number
        // already, where the search did not see it (index delay): that
        // record is the match. A duplicate on another field (a unique name)
        // is someone else: refused like any other refusal.
        Err(CrmError::Duplicate { record, field })
            if field.is_some() && field == settings.number_field =>
        {
            ctx.remember_for_contact(&record).await?;
            return ctx.link_found(&[record], "the CRM's duplicate check").await;
        }
        // Refused outright: nothing was created, so the claims can go.
        Err(e @ (CrmError::Rejected { .. } | CrmError::Duplicate { .. })) => {
            deps.store
                .release_record_claim(&chat.workspace_id, &chat.key, &claimant)
                .await?;
            deps.store
                .release_contact_claim(&chat.workspace_id, &chat.contact, &chat.key)
                .await?;
            return Err(e.into());
        }
        // Anything else may or may not have created the record: the claim
        // stays with this message until it expires.
        Err(e) => return Err(e.into()),
    };
    ctx.remember_for_contact(&record).await?;
    ctx.patch(ChatPatch {
        record: Some(record.clone()),
        record_created_by_us: Some(true),
        record_name: Some(Some(name)),
        record_checked_at: Some(now),
        ..ChatPatch::default()
    })
    .await?;
    tracing::info!(
        workspace_id = %chat.workspace_id,
        chat = %chat.log_id(),
        record = %record_of(&record),
        owner_id,
        owner_reason,
        "created record"
    );
    ctx.log(
        SyncEvent::Created,
        json!({ "record": record, "owner_id": owner_id, "owner_reason": owner_reason }),
    )
    .await;
    Ok(record)
}

/// The people who could own a new record, in order of preference, by
/// e-mail: the chat's responsible user, then the WhatsApp number's owner.
pub(super) async fn owner_candidates(
    deps: &Deps,
    chat: &Chat,
) -> Result<Vec<(String, &'static str)>, WorkError> {
    let mut candidates = Vec::new();
    if let Some(responsible) = &chat.responsible_user_id
        && let Some(user) = deps.store.user(&chat.workspace_id, responsible).await?
    {
        candidates.push((user.email, "chat_responsible_user"));
    }
    if let Some(number) = deps.store.whatsapp_number(&chat.phone_number_id).await?
        && let Some(user) = deps
            .store
            .user(&chat.workspace_id, &number.owner_user_id)
            .await?
    {
        candidates.push((user.email, "whatsapp_number_owner"));
    }
    Ok(candidates)
}

/// Zoho users are cached this long, not fetched per message.
const CRM_USERS_TTL_SECS: i64 = 3600;

/// Of the records a search found, those that really hold `number` (the
/// search may match loosely), most recently modified first.
fn confirmed_matches(found: Vec<FoundRecord>, number: &E164) -> Vec<FoundRecord> {
    let mut matches: Vec<FoundRecord> = found
        .into_iter()
        .filter(|r| {
            r.phones
                .iter()
                .any(|p| E164::parse_stored(p).is_some_and(|stored| number.same_line(&stored)))
        })
        .collect();
    // ISO-8601 times of one org share an offset, so they sort as strings.
    matches.sort_by(|a, b| b.modified_time.cmp(&a.modified_time));
    matches
}

/// The CRM user to own a new record: the first of `candidates` (e-mail and
/// why that person, in order of preference: the chat's responsible user,
/// the WhatsApp number's owner) who is an active CRM user, matched by
/// e-mail case-insensitively; else the user who made the organization
/// connection.
pub(super) fn choose_owner(
    users: &[CrmUser],
    candidates: &[(String, &'static str)],
    connection: &Connection,
) -> (String, &'static str) {
    for (email, reason) in candidates {
        if let Some(user) = users.iter().find(|u| u.email.eq_ignore_ascii_case(email)) {
            return (user.id.clone(), reason);
        }
    }
    (
        connection.crm_user_id.clone(),
        "organization_connection_user",
    )
}

/// Active CRM users, from the cache or (once an hour) from the CRM.
pub(super) async fn crm_users(
    deps: &Deps,
    crm: &dyn Crm,
    workspace_id: &str,
    kind: CrmKind,
) -> Result<Vec<CrmUser>, WorkError> {
    let now = deps.clock.now();
    if let Some(users) = deps.store.cached_crm_users(workspace_id, kind, now).await? {
        return Ok(users);
    }
    let users = crm.active_users().await?;
    deps.store
        .cache_crm_users(workspace_id, kind, &users, now + CRM_USERS_TTL_SECS)
        .await?;
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_of_a_chat_may_take_over_its_creation_claim_and_no_other_chat() {
        let (a, b) = (
            "170000000000001#447700900123",
            "170000000000001#447700900456",
        );
        // Named by the chat alone: no message id in it, so whichever of
        // the chat's messages comes next holds the same claim.
        assert_eq!(creation_claimant(a), format!("chat#{a}"));
        assert_ne!(creation_claimant(a), creation_claimant(b));
        assert!(
            !creation_claimant(a).starts_with("wamid."),
            "not a message id"
        );
    }

    fn found(id: &str, phone: &str, modified: &str) -> FoundRecord {
        FoundRecord {
            record: RecordRef {
                crm: CrmKind::Zoho,
                module: "Leads".into(),
                id: id.into(),
            },
            phones: vec![phone.into()],
            modified_time: Some(modified.into()),
        }
    }

    #[test]
    fn only_records_holding_the_number_match_newest_first() {
        let number = E164::from_wa_id("447700900123").expect("valid");
        let matches = confirmed_matches(
            vec![
                found("old", "+44 7700 900123", "2026-01-01T00:00:00+00:00"),
                found("other", "+44 7700 900124", "2026-05-01T00:00:00+00:00"),
                found("new", "0044-7700-900123", "2026-03-01T00:00:00+00:00"),
                found("national", "07700 900123", "2026-04-01T00:00:00+00:00"),
            ],
            &number,
        );
        let ids: Vec<_> = matches.iter().map(|m| m.record.id.as_str()).collect();
        assert_eq!(ids, ["new", "old"]);
    }

    #[test]
    fn owner_is_matched_by_email_case_insensitively_else_the_connecting_user() {
        let users = vec![CrmUser {
            id: "bruno-id".into(),
            email: "Bruno@Acme.example".into(),
        }];
        let c = crate::testing::fixture::organization_connection();
        let owner = ("bruno@acme.example".to_owned(), "whatsapp_number_owner");
        let responsible = ("carla@acme.example".to_owned(), "chat_responsible_user");
        assert_eq!(
            choose_owner(&users, &[responsible.clone(), owner.clone()], &c),
            ("bruno-id".to_owned(), "whatsapp_number_owner"),
            "a responsible user who is not a CRM user is passed over"
        );
        let carla = CrmUser {
            id: "carla-id".into(),
            email: "CARLA@acme.example".into(),
        };
        let both = [users[0].clone(), carla];
        assert_eq!(
            choose_owner(&both, &[responsible, owner], &c),
            ("carla-id".to_owned(), "chat_responsible_user")
        );
        assert_eq!(
            choose_owner(
                &users,
                &[("nobody@acme.example".to_owned(), "whatsapp_number_owner")],
                &c
            ),
            ("crm-admin".to_owned(), "organization_connection_user")
        );
        assert_eq!(choose_owner(&users, &[], &c).0, "crm-admin");
    }
}
