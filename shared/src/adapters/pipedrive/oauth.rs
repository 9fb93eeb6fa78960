//! Pipedrive's OAuth (reference §1): client credentials in HTTP Basic,
//! form bodies, a refresh token rotated on every refresh, and an
//! `api_domain` in every token answer that is checked to be one of
//! Pipedrive's own HTTPS hosts before any token is sent there; and the
//! uninstall notice Pipedrive sends the callback URL, taken only with our
//! own client credentials.

use std::collections::HashMap;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::PipedriveConfig;
use crate::adapters::{crm_call_timeout, crm_transport, revocation_result};
use crate::crm::{
    CrmError, CrmIdentity, CrmOAuth, NoticeError, TokenGrant, TokenServer, UninstallNotice,
};
use crate::crypto::secrets_equal;

pub struct PipedriveOAuth {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    config: PipedriveConfig,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    api_domain: Option<String>,
}

/// The uninstall notice's body (reference §1); its `timestamp` is not used.
#[derive(Deserialize)]
struct UninstallBody {
    client_id: Option<String>,
    company_id: u64,
    user_id: u64,
}

/// The user name and password of an HTTP Basic `Authorization` header.
fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let (user, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[derive(Deserialize)]
struct TokenRefusal {
    error: Option<String>,
    error_description: Option<String>,
}

impl PipedriveOAuth {
    pub fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: String,
        config: PipedriveConfig,
    ) -> Self {
        Self {
            http,
            client_id,
            client_secret,
            config,
        }
    }

    async fn token_call(&self, form: &[(&str, &str)]) -> Result<TokenGrant, CrmError> {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.config.oauth_url))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(form)
            .timeout(crm_call_timeout()?)
            .send()
            .await
            .map_err(crm_transport)?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(CrmError::RateLimited);
        }
        if status.is_server_error() {
            return Err(CrmError::Unavailable(status.as_u16()));
        }
        let text = response.text().await.map_err(crm_transport)?;
        if !status.is_success() {
            let refusal: TokenRefusal = serde_json::from_str(&text).unwrap_or(TokenRefusal {
                error: None,
                error_description: None,
            });
            let code = refusal.error.unwrap_or_else(|| status.as_u16().to_string());
            let message = refusal.error_description.unwrap_or_default();
            // A revoked, used or expired grant: only a person can fix it.
            if code == "invalid_grant" {
                return Err(CrmError::ConnectionBroken(message));
            }
            // Our own configuration (client, redirect URI): not the grant's fault.
            return Err(CrmError::Rejected {
                status: status.as_u16(),
                code,
                message,
                field: None,
            });
        }
        let answer: TokenAnswer = serde_json::from_str(&text)
            .map_err(|e| CrmError::Decode(format!("token response: {e}")))?;
        let api_domain = answer
            .api_domain
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        if !self.config.trusts_api_domain(&api_domain) {
            return Err(CrmError::Rejected {
                status: status.as_u16(),
                code: "UNKNOWN_API_DOMAIN".into(),
                message: format!(
                    "the token response names an API domain that is not Pipedrive's: `{api_domain}`"
                ),
                field: None,
            });
        }
        Ok(TokenGrant {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            api_domain,
            expires_in_secs: answer.expires_in.unwrap_or(3599),
        })
    }
}

#[async_trait]
impl CrmOAuth for PipedriveOAuth {
    /// Pipedrive takes no scopes (the app's are fixed in its Developer Hub)
    /// and no PKCE: the state alone binds the callback to the flow.
    fn authorize_url(&self, redirect_uri: &str, state: &str, _code_challenge: &str) -> String {
        format!(
            "{}/oauth/authorize?{}",
            self.config.oauth_url,
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("state", state)
                .finish()
        )
    }

    /// One OAuth server, whatever the callback says.
    fn token_server(&self, _callback: &HashMap<String, String>) -> Result<TokenServer, String> {
        Ok(TokenServer {
            location: "pipedrive".into(),
            accounts_server: self.config.oauth_url.clone(),
        })
    }

