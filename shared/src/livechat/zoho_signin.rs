//! Signing in to live chat from Zoho CRM's widget.
//!
//! Zoho gives the widget nothing signed (its `PageLoad` context and
//! `getCurrentUser()` are the browser's word), so the user proves who they
//! are to Zoho itself, in a popup on our origin:
//!
//! 1. The widget makes a random nonce and opens `GET /oauth/zoho/live?nonce=…`
//!    ([`begin`]): a sign-in state (its own purpose, signed, single-use,
//!    bound to the popup's browser by a cookie, PKCE) and the nonce's
//!    sign-in, pending; the popup goes to Zoho asking only for the scopes
//!    that read the user and their organization.
//! 2. Zoho's redirect reaches the usual callback, which sees the state's
//!    purpose and calls [`complete`]: the code is exchanged, the user and
//!    organization read, the fresh grant revoked at once, and the user's
//!    *personal* connection found by (organization, user). With one, a
//!    one-time code (256 random bits, stored hashed, two minutes) is
//!    minted and the popup's page posts `{type: "zoho-live-code", code,
//!    nonce}` to its opener (our origin only) and closes; without one, no
//!    code: the page says how to connect.
//! 3. The widget exchanges the code — or, if the popup lost its opener,
//!    polls with its nonce — at `POST /api/live/zoho/session` ([`redeem`]):
//!    once, by whichever comes first, for a live-chat session.
//!
//! Known limit of the nonce poll: whoever knows a nonce may collect its
//! session, and a nonce travels in the popup's URL. The widget's own
//! nonce never leaves its page and the popup, but a page that sends a
//! victim to `/oauth/zoho/live?nonce=<its own>` and polls that nonce gets
//! the victim's session if the victim signs in to Zoho in that window.
//! The code path (the opener check of `postMessage`) has no such gap;
//! what would close it is a confirmation step in the popup before a
//! nonce may be redeemed.

use async_trait::async_trait;
use lambda_http::{Body, Response};
use serde::{Deserialize, Serialize};

use super::session::{self, SessionAnswer, current_personal, personal_connection_of};
use crate::crm::{CrmError, CrmOAuth};
use crate::crypto::{pkce_challenge, random_token, secrets_equal, sha256_hex};
use crate::deps::Deps;
use crate::error::{SecretsError, StoreError};
use crate::handlers::http::HttpResponse;
use crate::model::CrmKind;

/// What starts a sign-in's `state` (a connection's is `<nonce>.<sig>`), so
/// the callback knows the purpose before it looks anything up.
pub const STATE_PREFIX: &str = "live.";

/// The `type` of the message the popup posts to the widget.
pub const MESSAGE_TYPE: &str = "zoho-live-code";

/// A sign-in's OAuth state, kept until the callback takes it.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignInState {
    /// The state's own random id (what the `state` parameter names).
    pub nonce: String,
    pub crm: CrmKind,
    /// The widget's nonce: handed back with the code, so the widget knows
    /// the message is for its own sign-in.
    pub page_nonce: String,
    pub expires_at: i64,
    /// PKCE verifier: only its challenge leaves the server.
    pub code_verifier: String,
    /// SHA-256 of the secret in the popup's cookie: only the browser that
    /// began the sign-in can complete it.
    pub browser_binding: String,
}

/// Without the nonces and the verifier.
impl std::fmt::Debug for SignInState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInState")
            .field("crm", &self.crm)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Who signed in, kept (under the widget's nonce) until it is redeemed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedIn {
    /// SHA-256 of the one-time code: the code itself is never stored.
    pub code_hash: String,
    pub workspace_id: String,
    pub user_id: String,
    pub crm: CrmKind,
    pub crm_org_id: String,
    pub crm_user_id: String,
    pub crm_user_email: String,
    pub crm_user_name: Option<String>,
}

