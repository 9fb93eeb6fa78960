//! The CRM's OAuth, whichever CRM it is: where the browser goes, what a
//! callback's code is exchanged for, refresh, revoke, and who a token
//! belongs to.

use std::collections::HashMap;

use async_trait::async_trait;

use super::CrmError;

/// What a code exchange or a refresh yields.
#[derive(Clone)]
pub struct TokenGrant {
    pub access_token: String,
    /// Zoho sends one on the code exchange only; Pipedrive rotates it on
    /// every refresh, so a refresh's new one replaces the stored one.
    pub refresh_token: Option<String>,
    /// Where this grant's API calls go (both CRMs may move a company).
    pub api_domain: String,
    pub expires_in_secs: i64,
}

/// Without the tokens: a grant may end up in a log or an error message.
impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("api_domain", &self.api_domain)
            .field("expires_in_secs", &self.expires_in_secs)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Who a token belongs to, and in which CRM organization (Zoho org, Pipedrive company).
#[derive(Debug, Clone)]
pub struct CrmIdentity {
    pub user_id: String,
    pub email: String,
    pub org_id: String,
    /// The user's name as the CRM shows it, if it gives one.
    pub name: Option<String>,
}

/// The server a callback's code is exchanged at, and the name of its
/// location (Zoho's data centre; one fixed server for Pipedrive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenServer {
    pub location: String,
    pub accounts_server: String,
}

/// A CRM's notice that one of its users uninstalled our app: whose grants
/// are gone, in which CRM organization (ids as [`CrmIdentity`] has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UninstallNotice {
    pub org_id: String,
    pub user_id: String,
}

/// Why an uninstall notice is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    #[error("this CRM sends no uninstall notice")]
    Unsupported,
    #[error("the notice does not carry this app's client credentials")]
    Unauthenticated,
    #[error("the notice is not valid: {0}")]
    Malformed(String),
}

#[async_trait]
pub trait CrmOAuth: Send + Sync {
    /// Where to send the browser; `code_challenge` is the PKCE S256
    /// challenge of the verifier kept with the state (ignored by a CRM
    /// without PKCE).
    fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String;
    /// Where to send the browser to learn only who the user is (the
    /// scopes that read the user and their organization), for a CRM whose
    /// users sign in to live chat through OAuth; `None` for a CRM that
    /// identifies its users otherwise (Pipedrive signs its extension
    /// tokens, and revoking a Pipedrive grant uninstalls the app).
    fn sign_in_url(
        &self,
        _redirect_uri: &str,
        _state: &str,
        _code_challenge: &str,
    ) -> Option<String> {
        None
    }
    /// The token server a callback's parameters name, or why they name none
    /// we trust.
    fn token_server(&self, callback: &HashMap<String, String>) -> Result<TokenServer, String>;
    /// Exchanges a callback's code; the grant's API domain is checked to be
    /// one of the CRM's own before anything is returned.
    async fn exchange_code(
        &self,
        server: &TokenServer,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenGrant, CrmError>;
    /// A new access token (and, where the CRM rotates it, refresh token);
    /// [`CrmError::ConnectionBroken`] when the grant is gone.
    async fn refresh(
        &self,
        accounts_server: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, CrmError>;
    /// Gives the grant back; an unknown grant counts as revoked.
    async fn revoke(&self, accounts_server: &str, refresh_token: &str) -> Result<(), CrmError>;
    /// Who the grant's token belongs to.
    async fn identify(&self, grant: &TokenGrant) -> Result<CrmIdentity, CrmError>;
    /// Checks and reads the notice the CRM sends the callback URL when one
    /// of its users uninstalls the app (`authorization`: the request's
    /// `Authorization` header). A CRM that sends none keeps this default.
    fn uninstall_notice(
        &self,
        _authorization: Option<&str>,
        _body: &[u8],
    ) -> Result<UninstallNotice, NoticeError> {
        Err(NoticeError::Unsupported)
    }
}
