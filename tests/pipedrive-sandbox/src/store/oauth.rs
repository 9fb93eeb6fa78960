//! The OAuth server: authorization codes, token exchange and refresh (with
//! refresh-token rotation), revocation (= uninstall for the user) and the
//! bearer-token check of API calls.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};

use super::{Caller, Store};
use crate::SandboxError;

#[derive(Debug)]
struct Code {
    user_id: u64,
    redirect_uri: String,
    expires: Instant,
}

#[derive(Debug)]
struct RefreshToken {
    user_id: u64,
    company_id: u64,
    last_used: Instant,
}

#[derive(Debug)]
struct AccessToken {
    user_id: u64,
    company_id: u64,
    scopes: Vec<String>,
    expires: Instant,
}

/// OAuth state. Revoked or rotated tokens are simply removed.
#[derive(Debug, Default)]
pub struct OAuth {
    pub authorizing_user: u64,
    pub deny_next: bool,
    codes: HashMap<String, Code>,
    refresh: HashMap<String, RefreshToken>,
    access: HashMap<String, AccessToken>,
    pub refreshes: u64,
}

/// Tokens handed out without the browser
/// (`PipedriveSandboxHandle::issue_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedTokens {
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: u64,
    pub company_id: u64,
}

/// A refused token request: status and the documented message.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenError {
    pub status: u16,
    /// RFC 6749 error code (`invalid_grant`, …).
    pub code: &'static str,
    pub message: String,
}

impl TokenError {
    fn new(code: &'static str, message: &str) -> Self {
        Self {
            status: 400,
            code,
            message: message.to_string(),
        }
    }

    /// Body: RFC 6749 §5.2 shape carrying the documented message (the body
    /// shape itself is undocumented by Pipedrive).
    pub fn body(&self) -> Value {
        json!({"error": self.code, "error_description": self.message})
    }
}

/// Why an API call is not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// `Authorization` present but not `Bearer <token>` (400).
    Malformed,
    /// Missing, unknown, expired or revoked token (401).
    Invalid,
}

fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}