/// Where a sign-in stands, as the widget's nonce finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignInStatus {
    /// Begun; Zoho has not sent the user back yet.
    Pending,
    /// A code was minted: redeemable once, by the code or by the nonce.
    Ready(SignedIn),
    /// The Zoho user has no working personal connection here.
    NotConnected { crm_user_email: String },
    /// Redeemed: kept until it expires, so that the nonce's poll learns it
    /// is spent rather than waiting on.
    Used,
}

/// A sign-in as stored under its widget's nonce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    #[serde(flatten)]
    pub status: SignInStatus,
    /// Unix seconds; the store also lets TTL remove it.
    pub expires_at: i64,
}

/// The sign-in items (see the DynamoDB adapter). Nonces and codes are
/// stored only as SHA-256 hashes.
#[async_trait]
pub trait SignInStore: Send + Sync {
    /// Stores the state (until the callback takes it) and the widget
    /// nonce's sign-in, pending; both expire with the state.
    async fn begin_sign_in(&self, state: &SignInState, nonce_hash: &str) -> Result<(), StoreError>;
    /// Removes and returns the state: it can be used once.
    async fn take_sign_in_state(&self, nonce: &str) -> Result<Option<SignInState>, StoreError>;
    /// Records what the callback found under the widget's nonce and, for a
    /// ready sign-in, its code (pointing to that nonce).
    async fn settle_sign_in(&self, nonce_hash: &str, sign_in: &SignIn) -> Result<(), StoreError>;
    /// The sign-in under a widget's nonce (read consistently), expired or
    /// not (the caller tells which).
    async fn sign_in(&self, nonce_hash: &str) -> Result<Option<SignIn>, StoreError>;
    /// The widget nonce (hashed) a code belongs to.
    async fn nonce_of_code(&self, code_hash: &str) -> Result<Option<String>, StoreError>;
    /// Marks the nonce's sign-in used if it is still ready with the code
    /// `code_hash` (dropping who it was for), and returns it as it was: one
    /// caller gets it, whoever asks first (a conditional update).
    async fn take_ready_sign_in(
        &self,
        nonce_hash: &str,
        code_hash: &str,
    ) -> Result<Option<SignIn>, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// A request that is not what the flow sends.
    #[error("{0}")]
    Invalid(String),
    /// The callback came to another browser than the one that began.
    #[error(
        "this sign-in was started in another browser: start it again from Zoho CRM in your own"
    )]
    OtherBrowser,
    #[error(
        "{0} users sign in to live chat through the CRM itself; there is no sign-in page for it"
    )]
    Unsupported(&'static str),
    /// An unknown, used or expired code or nonce.
    #[error("this sign-in is unknown, used or expired: sign in again")]
    Expired,
    /// The CRM could not say who the user is.
    #[error("the CRM could not sign you in: {0}")]
    Crm(#[from] CrmError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
}

/// A widget's nonce: 22 to 128 base64url characters (at least 128 random
/// bits, as `crypto.getRandomValues` gives the page; nothing that needs
/// escaping in a URL or the popup's page).
pub fn valid_page_nonce(nonce: &str) -> bool {
    (22..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What a sign-in's signature covers: everything the callback trusts, and
/// the purpose, so that a connection's state never passes as a sign-in's.
fn state_message(state: &SignInState) -> String {
    format!(
        "live-sign-in|{}|{}|{}|{}|{}",
        state.nonce,
        state.crm.as_str(),
        sha256_hex(&state.page_nonce),
        state.expires_at,
        state.browser_binding
    )
}

/// Begins a sign-in for the widget's `page_nonce` in the browser holding
/// the secret whose hash is `browser_binding`; where to send that
/// browser, and the state's nonce (which names its binding cookie).
pub async fn begin(
    deps: &Deps,
    oauth: &dyn CrmOAuth,
    crm: CrmKind,
    redirect_uri: &str,
    page_nonce: &str,
    browser_binding: String,
) -> Result<(String, String), SignInError> {
    if !valid_page_nonce(page_nonce) {
        return Err(SignInError::Invalid(
            "`nonce` must be 22 to 128 characters of A-Z, a-z, 0-9, `-` and `_`".into(),
        ));
    }
    let state = SignInState {
        nonce: random_token(),
        crm,
        page_nonce: page_nonce.to_owned(),
        expires_at: deps.clock.now() + deps.config.oauth_state_ttl_secs,
        code_verifier: random_token(),
        browser_binding,
    };
    let signed = format!(
        "{STATE_PREFIX}{}.{}",
        state.nonce,
        deps.secrets
            .keys()
            .await?
            .sign_state(&state_message(&state))
    );
    let url = oauth
        .sign_in_url(redirect_uri, &signed, &pkce_challenge(&state.code_verifier))
        .ok_or(SignInError::Unsupported(crm.display_name()))?;
    deps.store
        .begin_sign_in(&state, &sha256_hex(page_nonce))
        .await?;
    Ok((url, state.nonce))
}

/// What the popup shows once the callback has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    /// Hand `code` (and the widget's `nonce`) to the opener.
    SignedIn {
        code: String,
        nonce: String,
        crm_user_email: String,
    },
    /// The Zoho user has no personal connection: no code.
    NotConnected { crm_user_email: String },
}

/// The state's nonce and signature (after [`STATE_PREFIX`]).
pub fn split_state(signed: &str) -> Option<(&str, &str)> {
    signed.strip_prefix(STATE_PREFIX)?.split_once('.')
}

/// The callback of a sign-in: `state_nonce` and `signature` from its state,
/// `code` and the callback's parameters from Zoho, `browser_secret` the
/// binding cookie the browser sent back (if any).
pub async fn complete(
    deps: &Deps,
    oauth: &dyn CrmOAuth,
    crm: CrmKind,
    redirect_uri: &str,
    callback: Callback<'_>,
) -> Result<Popup, SignInError> {
    // Taking the state deletes it: a replay finds nothing.
    let state = deps
        .store
        .take_sign_in_state(callback.state_nonce)
        .await?
        .ok_or_else(|| SignInError::Invalid("the state is unknown, used or expired".into()))?;
    let keys = deps.secrets.keys().await?;
    if !keys.verify_state(&state_message(&state), callback.signature) || state.crm != crm {
        return Err(SignInError::Invalid("the state is not valid".into()));
    }
    if state.expires_at <= deps.clock.now() {
        return Err(SignInError::Invalid(
            "the sign-in took too long; start it again from Zoho CRM".into(),
        ));
    }
    let same_browser = callback
        .browser_secret
        .is_some_and(|secret| secrets_equal(&sha256_hex(secret), &state.browser_binding));
    if !same_browser {
        tracing::warn!(
            crm = crm.as_str(),
            "live-chat sign-in callback from another browser than the one that began it"
        );
        return Err(SignInError::OtherBrowser);
    }
    let server = oauth
        .token_server(callback.params)
        .map_err(SignInError::Invalid)?;
    let grant = oauth
        .exchange_code(&server, callback.code, redirect_uri, &state.code_verifier)
        .await?;
    let identity = oauth.identify(&grant).await;
    // The grant was only ever for knowing who this is: the user's personal
    // connection holds the tokens live chat works with. Kept, it would be
    // one more of the user's refresh tokens for our client — Zoho keeps 20
    // and silently deletes the oldest for a 21st, which would sooner or
    // later be the personal connection's own — and a token nobody uses.
    match &grant.refresh_token {
        Some(refresh_token) => {
            if let Err(e) = oauth.revoke(&server.accounts_server, refresh_token).await {
                tracing::warn!(crm = crm.as_str(), error = %e, "could not give a live-chat sign-in's grant back");
            }
        }
        None => tracing::warn!(
            crm = crm.as_str(),
            "the sign-in's grant came without a refresh token: nothing to revoke it by"
        ),
    }
    let identity = identity?;
    let nonce_hash = sha256_hex(&state.page_nonce);
    let now = deps.clock.now();
    let Some(connection) =
        personal_connection_of(deps, crm, &identity.org_id, &identity.user_id).await?
    else {
        tracing::info!(crm = crm.as_str(), crm_user_id = %identity.user_id, "live-chat sign-in without a personal connection");
        deps.store
            .settle_sign_in(
                &nonce_hash,
                &SignIn {
                    status: SignInStatus::NotConnected {
                        crm_user_email: identity.email.clone(),
                    },
                    expires_at: state.expires_at,
                },
            )
            .await?;
        return Ok(Popup::NotConnected {
            crm_user_email: identity.email,
        });
    };
    let code = random_token();
    deps.store
        .settle_sign_in(
            &nonce_hash,
            &SignIn {
                status: SignInStatus::Ready(SignedIn {
                    code_hash: sha256_hex(&code),
                    workspace_id: connection.workspace_id.clone(),
                    user_id: connection.user_id.clone(),
                    crm,
                    crm_org_id: connection.crm_org_id.clone(),
                    crm_user_id: connection.crm_user_id.clone(),
                    crm_user_email: connection.crm_user_email.clone(),
                    crm_user_name: identity.name,
                }),
                expires_at: now + deps.config.live_signin_code_ttl_secs,
            },
        )
        .await?;
    tracing::info!(workspace_id = %connection.workspace_id, user_id = %connection.user_id, crm = crm.as_str(), "live-chat sign-in: one-time code minted");
    Ok(Popup::SignedIn {
        code,
        nonce: state.page_nonce,
        crm_user_email: connection.crm_user_email,
    })
}

/// What a sign-in's callback carries.
#[derive(Debug, Clone, Copy)]
pub struct Callback<'a> {
    pub state_nonce: &'a str,
    pub signature: &'a str,
    pub code: &'a str,
    pub params: &'a std::collections::HashMap<String, String>,
    pub browser_secret: Option<&'a str>,
}

/// What the widget asks `POST /api/live/zoho/session` with.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionAsk {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
}

