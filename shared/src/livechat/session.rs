//! A live-chat session: a short-lived token our API gives the page once it
//! knows who the user is, signed with the app's state key (no storage).
//! The page keeps it in memory and sends it as `X-Live-Session`.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::view::ViewError;
use crate::crm::{Crm, CrmError};
use crate::crypto::KeyRing;
use crate::deps::Deps;
use crate::error::{SecretsError, StoreError, WorkError};
use crate::model::{Connection, ConnectionKind, ConnectionStatus, CrmKind};
use crate::sync::connection_crm;

/// How long a session lasts: the page asks for a new one after.
pub const SESSION_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    pub workspace_id: String,
    pub user_id: String,
    pub crm: CrmKind,
    pub expires_at: i64,
}

/// `<payload>.<signature>`, both base64url: `value` as JSON, signed with
/// the state key for `purpose` (so that one kind of token never passes as
/// another). Signed, not encrypted: for what the page may read anyway.
pub(crate) fn seal_signed<T: Serialize>(purpose: &str, value: &T, keys: &KeyRing) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap_or_default());
    let signature = keys.sign_state(&format!("{purpose}.{payload}"));
    format!("{payload}.{signature}")
}

/// What [`seal_signed`] sealed for `purpose`, if the signature holds.
pub(crate) fn open_signed<T: DeserializeOwned>(
    purpose: &str,
    sealed: &str,
    keys: &KeyRing,
) -> Option<T> {
    let (payload, signature) = sealed.trim().split_once('.')?;
    if !keys.verify_state(&format!("{purpose}.{payload}"), signature) {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

impl LiveSession {
    pub fn seal(&self, keys: &KeyRing) -> String {
        seal_signed("live-session", self, keys)
    }

    /// The session a sealed token holds, if it is ours and still valid.
    pub fn open(sealed: &str, keys: &KeyRing, now: i64) -> Option<Self> {
        open_signed::<Self>("live-session", sealed, keys).filter(|s| s.expires_at > now)
    }
}

/// What the page gets when a session starts: the sealed session and who
/// it is for, in the product and in the CRM (the page compares the CRM
/// user with the one the CRM's frame says is signed in, as a hint).
#[derive(Debug, Clone, Serialize)]
pub struct SessionAnswer {
    pub session: String,
    pub expires_at: i64,
    pub workspace_id: String,
    pub user_id: String,
    pub crm_user_id: String,
    pub crm_user_name: Option<String>,
    pub crm_user_email: String,
}

/// A session for the user whose personal connection `connection` is.
pub async fn start(
    deps: &Deps,
    connection: &Connection,
    crm_user_name: Option<String>,
) -> Result<SessionAnswer, SecretsError> {
    let keys = deps.secrets.keys().await?;
    let session = LiveSession {
        workspace_id: connection.workspace_id.clone(),
        user_id: connection.user_id.clone(),
        crm: connection.crm,
        expires_at: deps.clock.now() + SESSION_SECS,
    };
    tracing::info!(
        workspace_id = %session.workspace_id,
        user_id = %session.user_id,
        crm = session.crm.as_str(),
        "live-chat session started"
    );
    Ok(SessionAnswer {
        session: session.seal(keys),
        expires_at: session.expires_at,
        workspace_id: session.workspace_id,
        user_id: session.user_id,
        crm_user_id: connection.crm_user_id.clone(),
        crm_user_name,
        crm_user_email: connection.crm_user_email.clone(),
    })
}

/// The working personal connection the CRM user `crm_user_id` of the CRM
/// organization `crm_org_id` made, in a workspace that still accepts work;
/// the same lookup for every CRM (Pipedrive's signed token, Zoho's
/// sign-in).
pub async fn personal_connection_of(
    deps: &Deps,
    crm: CrmKind,
    crm_org_id: &str,
    crm_user_id: &str,
) -> Result<Option<Connection>, StoreError> {
    let candidates = deps
        .store
        .connections_of_crm_user(crm, crm_org_id, crm_user_id)
        .await?;
    for candidate in candidates
        .iter()
        .filter(|c| c.kind == ConnectionKind::Personal)
    {
        // Each is read again: the `ByCrmUser` index may lag a removal.
        if let Some(current) = current_personal(
            deps,
            &candidate.workspace_id,
            &candidate.user_id,
            crm,
            crm_org_id,
            crm_user_id,
        )
        .await?
        {
            return Ok(Some(current));
        }
    }
    Ok(None)
}

/// The user's personal connection to `crm`, if it is still the one made
/// with that CRM user, works (a broken one reads nothing until its user
/// reconnects), and its workspace still accepts work.
pub async fn current_personal(
    deps: &Deps,
    workspace_id: &str,
    user_id: &str,
    crm: CrmKind,
    crm_org_id: &str,
    crm_user_id: &str,
) -> Result<Option<Connection>, StoreError> {
    let Some(connection) = deps
        .store
        .connection(workspace_id, crm, ConnectionKind::Personal, Some(user_id))
        .await?
        .filter(|c| {
            c.crm_user_id == crm_user_id
                && c.crm_org_id == crm_org_id
                && c.status == ConnectionStatus::Active
        })
    else {
        return Ok(None);
    };
    let accepts_work = deps
        .store
        .workspace(workspace_id)
        .await?
        .is_some_and(|w| w.accepts_work());
    Ok(accepts_work.then_some(connection))
}

impl LiveSession {
    /// The CRM as the session's user sees it: a client calling with their
    /// own personal connection, so the CRM's sharing rules decide what a
    /// read shows.
    pub async fn personal_crm(&self, deps: &Deps) -> Result<Arc<dyn Crm>, ViewError> {
        let connection = self.personal_connection(deps).await?;
        match connection_crm(deps, &connection).await {
            Ok(crm) => Ok(crm),
            Err(WorkError::Crm(CrmError::ConnectionBroken(_))) => Err(self.not_connected()),
            Err(e) => Err(e.into()),
        }
    }

    /// The user's personal connection, while it works.
    pub async fn personal_connection(&self, deps: &Deps) -> Result<Connection, ViewError> {
        deps.store
            .connection(
                &self.workspace_id,
                self.crm,
                ConnectionKind::Personal,
                Some(&self.user_id),
            )
            .await?
            .filter(|c| c.status == ConnectionStatus::Active)
            .ok_or_else(|| self.not_connected())
    }

    fn not_connected(&self) -> ViewError {
        ViewError::NotConnected(self.crm.display_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_until_it_expires_and_not_once_altered() {
        let keys = KeyRing::from_master(b"0123456789abcdef0123456789abcdef");
        let session = LiveSession {
            workspace_id: "ws".into(),
            user_id: "u1".into(),
            crm: CrmKind::Pipedrive,
            expires_at: 1_000,
        };
        let sealed = session.seal(&keys);
        assert_eq!(
            LiveSession::open(&sealed, &keys, 999),
            Some(session.clone())
        );
        assert_eq!(LiveSession::open(&sealed, &keys, 1_000), None, "expired");
        let other = KeyRing::from_master(b"another-master-key-another-master");
        assert_eq!(LiveSession::open(&sealed, &other, 999), None);
        let forged = LiveSession {
            user_id: "admin".into(),
            ..session
        }
        .seal(&other);
        let (payload, _) = forged.split_once('.').expect("two parts");
        let (_, signature) = sealed.split_once('.').expect("two parts");
        assert_eq!(
            LiveSession::open(&format!("{payload}.{signature}"), &keys, 999),
            None
        );
    }
}
