//! Signing in to live chat from Zoho CRM's widget.
//!
//! Zoho gives the widget nothing signed (its `PageLoad` context and
//! `getCurrentUser()` are the browser's word), so the user proves who they
//! are to Zoho itself, in a popup on our origin:
//!
//! 1. The widget makes a random nonce, keeps it in memory, and opens
//!    `GET /oauth/zoho/live?nonce=…` ([`begin`]): a sign-in state (its own
//!    purpose, signed, single-use, bound to the popup's browser by a
//!    cookie, PKCE) and the nonce's sign-in, pending; the popup goes to
//!    Zoho asking only for the scopes that read the user and their
//!    organization.
//! 2. Zoho's redirect reaches the usual callback, which sees the state's
//!    purpose and calls [`complete`]: the code is exchanged, the user and
//!    organization read, the fresh grant revoked at once, and the user's
//!    *personal* connection found by (organization, user). With one, a
//!    one-time code (256 random bits, stored hashed, two minutes) is
//!    minted for that nonce's sign-in, and the popup's page
//!    ([`popup::page`]) posts `{type: "zoho-live-code", code, nonce}` to
//!    its opener — only if the opener is on our own origin — and closes;
//!    without an opener on our origin (a strict opener policy on the way
//!    cut it), it shows the code for the user to paste into the widget.
//!    Without a connection, no code: the page says how to connect, and
//!    tells an opener on our origin so.
//! 3. The widget exchanges the code *with its nonce* at
//!    `POST /api/live/zoho/session` ([`redeem`]), once, for a live-chat
//!    session.
//!
//! Nothing is handed out for a nonce alone: a page that sends a victim to
//! `/oauth/zoho/live?nonce=<its own>` learns no code, because the code goes
//! only to a window on our origin or before the user's eyes. (An earlier
//! design let the widget poll with its nonce; that handed the session to
//! whoever knew the nonce.)

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub mod popup;

pub use popup::Popup;

use super::session::{self, SessionAnswer, current_personal, personal_connection_of};
use crate::crm::{CrmError, CrmOAuth};
use crate::crypto::{pkce_challenge, random_token, secrets_equal, sha256_hex};
use crate::deps::Deps;
use crate::error::{SecretsError, StoreError};
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
    /// The widget's nonce: the code is redeemable only with it.
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

/// Where a sign-in stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignInStatus {
    /// Begun; no code was minted (Zoho has not sent the user back, or the
    /// user had no personal connection).
    Pending,
    /// A code was minted: redeemable once, with the widget's nonce.
    Ready(SignedIn),
    /// Redeemed.
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
    /// Records what the callback found under the widget's nonce.
    async fn settle_sign_in(&self, nonce_hash: &str, sign_in: &SignIn) -> Result<(), StoreError>;
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
    /// An unknown, used or expired code, or one for another nonce.
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
    let Some(connection) =
        personal_connection_of(deps, crm, &identity.org_id, &identity.user_id).await?
    else {
        // The sign-in stays pending until it expires: nothing to redeem.
        tracing::info!(crm = crm.as_str(), crm_user_id = %identity.user_id, "live-chat sign-in without a personal connection");
        return Ok(Popup::NotConnected {
            nonce: state.page_nonce,
            crm_user_email: identity.email,
        });
    };
    let code = random_token();
    deps.store
        .settle_sign_in(
            &sha256_hex(&state.page_nonce),
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
                expires_at: deps.clock.now() + deps.config.live_signin_code_ttl_secs,
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

/// What the widget asks `POST /api/live/zoho/session` with: the code the
/// popup handed over and the nonce the widget began with.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionAsk {
    pub code: String,
    pub nonce: String,
}

/// What a redemption gives the widget.
#[derive(Debug)]
pub enum Redeemed {
    /// Signed in as `crm_user_email`, whose personal connection went away
    /// since the callback.
    NotConnected {
        crm_user_email: String,
    },
    Session(Box<SessionAnswer>),
}

