//! Giving CRM grants back: a stored connection's refresh token revoked at
//! the CRM (disconnecting, removing a user, deleting a workspace).

use crate::crm::CrmError;
use crate::deps::Deps;
use crate::error::SecretsError;
use crate::model::Connection;

/// Why a grant was not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The app key or the CRM client credentials could not be read.
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The stored refresh token does not decrypt: nothing here can ever
    /// revoke it.
    #[error("the stored refresh token does not decrypt")]
    Undecryptable,
    #[error(transparent)]
    Crm(#[from] CrmError),
}

impl RevokeError {
    /// Whether revoking again later may work (the CRM was down, …).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Secrets(_) => true,
            Self::Undecryptable => false,
            Self::Crm(e) => e.is_transient(),
        }
    }
}

/// Revokes the connection's grant at the CRM. A grant the CRM no longer
/// knows counts as revoked.
pub async fn revoke(deps: &Deps, connection: &Connection) -> Result<(), RevokeError> {
    let refresh_token = deps
        .secrets
        .keys()
        .await?
        .token_cipher()
        .decrypt(&connection.refresh_token_enc, &connection.token_binding())
        .map_err(|_| RevokeError::Undecryptable)?;
    deps.crms
        .oauth(connection.crm)
        .await?
        .revoke(&connection.accounts_server, &refresh_token)
        .await?;
    Ok(())
}