fn random_access_token() -> String {
    let mut bytes = vec![0u8; 240];
    rand::rng().fill(&mut bytes[..]);
    format!(
        "v1u:AQIB{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Client credentials from an HTTP Basic header.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let encoded = header?.trim().strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

impl Store {
    fn check_client(&self, authorization: Option<&str>) -> Result<(), TokenError> {
        let Some((id, secret)) = basic_credentials(authorization) else {
            return Err(TokenError::new(
                "invalid_client",
                "Invalid client: cannot retrieve client credentials",
            ));
        };
        if id != self.cfg.client_id || secret != self.cfg.client_secret {
            return Err(TokenError::new(
                "invalid_client",
                "Invalid client: client is invalid",
            ));
        }
        Ok(())
    }

    pub fn known_client(&self, client_id: &str) -> bool {
        client_id == self.cfg.client_id
    }

    pub fn redirect_allowed(&self, uri: &str) -> bool {
        self.cfg.redirect_uri.as_deref().is_none_or(|r| r == uri)
    }

    /// Issues a code for the authorizing user (the consent step).
    pub fn issue_code(&mut self, redirect_uri: &str) -> String {
        let code = format!("{}:{}", self.oauth.authorizing_user, random_hex(40));
        self.oauth.codes.insert(
            code.clone(),
            Code {
                user_id: self.oauth.authorizing_user,
                redirect_uri: redirect_uri.to_string(),
                expires: Instant::now() + self.cfg.code_ttl,
            },
        );
        code
    }

    fn mint(&mut self, user_id: u64, company_id: u64) -> IssuedTokens {
        let refresh_token = format!("{company_id}:{user_id}:{}", random_hex(40));
        self.oauth.refresh.insert(
            refresh_token.clone(),
            RefreshToken {
                user_id,
                company_id,
                last_used: Instant::now(),
            },
        );
        let access_token = self.mint_access(user_id, company_id);
        IssuedTokens {
            access_token,
            refresh_token,
            user_id,
            company_id,
        }
    }

    fn mint_access(&mut self, user_id: u64, company_id: u64) -> String {
        let token = random_access_token();
        let mut scopes = self.cfg.app_scopes.clone();
        if !scopes.iter().any(|s| s == "base") {
            scopes.insert(0, "base".into());
        }
        self.oauth.access.insert(
            token.clone(),
            AccessToken {
                user_id,
                company_id,
                scopes,
                expires: Instant::now() + self.cfg.access_token_ttl,
            },
        );
        token
    }

    fn token_response(&self, t: &IssuedTokens) -> Value {
        let scope = self
            .oauth
            .access
            .get(&t.access_token)
            .map(|a| a.scopes.join(","))
            .unwrap_or_default();
        json!({
            "access_token": t.access_token,
            "token_type": "Bearer",
            "expires_in": self.cfg.access_token_ttl.as_secs(),
            "refresh_token": t.refresh_token,
            "scope": scope,
            "api_domain": self.base_url
        })
    }

    /// `POST /oauth/token`: `content_type` and `authorization` are the
    /// request headers, `form` the decoded body.
    pub fn token(
        &mut self,
        content_type: Option<&str>,
        authorization: Option<&str>,
        form: &HashMap<String, String>,
    ) -> Result<Value, TokenError> {
        let is_form = content_type.is_some_and(|c| {
            c.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
        if !is_form {
            return Err(TokenError::new(
                "invalid_request",
                "Invalid request: content must be application/x-www-form-urlencoded",
            ));
        }
        self.check_client(authorization)?;
        let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let tokens = match get("grant_type") {
            None => {
                return Err(TokenError::new(
                    "invalid_request",
                    "Missing parameter: grant_type",
                ));
            }
            Some("authorization_code") => {
                let Some(code) = get("code") else {
                    return Err(TokenError::new(
                        "invalid_request",
                        "Missing parameter: code",
                    ));
                };
                let Some(redirect_uri) = get("redirect_uri") else {
                    return Err(TokenError::new(
                        "invalid_request",
                        "Invalid request: redirect_uri is not a valid URI",
                    ));
                };
                let (user_id, expired, redirect_ok) = match self.oauth.codes.get(code) {
                    None => {
                        return Err(TokenError::new(
                            "invalid_grant",
                            "Invalid grant: authorization_code is invalid",
                        ));
                    }
                    Some(c) => (
                        c.user_id,
                        c.expires <= Instant::now(),
                        c.redirect_uri == redirect_uri && self.redirect_allowed(redirect_uri),
                    ),
                };
                if expired {
                    self.oauth.codes.remove(code);
                    return Err(TokenError::new(
                        "invalid_grant",
                        "Invalid grant: authorization_code has expired",
                    ));
                }
                if !redirect_ok {
                    return Err(TokenError::new(
                        "invalid_request",
                        "Invalid request: redirect_uri is invalid",
                    ));
                }
                self.oauth.codes.remove(code);
                let company_id = self
                    .user(user_id)
                    .map(|u| u.company_id)
                    .unwrap_or_else(|| self.home_company());
                self.mint(user_id, company_id)
            }
            Some("refresh_token") => {
                let Some(rt) = get("refresh_token") else {
                    return Err(TokenError::new(
                        "invalid_request",
                        "Missing parameter: refresh_token",
                    ));
                };
                let idle = self.cfg.refresh_token_idle_ttl;
                let usable = self
                    .oauth
                    .refresh
                    .get(rt)
                    .is_some_and(|r| r.last_used.elapsed() < idle);
                // Rotation: the presented token is used up either way.
                let old = self.oauth.refresh.remove(rt);
                match old {
                    Some(r) if usable => {
                        self.oauth.refreshes += 1;
                        self.mint(r.user_id, r.company_id)
                    }
                    _ => {
                        return Err(TokenError::new(
                            "invalid_grant",
                            "Invalid grant: refresh_token is invalid",
                        ));
                    }
                }
            }
            Some(_) => {
                return Err(TokenError::new(
                    "unsupported_grant_type",
                    "Unsupported grant type: grant_type is invalid",
                ));
            }
        };
        Ok(self.token_response(&tokens))
    }

    /// `POST /oauth/revoke` (RFC 7009): revoking a refresh token uninstalls
    /// the app for its user (every token of that user dies); revoking an
    /// access token kills only that token. Unknown tokens succeed silently.
    pub fn revoke(
        &mut self,
        authorization: Option<&str>,
        form: &HashMap<String, String>,
    ) -> Result<(), TokenError> {
        self.check_client(authorization)?;
        let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
            return Err(TokenError::new(
                "invalid_request",
                "Missing parameter: token",
            ));
        };
        if let Some(r) = self.oauth.refresh.get(token) {
            let user = r.user_id;
            self.uninstall_for(user);
        } else {
            self.oauth.access.remove(token);
        }
        Ok(())
    }

    /// Every token of `user_id` stops working (app uninstalled for them).
    pub fn uninstall_for(&mut self, user_id: u64) {
        self.oauth.refresh.retain(|_, r| r.user_id != user_id);
        self.oauth.access.retain(|_, a| a.user_id != user_id);
    }

    /// Tokens for a user without the browser round trip.
    pub fn issue_tokens(&mut self, email: &str) -> Result<IssuedTokens, SandboxError> {
        let (user_id, company_id) = self
            .user_by_email(email)
            .map(|u| (u.id, u.company_id))
            .ok_or_else(|| SandboxError::UnknownUser(email.to_string()))?;
        Ok(self.mint(user_id, company_id))
    }

    /// Checks `Authorization: Bearer …`; returns the caller and the scopes.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<(Caller, Vec<String>), AuthFailure> {
        let Some(header) = authorization else {
            return Err(AuthFailure::Invalid);
        };
        let mut parts = header.split_whitespace();
        let (Some(scheme), Some(token), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(AuthFailure::Malformed);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthFailure::Malformed);
        }
        match self.oauth.access.get(token) {
            Some(a) if a.expires > Instant::now() => Ok((
                Caller {
                    user_id: a.user_id,
                    company_id: a.company_id,
                },
                a.scopes.clone(),
            )),
            _ => Err(AuthFailure::Invalid),
        }
    }

    /// The access token `token` expires now (its next call → 401).
    pub fn expire_access_token(&mut self, token: &str) {
        let past = Instant::now()
            .checked_sub(Duration::from_millis(1))
            .unwrap_or_else(Instant::now);
        if let Some(a) = self.oauth.access.get_mut(token) {
            a.expires = past;
        }
    }

    pub fn expire_access_tokens(&mut self) {
        let past = Instant::now()
            .checked_sub(Duration::from_millis(1))
            .unwrap_or_else(Instant::now);
        for a in self.oauth.access.values_mut() {
            a.expires = past;
        }
    }

    /// Every refresh token (and the access tokens) stops working.
    pub fn revoke_refresh_tokens(&mut self) {
        self.oauth.refresh.clear();
        self.oauth.access.clear();
    }
}
