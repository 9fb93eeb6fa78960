//! Zoho Accounts: grant codes, access and refresh tokens, revocation, and
//! who may read what.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use serde_json::{Value, json};

use crate::SandboxError;
use crate::scopes;

use super::{
    AccessToken, GrantCode, GrantInfo, IssuedTokens, RefreshToken, Store, User, random_token,
};

impl Store {
    pub fn known_client(&self, client_id: &str) -> bool {
        client_id == self.cfg.client_id
    }

    pub fn redirect_allowed(&self, uri: &str) -> bool {
        self.cfg.redirect_uris.is_empty() || self.cfg.redirect_uris.iter().any(|r| r == uri)
    }

    /// Issues a grant code for the authorizing user.
    pub fn issue_code(
        &mut self,
        client_id: &str,
        redirect_uri: &str,
        offline: bool,
        code_challenge: Option<String>,
        scopes: Vec<String>,
    ) -> String {
        let code = random_token("1000");
        self.codes.insert(
            code.clone(),
            GrantCode {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                user_id: self.authorizing_user.clone(),
                offline,
                expires: Instant::now() + self.cfg.grant_code_ttl,
                used: false,
                code_challenge,
                scopes,
            },
        );
        code
    }

    fn token_body(&self, access: &str, refresh: Option<&str>, scopes: &[String]) -> Value {
        let mut v = json!({
            "access_token": access,
            "scope": scopes.join(" "),
            "api_domain": self.base_url,
            "token_type": "Bearer",
            "expires_in": self.cfg.access_token_ttl.as_secs(),
        });
        if let (Some(r), Some(o)) = (refresh, v.as_object_mut()) {
            o.insert("refresh_token".into(), json!(r));
        }
        v
    }

    fn mint_access(&mut self, user_id: &str, refresh: Option<&str>, scopes: &[String]) -> String {
        let token = random_token("1000");
        self.access.insert(
            token.clone(),
            AccessToken {
                user_id: user_id.to_string(),
                refresh: refresh.map(str::to_string),
                expires: Instant::now() + self.cfg.access_token_ttl,
                revoked: false,
                scopes: scopes.to_vec(),
            },
        );
        // At most 15 live access tokens per refresh token: the 16th
        // invalidates the oldest (§1.7).
        if let Some(r) = refresh {
            let mut live: Vec<(&String, Instant)> = self
                .access
                .iter()
                .filter(|(_, a)| a.refresh.as_deref() == Some(r) && !a.revoked)
                .map(|(k, a)| (k, a.expires))
                .collect();
            if live.len() > 15 {
                live.sort_by_key(|(_, e)| *e);
                let oldest = live[0].0.clone();
                if let Some(a) = self.access.get_mut(&oldest) {
                    a.revoked = true;
                }
            }
        }
        token
    }

