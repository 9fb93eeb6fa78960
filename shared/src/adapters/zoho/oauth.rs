//! Zoho's accounts server: authorize, code exchange, refresh, revoke, and who
//! the token belongs to.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::adapters::{crm_call_timeout, crm_transport};
use crate::config::ZohoConfig;
use crate::crm::{CrmError, CrmIdentity, CrmOAuth, TokenGrant, TokenServer};
use crate::tokens::FreshToken;

use super::{SCOPES, SIGN_IN_SCOPES, ZohoApi};

#[derive(Clone)]
pub struct ZohoOAuth {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    config: ZohoConfig,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    api_domain: Option<String>,
    expires_in: Option<i64>,
    expires_in_sec: Option<i64>,
    error: Option<String>,
}

impl ZohoOAuth {
    fn authorize(
        &self,
        scopes: &str,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> String {
        let mut url = format!("{}/oauth/v2/auth?", self.config.accounts_url);
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("scope", scopes)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("access_type", "offline")
                .append_pair("prompt", "consent")
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256")
                .finish(),
        );
        url
    }

    pub fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: String,
        config: ZohoConfig,
    ) -> Self {
        Self {
            http,
            client_id,
            client_secret,
            config,
        }
    }

    async fn token_call(
        &self,
        accounts_server: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenGrant, CrmError> {
        let response = self
            .http
            .post(format!("{accounts_server}/oauth/v2/token"))
            .form(form)
            .timeout(crm_call_timeout()?)
            .send()
            .await
            .map_err(crm_transport)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(CrmError::Unavailable(status.as_u16()));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| CrmError::Decode(format!("token response: {e}")))?;
        // Zoho answers token errors with HTTP 200 and an `error` field.
        match (body.access_token, body.error) {
            (Some(access_token), None) => {
                // Older responses carry `expires_in` in ms beside `expires_in_sec`.
                let expires_in_secs = body.expires_in_sec.or(body.expires_in).unwrap_or(3600);
                let api_domain = body
                    .api_domain
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned();
                // Tokens only ever go to one of Zoho's own API hosts.
                if !self.config.api_domains.contains(&api_domain) {
                    return Err(CrmError::Rejected {
                        status: status.as_u16(),
                        code: "UNKNOWN_API_DOMAIN".into(),
                        message: format!(
                            "the token response names an unknown API domain `{api_domain}`"
                        ),
                        field: None,
                    });
                }
                Ok(TokenGrant {
                    access_token,
                    refresh_token: body.refresh_token,
                    api_domain,
                    expires_in_secs,
                })
            }
            (_, Some(error)) if error == "Access Denied" => Err(CrmError::RateLimited),
            // A revoked grant or a used/expired code: only a person can fix it.
            (_, Some(error)) if error == "invalid_code" => Err(CrmError::ConnectionBroken(error)),
            // Our own configuration (e.g. `invalid_client`): not the grant's fault.
            (_, Some(error)) => Err(CrmError::Rejected {
                status: status.as_u16(),
                code: error,
                message: "the accounts server refused the token request".into(),
                field: None,
            }),
            (None, None) => Err(CrmError::Decode("token response without a token".into())),
        }
    }
}

#[async_trait]
impl CrmOAuth for ZohoOAuth {
    /// `prompt=consent` with `access_type=offline` is what makes Zoho issue
    /// a refresh token on a reconnect. The request starts at the configured
    /// accounts URL; Zoho routes users to their data centre.
    fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        self.authorize(SCOPES, redirect_uri, state, code_challenge)
    }

    /// Offline with consent too: only a grant with a refresh token can be
    /// revoked at once (revoking it ends its access tokens), and the
    /// sign-in gives its grant back as soon as it knows the user.
    fn sign_in_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> Option<String> {
        Some(self.authorize(SIGN_IN_SCOPES, redirect_uri, state, code_challenge))
    }

    /// The data centre the callback names (`location`, default `us`), only
    /// a known one: the code exchange sends our client secret there.
    fn token_server(&self, callback: &HashMap<String, String>) -> Result<TokenServer, String> {
        let location = callback
            .get("location")
            .cloned()
            .unwrap_or_else(|| "us".into());
        let accounts_server = self
            .config
            .accounts_servers
            .get(&location)
            .cloned()
            .ok_or_else(|| format!("unknown Zoho data centre `{location}`"))?;
        if let Some(named) = callback.get("accounts-server")
            && named.trim_end_matches('/') != accounts_server
        {
            return Err(format!(
                "the accounts server does not belong to data centre `{location}`"
            ));
        }
        Ok(TokenServer {
            location,
            accounts_server,
        })
    }

    async fn exchange_code(
        &self,
        server: &TokenServer,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.token_call(
            &server.accounts_server,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("redirect_uri", redirect_uri),
                ("code", code),
                ("code_verifier", code_verifier),
            ],
        )
        .await
    }

    async fn refresh(
        &self,
        accounts_server: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.token_call(
            accounts_server,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn revoke(&self, accounts_server: &str, refresh_token: &str) -> Result<(), CrmError> {
        let response = self
            .http
            .post(format!("{accounts_server}/oauth/v2/token/revoke"))
            .query(&[("token", refresh_token)])
            .send()
            .await
            .map_err(crm_transport)?;
        crate::adapters::revocation_result(response.status())
    }

    async fn identify(&self, grant: &TokenGrant) -> Result<CrmIdentity, CrmError> {
        ZohoApi::new(
            self.http.clone(),
            &grant.api_domain,
            Arc::new(FreshToken(grant.access_token.clone())),
        )
        .identify()
        .await
    }
}