/// What a redemption gives the widget.
#[derive(Debug)]
pub enum Redeemed {
    /// The nonce's sign-in has not come back from Zoho yet: ask again.
    Pending,
    /// Signed in as `crm_user_email`, who has no personal connection.
    NotConnected {
        crm_user_email: String,
    },
    Session(Box<SessionAnswer>),
}

/// What a code or a nonce finds, taken out of the store if it was ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    Pending,
    NotConnected {
        crm_user_email: String,
    },
    /// Ready, and now used.
    Ready(SignedIn),
}

/// Takes what a code or a nonce names at `now`: a ready sign-in once,
/// whoever asks first, by either; [`SignInError::Expired`] for anything
/// used or out of time, and for an unknown code. An unknown nonce is
/// pending: the widget polls from the moment it opens the popup, which
/// may be before the popup has begun the sign-in.
pub async fn take(
    store: &dyn SignInStore,
    ask: &SessionAsk,
    now: i64,
) -> Result<Taken, SignInError> {
    let taken = match (ask.code.as_deref(), ask.nonce.as_deref()) {
        (Some(code), None) => {
            let code_hash = sha256_hex(code);
            let Some(nonce_hash) = store.nonce_of_code(&code_hash).await? else {
                return Err(SignInError::Expired);
            };
            store.take_ready_sign_in(&nonce_hash, &code_hash).await?
        }
        (None, Some(nonce)) => {
            let nonce_hash = sha256_hex(nonce);
            let Some(sign_in) = store.sign_in(&nonce_hash).await? else {
                return Ok(Taken::Pending);
            };
            if sign_in.expires_at <= now {
                return Err(SignInError::Expired);
            }
            match sign_in.status {
                SignInStatus::Pending => return Ok(Taken::Pending),
                SignInStatus::Used => return Err(SignInError::Expired),
                SignInStatus::NotConnected { crm_user_email } => {
                    return Ok(Taken::NotConnected { crm_user_email });
                }
                SignInStatus::Ready(ready) => {
                    store
                        .take_ready_sign_in(&nonce_hash, &ready.code_hash)
                        .await?
                }
            }
        }
        _ => {
            return Err(SignInError::Invalid(
                "expected {\"code\": \"…\"} or {\"nonce\": \"…\"}".into(),
            ));
        }
    };
    match taken {
        Some(SignIn {
            status: SignInStatus::Ready(signed_in),
            expires_at,
        }) if expires_at > now => Ok(Taken::Ready(signed_in)),
        _ => Err(SignInError::Expired),
    }
}