    /// `POST /oauth/v2/token`. Always HTTP 200, errors as `{"error":...}`.
    pub fn token(&mut self, p: &HashMap<String, String>) -> Value {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        if get("client_id") != self.cfg.client_id || get("client_secret") != self.cfg.client_secret
        {
            return json!({"error": "invalid_client"});
        }
        match get("grant_type") {
            "authorization_code" => {
                let code = get("code");
                let now = Instant::now();
                let Some(g) = self.codes.get_mut(code) else {
                    return json!({"error": "invalid_code"});
                };
                if g.used || g.expires <= now || g.client_id != get("client_id") {
                    g.used = true;
                    return json!({"error": "invalid_code"});
                }
                if g.redirect_uri != get("redirect_uri") {
                    return json!({"error": "invalid_redirect_uri"});
                }
                if let Some(challenge) = &g.code_challenge {
                    let verifier = get("code_verifier");
                    let expected = base64::Engine::encode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        sha2::Digest::finalize(sha2::Digest::chain_update(
                            <sha2::Sha256 as sha2::Digest>::new(),
                            verifier.as_bytes(),
                        )),
                    );
                    if verifier.is_empty() || expected != *challenge {
                        g.used = true;
                        return json!({"error": "invalid_code"});
                    }
                }
                g.used = true;
                let (user_id, offline, scopes) = (g.user_id.clone(), g.offline, g.scopes.clone());
                let refresh = offline.then(|| {
                    let r = random_token("1000");
                    self.refresh.insert(
                        r.clone(),
                        RefreshToken {
                            client_id: get("client_id").to_string(),
                            user_id: user_id.clone(),
                            revoked: false,
                            refreshes: VecDeque::new(),
                            scopes: scopes.clone(),
                        },
                    );
                    self.issued_refresh.push(r.clone());
                    r
                });
                self.enforce_refresh_token_cap(&user_id);
                let access = self.mint_access(&user_id, refresh.as_deref(), &scopes);
                self.token_body(&access, refresh.as_deref(), &scopes)
            }
            "refresh_token" => {
                let rt = get("refresh_token").to_string();
                let now = Instant::now();
                let window = self.cfg.refresh_window;
                let limit = self.refresh_limit as usize;
                let Some(r) = self.refresh.get_mut(&rt) else {
                    return json!({"error": "invalid_code"});
                };
                if r.revoked || r.client_id != get("client_id") {
                    return json!({"error": "invalid_code"});
                }
                while r
                    .refreshes
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    r.refreshes.pop_front();
                }
                if r.refreshes.len() >= limit {
                    return json!({
                        "error": "Access Denied",
                        "error_description": "You have made too many requests continuously. Please try again after some time.",
                        "status": "failure"
                    });
                }
                r.refreshes.push_back(now);
                let (user_id, scopes) = (r.user_id.clone(), r.scopes.clone());
                self.token_refreshes += 1;
                let access = self.mint_access(&user_id, Some(&rt), &scopes);
                self.token_body(&access, None, &scopes)
            }
            _ => json!({"error": "unsupported_grant_type"}),
        }
    }

    /// Max 20 refresh tokens per user per client: the 21st silently deletes
    /// the oldest and its access tokens (§1.7).
    fn enforce_refresh_token_cap(&mut self, user_id: &str) {
        let mine: Vec<String> = self
            .refresh
            .iter()
            .filter(|(_, r)| r.user_id == user_id && !r.revoked)
            .map(|(k, _)| k.clone())
            .collect();
        if mine.len() > 20 {
            // HashMap order is arbitrary; any one is fine for a sandbox.
            if let Some(victim) = mine.first() {
                self.revoke(victim);
            }
        }
    }

    /// Revokes a refresh token and its access tokens; false if unknown.
    pub fn revoke(&mut self, token: &str) -> bool {
        let Some(r) = self.refresh.get_mut(token) else {
            return false;
        };
        if r.revoked {
            return false;
        }
        r.revoked = true;
        for a in self.access.values_mut() {
            if a.refresh.as_deref() == Some(token) {
                a.revoked = true;
            }
        }
        true
    }

    pub fn revoke_all_refresh_tokens(&mut self) {
        let all: Vec<String> = self.refresh.keys().cloned().collect();
        for t in all {
            self.revoke(&t);
        }
    }

    /// The access token in `Authorization: Zoho-oauthtoken …` expires now.
    pub fn expire_access_token(&mut self, header: Option<&str>) {
        let token = header
            .and_then(|h| h.strip_prefix("Zoho-oauthtoken "))
            .map(str::trim);
        if let Some(a) = token.and_then(|t| self.access.get_mut(t)) {
            a.expires = Instant::now();
        }
    }

    pub fn expire_access_tokens(&mut self) {
        let past = Instant::now();
        for a in self.access.values_mut() {
            a.expires = past;
        }
    }

    /// Mints tokens for a user without the browser dance (test shortcut).
    pub fn issue_tokens(&mut self, email: &str) -> Result<IssuedTokens, SandboxError> {
        let user_id = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .map(|u| u.id.clone())
            .ok_or_else(|| SandboxError::UnknownUser(email.to_string()))?;
        let r = random_token("1000");
        let everything: Vec<String> = scopes::EVERYTHING.iter().map(|s| (*s).to_owned()).collect();
        self.refresh.insert(
            r.clone(),
            RefreshToken {
                client_id: self.cfg.client_id.clone(),
                user_id: user_id.clone(),
                revoked: false,
                refreshes: VecDeque::new(),
                scopes: everything.clone(),
            },
        );
        self.issued_refresh.push(r.clone());
        let a = self.mint_access(&user_id, Some(&r), &everything);
        Ok(IssuedTokens {
            access_token: a,
            refresh_token: r,
        })
    }

    /// Resolves an `Authorization` header to the calling user and the
    /// scopes their token was granted.
    pub fn authenticate(&self, header: Option<&str>) -> Option<(String, Vec<String>)> {
        let token = header?.strip_prefix("Zoho-oauthtoken ")?.trim();
        let a = self.access.get(token)?;
        if a.revoked || a.expires <= Instant::now() {
            return None;
        }
        let u = self.user(&a.user_id)?;
        u.active.then(|| (u.id.clone(), a.scopes.clone()))
    }

    /// The grants (refresh tokens) issued to the user `email`, oldest first.
    pub fn grants_of(&self, email: &str) -> Vec<GrantInfo> {
        let Some(user) = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
        else {
            return Vec::new();
        };
        self.issued_refresh
            .iter()
            .filter_map(|t| self.refresh.get(t))
            .filter(|r| r.user_id == user.id)
            .map(|r| GrantInfo {
                scopes: r.scopes.clone(),
                revoked: r.revoked,
            })
            .collect()
    }

    /// Revokes every grant of the user `email` (as they would under
    /// Connected Apps); how many were live.
    pub fn revoke_grants_of(&mut self, email: &str) -> usize {
        let Some(user_id) = self
            .users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email))
            .map(|u| u.id.clone())
        else {
            return 0;
        };
        let theirs: Vec<String> = self
            .refresh
            .iter()
            .filter(|(_, r)| r.user_id == user_id && !r.revoked)
            .map(|(t, _)| t.clone())
            .collect();
        theirs.iter().filter(|t| self.revoke(t)).count()
    }

    /// Whether `caller` may read the record: in an owner-only module, a
    /// user who is not an administrator reads only the records they own.
    pub fn may_read(&self, caller: &str, module: &str, id: &str) -> bool {
        if !self.owner_only_modules.iter().any(|m| m == module)
            || self.user(caller).is_some_and(User::is_admin)
        {
            return true;
        }
        self.find(module, id).is_none_or(|r| {
            r.data
                .get("Owner")
                .and_then(|o| o.get("id"))
                .and_then(Value::as_str)
                == Some(caller)
        })
    }
}