/// Takes the sign-in `ask` names at `now`: once, whoever asks first, and
/// only with the nonce the code was minted for; [`SignInError::Expired`]
/// for anything unknown, used, out of time or for another nonce.
pub async fn take(
    store: &dyn SignInStore,
    ask: &SessionAsk,
    now: i64,
) -> Result<SignedIn, SignInError> {
    if !valid_page_nonce(&ask.nonce) || ask.code.is_empty() {
        return Err(SignInError::Invalid(
            "expected {\"code\": \"…\", \"nonce\": \"…\"}: the code the sign-in window showed and the nonce the page began with".into(),
        ));
    }
    match store
        .take_ready_sign_in(&sha256_hex(&ask.nonce), &sha256_hex(&ask.code))
        .await?
    {
        Some(SignIn {
            status: SignInStatus::Ready(signed_in),
            expires_at,
        }) if expires_at > now => Ok(signed_in),
        _ => Err(SignInError::Expired),
    }
}

/// Exchanges a code (with its nonce) for a session, once.
pub async fn redeem(deps: &Deps, ask: &SessionAsk) -> Result<Redeemed, SignInError> {
    let signed_in = take(deps.store.as_ref(), ask, deps.clock.now()).await?;
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

    /// The sign-in items in memory, with the store's semantics: a state
    /// is taken once, a ready sign-in removed only by its own code.
    #[derive(Default)]
    struct Memory {
        states: std::sync::Mutex<std::collections::HashMap<String, SignInState>>,
        sign_ins: std::sync::Mutex<std::collections::HashMap<String, SignIn>>,
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
            self.sign_ins
                .lock()
                .expect("lock")
                .insert(nonce_hash.to_owned(), sign_in.clone());
            Ok(())
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
            let used = sign_ins.get_mut(nonce_hash).map(|s| {
                let was = s.clone();
                s.status = SignInStatus::Used;
                was
            });
            Ok(used)
        }
    }

    const NOW: i64 = 1_779_268_500;

    fn ask(code: &str, nonce: &str) -> SessionAsk {
        SessionAsk {
            code: code.to_owned(),
            nonce: nonce.to_owned(),
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

    fn is_expired<T: std::fmt::Debug>(result: Result<T, SignInError>) -> bool {
        matches!(result, Err(SignInError::Expired))
    }

    #[tokio::test]
    async fn a_code_works_once_and_only_with_its_own_nonce() {
        let store = Memory::default();
        let nonce = "n".repeat(22);
        let other_nonce = "o".repeat(22);
        signed_in(&store, &nonce, Some("code-1"), NOW + 120).await;
        signed_in(&store, &other_nonce, None, 0).await;
        assert!(
            is_expired(take(&store, &ask("code-1", &other_nonce), NOW).await),
            "a code with another sign-in's nonce is nothing"
        );
        let first = take(&store, &ask("code-1", &nonce), NOW).await;
        assert!(matches!(&first, Ok(s) if s.user_id == "u1"), "{first:?}");
        assert!(is_expired(take(&store, &ask("code-1", &nonce), NOW).await));
        assert!(is_expired(take(&store, &ask("forged", &nonce), NOW).await));
    }

    #[tokio::test]
    async fn a_nonce_alone_or_a_pending_sign_in_gives_nothing() {
        let store = Memory::default();
        let nonce = "p".repeat(22);
        signed_in(&store, &nonce, None, 0).await;
        assert!(is_expired(take(&store, &ask("any", &nonce), NOW).await));
        for malformed in [ask("", &nonce), ask("code", "short"), ask("code", "")] {
            assert!(matches!(
                take(&store, &malformed, NOW).await,
                Err(SignInError::Invalid(_))
            ));
        }
    }

    #[tokio::test]
    async fn an_expired_code_gives_nothing() {
        let store = Memory::default();
        let nonce = "e".repeat(22);
        signed_in(&store, &nonce, Some("code-3"), NOW + 120).await;
        assert!(is_expired(
            take(&store, &ask("code-3", &nonce), NOW + 120).await
        ));
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