/// Exchanges a code or a nonce for a session, once.
pub async fn redeem(deps: &Deps, ask: &SessionAsk) -> Result<Redeemed, SignInError> {
    let signed_in = match take(deps.store.as_ref(), ask, deps.clock.now()).await? {
        Taken::Pending => return Ok(Redeemed::Pending),
        Taken::NotConnected { crm_user_email } => {
            return Ok(Redeemed::NotConnected { crm_user_email });
        }
        Taken::Ready(signed_in) => signed_in,
    };
    // The connection may have gone since the callback (disconnected, the
    // workspace deleted): read it again.
    let Some(connection) = current_personal(
        deps,
        &signed_in.workspace_id,
        &signed_in.user_id,
        signed_in.crm,
        &signed_in.crm_org_id,
        &signed_in.crm_user_id,
    )
    .await?
    else {
        return Ok(Redeemed::NotConnected {
            crm_user_email: signed_in.crm_user_email,
        });
    };
    Ok(Redeemed::Session(Box::new(
        session::start(deps, &connection, signed_in.crm_user_name).await?,
    )))
}

/// The popup's one script: hands the code to the widget that opened the
/// popup — only if that window is on our origin — and closes. Without an
/// opener (a strict opener policy on the way cut it), the page's text
/// sends the user back, where the widget's poll finds the sign-in.
const POPUP_JS: &str = r#"(function () {
  var d = document.body.dataset;
  if (!d.code || !window.opener || window.opener.closed) { return; }
  window.opener.postMessage({ type: "zoho-live-code", code: d.code, nonce: d.nonce }, location.origin);
  window.close();
})();"#;

