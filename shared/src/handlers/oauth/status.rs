//! `GET /oauth/{crm}/status`: what is connected and what the caller may do.

use lambda_http::Request;
use serde_json::json;

use crate::deps::Deps;
use crate::handlers::http::{ApiError, HttpResponse, caller, json_response};
use crate::model::{Connection, ConnectionKind, CrmKind};

use super::disconnect::disconnect_refusal;
use super::{connect_refusal, organization, personal};

pub(super) async fn status(
    deps: &Deps,
    req: &Request,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
    let user = caller(deps, req).await?;
    let org = organization(deps, &user.workspace_id, crm).await?;
    let own = personal(deps, &user, crm).await?;
    let connected_by = match &org {
        Some(c) => deps
            .store
            .user(&user.workspace_id, &c.user_id)
            .await?
            .map(|u| json!({ "user_id": u.id, "email": u.email })),
        None => None,
    };
    let describe = |c: &Connection| {
        json!({
            "status": c.status,
            "since": c.connected_at,
            "crm_user_email": c.crm_user_email,
            "data_centre": c.location,
        })
    };
    let can_connect_org = connect_refusal(deps, &user, crm, ConnectionKind::Organization)
        .await?
        .is_none();
    let can_connect_personal = connect_refusal(deps, &user, crm, ConnectionKind::Personal)
        .await?
        .is_none();
    let can_disconnect_org = org
        .as_ref()
        .is_some_and(|o| disconnect_refusal(&user, o, own.as_ref()).is_none());
    Ok(json_response(
        200,
        &json!({
            "crm": crm.as_str(),
            "organization": org.as_ref().map(|c| {
                let mut d = describe(c);
                d["connected_by"] = json!(connected_by);
                d
            }),
            "personal": own.as_ref().map(describe),
            "you_may": {
                "connect_organization": can_connect_org,
                "connect_personal": can_connect_personal,
                "disconnect_organization": can_disconnect_org,
                "disconnect_personal": own.is_some(),
            },
        }),
    ))
}
