//! WhatsApp business numbers, registered once their control is proven.

use lambda_http::Request;
use serde::Deserialize;
use serde_json::json;

use crate::business_numbers::BusinessNumberError;
use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, caller, json_body, json_response};
use crate::model::WhatsAppNumber;
use crate::phone::E164;

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

pub(super) async fn add_whatsapp_number(
    deps: &Deps,
    req: &Request,
) -> Result<HttpResponse, ApiError> {
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