    async fn exchange_code(
        &self,
        _server: &TokenServer,
        code: &str,
        redirect_uri: &str,
        _code_verifier: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.token_call(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ])
        .await
    }

    async fn refresh(
        &self,
        _accounts_server: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.token_call(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Revoking the refresh token uninstalls the app for that user.
    async fn revoke(&self, _accounts_server: &str, refresh_token: &str) -> Result<(), CrmError> {
        let response = self
            .http
            .post(format!("{}/oauth/revoke", self.config.oauth_url))
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[
                ("token", refresh_token),
                ("token_type_hint", "refresh_token"),
            ])
            .timeout(crm_call_timeout()?)
            .send()
            .await
            .map_err(crm_transport)?;
        revocation_result(response.status())
    }

    /// `DELETE <callback>` with our own client credentials in HTTP Basic
    /// (compared in constant time) and `{client_id, company_id, user_id,
    /// timestamp}`.
    fn uninstall_notice(
        &self,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<UninstallNotice, NoticeError> {
        let ours = authorization
            .and_then(basic_credentials)
            .is_some_and(|(id, secret)| {
                // Both compared, whichever differs.
                secrets_equal(&id, &self.client_id) & secrets_equal(&secret, &self.client_secret)
            });
        if !ours {
            return Err(NoticeError::Unauthenticated);
        }
        let notice: UninstallBody =
            serde_json::from_slice(body).map_err(|e| NoticeError::Malformed(e.to_string()))?;
        if notice
            .client_id
            .is_some_and(|id| !secrets_equal(&id, &self.client_id))
        {
            return Err(NoticeError::Malformed("it names another app".into()));
        }
        Ok(UninstallNotice {
            org_id: notice.company_id.to_string(),
            user_id: notice.user_id.to_string(),
        })
    }

    /// `GET /v1/users/me` on the grant's own API domain (already checked).
    async fn identify(&self, grant: &TokenGrant) -> Result<CrmIdentity, CrmError> {
        let response = self
            .http
            .get(format!("{}/api/v1/users/me", grant.api_domain))
            .bearer_auth(&grant.access_token)
            .timeout(crm_call_timeout()?)
            .send()
            .await
            .map_err(crm_transport)?;
        let status = response.status();
        match status {
            StatusCode::UNAUTHORIZED => return Err(CrmError::Unauthorized),
            StatusCode::TOO_MANY_REQUESTS => return Err(CrmError::RateLimited),
            s if s.is_server_error() => return Err(CrmError::Unavailable(s.as_u16())),
            s if !s.is_success() => {
                return Err(CrmError::Rejected {
                    status: s.as_u16(),
                    code: s.as_u16().to_string(),
                    message: "users/me was refused".into(),
                    field: None,
                });
            }
            _ => {}
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| CrmError::Decode(format!("users/me: {e}")))?;
        let me = &body["data"];
        let id = |key: &str| {
            me[key]
                .as_u64()
                .map(|n| n.to_string())
                .ok_or_else(|| CrmError::Decode(format!("users/me without `{key}`")))
        };
        Ok(CrmIdentity {
            user_id: id("id")?,
            email: me["email"]
                .as_str()
                .ok_or_else(|| CrmError::Decode("users/me without `email`".into()))?
                .to_owned(),
            org_id: id("company_id")?,
            name: me["name"]
                .as_str()
                .filter(|n| !n.trim().is_empty())
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig};

    const REDIRECT: &str = "https://app.example/oauth/pipedrive/callback";

    async fn sandbox() -> (pipedrive_sandbox::PipedriveSandboxHandle, PipedriveOAuth) {
        let config = PipedriveSandboxConfig::default();
        let (id, secret) = (config.client_id.clone(), config.client_secret.clone());
        let sandbox = PipedriveSandbox::start(config).await.expect("sandbox");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let oauth = PipedriveOAuth::new(
            http,
            id,
            secret,
            PipedriveConfig {
                oauth_url: sandbox.base_url(),
                extra_api_origin: Some(sandbox.base_url()),
            },
        );
        (sandbox, oauth)
    }

    /// Follows the authorize URL as a browser would, to the callback's code.
    async fn code_for(oauth: &PipedriveOAuth, state: &str) -> String {
        let url = oauth.authorize_url(REDIRECT, state, "ignored");
        let answer = oauth.http.get(&url).send().await.expect("authorize");
        assert_eq!(answer.status(), StatusCode::FOUND);
        let location = answer.headers()["location"].to_str().expect("ascii");
        let callback = url::Url::parse(location).expect("url");
        let params: HashMap<String, String> = callback.query_pairs().into_owned().collect();
        assert_eq!(params.get("state").map(String::as_str), Some(state));
        params["code"].clone()
    }

    #[tokio::test]
    async fn a_code_becomes_a_grant_of_an_identified_user_and_company() {
        let (sandbox, oauth) = sandbox().await;
        sandbox
            .set_authorizing_user("bruno@acme.example")
            .expect("seeded");
        let code = code_for(&oauth, "s1").await;
        let server = oauth.token_server(&HashMap::new()).expect("one server");
        let grant = oauth
            .exchange_code(&server, &code, REDIRECT, "")
            .await
            .expect("grant");
        assert_eq!(grant.api_domain, sandbox.base_url());
        assert!(grant.refresh_token.is_some());
        let me = oauth.identify(&grant).await.expect("users/me");
        assert_eq!(me.email, "bruno@acme.example");
        assert_eq!(me.user_id, "11002");
        assert_eq!(me.org_id, sandbox.company_id().to_string());
        // A code is single-use: the grant is broken, not retried.
        let replay = oauth.exchange_code(&server, &code, REDIRECT, "").await;
        assert!(
            matches!(replay, Err(CrmError::ConnectionBroken(_))),
            "{replay:?}"
        );
        assert!(
            sandbox.contract_violations().is_empty(),
            "{:?}",
            sandbox.contract_violations()
        );
    }

    #[tokio::test]
    async fn a_refresh_rotates_the_refresh_token_and_the_old_one_is_dead() {
        let (sandbox, oauth) = sandbox().await;
        let tokens = sandbox.issue_tokens("ana@acme.example").expect("issued");
        let fresh = oauth
            .refresh("", &tokens.refresh_token)
            .await
            .expect("refreshed");
        let rotated = fresh.refresh_token.expect("a new refresh token");
        assert_ne!(rotated, tokens.refresh_token);
        let again = oauth.refresh("", &tokens.refresh_token).await;
        assert!(
            matches!(again, Err(CrmError::ConnectionBroken(_))),
            "{again:?}"
        );
        oauth
            .refresh("", &rotated)
            .await
            .expect("the rotated one works");
        assert_eq!(sandbox.token_refresh_count(), 2);
    }

    #[tokio::test]
    async fn revoking_uninstalls_and_an_unknown_token_counts_as_revoked() {
        let (sandbox, oauth) = sandbox().await;
        let tokens = sandbox.issue_tokens("ana@acme.example").expect("issued");
        oauth
            .revoke("", &tokens.refresh_token)
            .await
            .expect("revoked");
        let after = oauth.refresh("", &tokens.refresh_token).await;
        assert!(
            matches!(after, Err(CrmError::ConnectionBroken(_))),
            "{after:?}"
        );
        oauth
            .revoke("", "never-issued")
            .await
            .expect("nothing to revoke");
    }

    #[test]
    fn an_uninstall_notice_is_taken_only_with_our_client_credentials() {
        let oauth = PipedriveOAuth::new(
            reqwest::Client::new(),
            "our-id".into(),
            "our-secret".into(),
            PipedriveConfig::default(),
        );
        let basic = |id: &str, secret: &str| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            )
        };
        let body = br#"{"client_id":"our-id","company_id":1234567,"user_id":7654321,"timestamp":"2026-05-04T10:11:12.000Z"}"#;
        assert_eq!(
            oauth.uninstall_notice(Some(&basic("our-id", "our-secret")), body),
            Ok(UninstallNotice {
                org_id: "1234567".into(),
                user_id: "7654321".into(),
            })
        );
        for refused in [
            None,
            Some(basic("our-id", "not-our-secret")),
            Some(basic("another-id", "our-secret")),
            Some("Bearer our-secret".to_owned()),
            Some("Basic not base64".to_owned()),
        ] {
            assert_eq!(
                oauth.uninstall_notice(refused.as_deref(), body),
                Err(NoticeError::Unauthenticated),
                "{refused:?}"
            );
        }
        for malformed in [
            &b"not json"[..],
            br#"{"company_id":1234567}"#,
            br#"{"client_id":"another-app","company_id":1,"user_id":2}"#,
        ] {
            assert!(matches!(
                oauth.uninstall_notice(Some(&basic("our-id", "our-secret")), malformed),
                Err(NoticeError::Malformed(_))
            ));
        }
    }

    #[tokio::test]
    async fn tokens_go_only_to_pipedrive_hosts() {
        let (_sandbox, oauth) = sandbox().await;
        let strict = PipedriveConfig::default();
        for trusted in [
            "https://acme-sales.pipedrive.com",
            "https://api.pipedrive.com",
        ] {
            assert!(strict.trusts_api_domain(trusted), "{trusted}");
        }
        for refused in [
            "http://acme.pipedrive.com",
            "https://pipedrive.com.evil.example",
            "https://evil.example/acme.pipedrive.com",
            "https://acme.pipedrive.com:8443",
            "https://user@acme.pipedrive.com",
            "https://a.b.pipedrive.com",
            "https://pipedrive.com",
            "",
        ] {
            assert!(!strict.trusts_api_domain(refused), "{refused}");
        }
        // The sandbox's own origin is trusted only where configured.
        assert!(!strict.trusts_api_domain(&oauth.config.oauth_url));
    }
}