const POPUP_CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#1d2939}h1{font-size:1.2rem}code{background:#f2f4f7;padding:0 .25rem}";

/// Escapes text for HTML (a CRM user's e-mail is the CRM's word).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The popup's page: its script and style allowed by their hashes only,
/// never framed, never cached, and no referrer for the links on it (the
/// URL holds Zoho's code and our state).
pub fn popup_page(popup: &Popup) -> HttpResponse {
    let (status, data, body) = match popup {
        Popup::SignedIn {
            code,
            nonce,
            crm_user_email,
        } => (
            200,
            // Code and nonce are base64url: nothing to escape in an attribute.
            format!(r#" data-code="{code}" data-nonce="{nonce}""#),
            format!(
                "<h1>Signed in</h1><p>You are signed in to the WhatsApp chat as {}.</p>\
                 <p>Go back to Zoho CRM; the chat will open. You can close this window.</p>",
                escape(crm_user_email)
            ),
        ),
        Popup::NotConnected { crm_user_email } => (
            403,
            String::new(),
            format!(
                "<h1>Connect Zoho first</h1><p>You are signed in to Zoho as {}, but you have no \
                 personal Zoho connection in the WhatsApp sync, and live chat shows chats only to \
                 users with one.</p><p>Connect your own Zoho account in the WhatsApp sync (its \
                 connect page, <code>POST /oauth/zoho/start</code> with \
                 <code>{{\"connection\": \"personal\"}}</code>), then open the chat again.</p>",
                escape(crm_user_email)
            ),
        ),
    };
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        super::page::sha256_source(POPUP_JS),
        super::page::sha256_source(POPUP_CSS),
    );
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>WhatsApp chat sign-in</title>\
         <style>{POPUP_CSS}</style></head><body{data}>{body}<script>{POPUP_JS}</script></body></html>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", csp)
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(html))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_nonce_is_long_and_plain() {
        assert!(valid_page_nonce(&"a".repeat(22)));
        assert!(valid_page_nonce("AbC-_0123456789abcdefghij"));
        assert!(!valid_page_nonce(&"a".repeat(21)), "too short to be random");
        assert!(!valid_page_nonce(&"a".repeat(129)));
        assert!(!valid_page_nonce("aaaaaaaaaaaaaaaaaaaaa\"><script>"));
        assert!(!valid_page_nonce("aaaaaaaaaaaaaaaaaaaaaaa.b"));
    }

    #[test]
    fn a_sign_in_state_is_told_from_a_connections() {
        assert_eq!(split_state("live.abc.sig"), Some(("abc", "sig")));
        assert_eq!(split_state("abc.sig"), None, "a connection's state");
        assert_eq!(split_state("live.abc"), None);
    }

    #[test]
    fn the_signature_covers_the_purpose_and_the_page_nonce() {
        let state = SignInState {
            nonce: "n".into(),
            crm: CrmKind::Zoho,
            page_nonce: "p".repeat(22),
            expires_at: 10,
            code_verifier: "v".into(),
            browser_binding: "b".into(),
        };
        let message = state_message(&state);
        assert!(message.starts_with("live-sign-in|"));
        let other = SignInState {
            page_nonce: "q".repeat(22),
            ..state.clone()
        };
        assert_ne!(message, state_message(&other));
        assert!(
            !format!("{state:?}").contains(&"p".repeat(22)),
            "no nonce in logs"
        );
    }

    #[test]
    fn the_popup_allows_exactly_its_own_script_and_escapes_the_crm_user() {
        let page = popup_page(&Popup::SignedIn {
            code: "c0de".into(),
            nonce: "n".repeat(22),
            crm_user_email: "bruno@acme.example".into(),
        });
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .expect("ascii");
        assert!(csp.contains(&super::super::page::sha256_source(POPUP_JS)));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        let Body::Text(html) = page.body() else {
            panic!("a text body")
        };
        assert!(html.contains(&format!("<script>{POPUP_JS}</script>")));
        assert!(html.contains(r#"data-code="c0de""#));
        let inline_handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!inline_handler, "no inline handlers");
        let refused = popup_page(&Popup::NotConnected {
            crm_user_email: "<b>x@y</b>".into(),
        });
        assert_eq!(refused.status(), 403);
        let Body::Text(html) = refused.body() else {
            panic!("a text body")
        };
        assert!(html.contains("&lt;b&gt;x@y&lt;/b&gt;"));
        assert!(!html.contains("data-code"), "never a code");
    }

    /// The sign-in items in memory, with the store's semantics: a state
    /// is taken once, a ready sign-in removed only by its own code.
    #[derive(Default)]
    struct Memory {
        states: std::sync::Mutex<std::collections::HashMap<String, SignInState>>,
        sign_ins: std::sync::Mutex<std::collections::HashMap<String, SignIn>>,
        codes: std::sync::Mutex<std::collections::HashMap<String, String>>,
    }

    #[async_trait]
    impl SignInStore for Memory {
        async fn begin_sign_in(
            &self,
            state: &SignInState,
            nonce_hash: &str,
        ) -> Result<(), StoreError> {
            self.sign_ins.lock().expect("lock").insert(
                nonce_hash.to_owned(),
                SignIn {
                    status: SignInStatus::Pending,
                    expires_at: state.expires_at,
                },
            );
            self.states
                .lock()
                .expect("lock")
                .insert(state.nonce.clone(), state.clone());
            Ok(())
        }
        async fn take_sign_in_state(&self, nonce: &str) -> Result<Option<SignInState>, StoreError> {
            Ok(self.states.lock().expect("lock").remove(nonce))
        }
        async fn settle_sign_in(
            &self,
            nonce_hash: &str,
            sign_in: &SignIn,
        ) -> Result<(), StoreError> {
            if let SignInStatus::Ready(ready) = &sign_in.status {
                self.codes
                    .lock()
                    .expect("lock")
                    .insert(ready.code_hash.clone(), nonce_hash.to_owned());
            }
            self.sign_ins
                .lock()
                .expect("lock")
                .insert(nonce_hash.to_owned(), sign_in.clone());
            Ok(())
        }
        async fn sign_in(&self, nonce_hash: &str) -> Result<Option<SignIn>, StoreError> {
            Ok(self.sign_ins.lock().expect("lock").get(nonce_hash).cloned())
        }
        async fn nonce_of_code(&self, code_hash: &str) -> Result<Option<String>, StoreError> {
            Ok(self.codes.lock().expect("lock").get(code_hash).cloned())
        }
        async fn take_ready_sign_in(
            &self,
            nonce_hash: &str,
            code_hash: &str,
        ) -> Result<Option<SignIn>, StoreError> {
            let mut sign_ins = self.sign_ins.lock().expect("lock");
            let ready = matches!(
                sign_ins.get(nonce_hash),
                Some(SignIn { status: SignInStatus::Ready(r), .. }) if r.code_hash == code_hash
            );
            if !ready {
                return Ok(None);
            }
            self.codes.lock().expect("lock").remove(code_hash);
            let used = sign_ins.get_mut(nonce_hash).map(|s| {
                let was = s.clone();
                s.status = SignInStatus::Used;
                was
            });
            Ok(used)
        }
    }

    const NOW: i64 = 1_779_268_500;

    fn ask(code: Option<&str>, nonce: Option<&str>) -> SessionAsk {
        SessionAsk {
            code: code.map(str::to_owned),
            nonce: nonce.map(str::to_owned),
        }
    }

    /// A sign-in begun for `nonce` and, if `code` is given, made ready
    /// with it until `expires_at`.
    async fn signed_in(store: &Memory, nonce: &str, code: Option<&str>, expires_at: i64) {
        let state = SignInState {
            nonce: format!("state-{nonce}"),
            crm: CrmKind::Zoho,
            page_nonce: nonce.to_owned(),
            expires_at: NOW + 600,
            code_verifier: "v".into(),
            browser_binding: "b".into(),
        };
        store
            .begin_sign_in(&state, &sha256_hex(nonce))
            .await
            .expect("begun");
        if let Some(code) = code {
            store
                .settle_sign_in(
                    &sha256_hex(nonce),
                    &SignIn {
                        status: SignInStatus::Ready(SignedIn {
                            code_hash: sha256_hex(code),
                            workspace_id: "ws".into(),
                            user_id: "u1".into(),
                            crm: CrmKind::Zoho,
                            crm_org_id: "org".into(),
                            crm_user_id: "z1".into(),
                            crm_user_email: "bruno@acme.example".into(),
                            crm_user_name: Some("Bruno Lima".into()),
                        }),
                        expires_at,
                    },
                )
                .await
                .expect("settled");
        }
    }

    fn is_expired(result: Result<Taken, SignInError>) -> bool {
        matches!(result, Err(SignInError::Expired))
    }

    #[tokio::test]
    async fn a_code_works_once_and_spends_its_nonce_too() {
        let store = Memory::default();
        let nonce = "n".repeat(22);
        signed_in(&store, &nonce, Some("code-1"), NOW + 120).await;
        let first = take(&store, &ask(Some("code-1"), None), NOW).await;
        assert!(
            matches!(&first, Ok(Taken::Ready(s)) if s.user_id == "u1"),
            "{first:?}"
        );
        assert!(is_expired(
            take(&store, &ask(Some("code-1"), None), NOW).await
        ));
        assert!(is_expired(
            take(&store, &ask(None, Some(&nonce)), NOW).await
        ));
        assert!(is_expired(
            take(&store, &ask(Some("forged"), None), NOW).await
        ));
    }

    #[tokio::test]
    async fn a_polled_nonce_waits_then_gets_the_session_once_and_spends_the_code() {
        let store = Memory::default();
        let nonce = "p".repeat(22);
        assert_eq!(
            take(&store, &ask(None, Some(&nonce)), NOW).await.ok(),
            Some(Taken::Pending),
            "not begun yet: the popup may still be on its way"
        );
        signed_in(&store, &nonce, None, 0).await;
        assert_eq!(
            take(&store, &ask(None, Some(&nonce)), NOW).await.ok(),
            Some(Taken::Pending)
        );
        signed_in(&store, &nonce, Some("code-2"), NOW + 120).await;
        assert!(matches!(
            take(&store, &ask(None, Some(&nonce)), NOW).await,
            Ok(Taken::Ready(_))
        ));
        assert!(is_expired(
            take(&store, &ask(None, Some(&nonce)), NOW).await
        ));
        assert!(is_expired(
            take(&store, &ask(Some("code-2"), None), NOW).await
        ));
    }

    #[tokio::test]
    async fn an_expired_code_or_nonce_gives_nothing() {
        let store = Memory::default();
        let nonce = "e".repeat(22);
        signed_in(&store, &nonce, Some("code-3"), NOW + 120).await;
        assert!(is_expired(
            take(&store, &ask(Some("code-3"), None), NOW + 120).await
        ));
        let other = "f".repeat(22);
        signed_in(&store, &other, Some("code-4"), NOW + 120).await;
        assert!(is_expired(
            take(&store, &ask(None, Some(&other)), NOW + 121).await
        ));
    }

    #[tokio::test]
    async fn no_connection_is_said_to_the_poll_and_a_request_names_one_thing() {
        let store = Memory::default();
        let nonce = "c".repeat(22);
        signed_in(&store, &nonce, None, 0).await;
        store
            .settle_sign_in(
                &sha256_hex(&nonce),
                &SignIn {
                    status: SignInStatus::NotConnected {
                        crm_user_email: "carla@acme.example".into(),
                    },
                    expires_at: NOW + 600,
                },
            )
            .await
            .expect("settled");
        assert_eq!(
            take(&store, &ask(None, Some(&nonce)), NOW).await.ok(),
            Some(Taken::NotConnected {
                crm_user_email: "carla@acme.example".into()
            })
        );
        for both_or_neither in [ask(Some("x"), Some(&nonce)), ask(None, None)] {
            assert!(matches!(
                take(&store, &both_or_neither, NOW).await,
                Err(SignInError::Invalid(_))
            ));
        }
    }

    #[test]
    fn a_stored_sign_in_keeps_its_status_beside_its_expiry() {
        let ready = SignIn {
            status: SignInStatus::Ready(SignedIn {
                code_hash: "h".into(),
                workspace_id: "ws".into(),
                user_id: "u".into(),
                crm: CrmKind::Zoho,
                crm_org_id: "o".into(),
                crm_user_id: "z".into(),
                crm_user_email: "e@x".into(),
                crm_user_name: None,
            }),
            expires_at: 42,
        };
        let json = serde_json::to_value(&ready).expect("serialises");
        assert_eq!(json["status"], "ready");
        assert_eq!(json["code_hash"], "h");
        assert_eq!(json["expires_at"], 42);
        assert_eq!(
            serde_json::from_value::<SignIn>(json).expect("reads back"),
            ready
        );
        // A used one keeps only that it was used, and until when.
        let used: SignIn =
            serde_json::from_value(serde_json::json!({"status": "used", "expires_at": 42}))
                .expect("reads");
        assert_eq!(used.status, SignInStatus::Used);
    }
}
