//! A live-chat session: a short-lived token our API gives the page once it
//! knows who the user is, signed with the app's state key (no storage).
//! The page keeps it in memory and sends it as `X-Live-Session`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::crypto::KeyRing;
use crate::model::CrmKind;

/// How long a session lasts: the page asks for a new one after.
pub const SESSION_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSession {
    pub workspace_id: String,
    pub user_id: String,
    pub crm: CrmKind,
    pub expires_at: i64,
}

impl LiveSession {
    /// `<payload>.<signature>`, both base64url.
    pub fn seal(&self, keys: &KeyRing) -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a session serialises"));
        let signature = keys.sign_state(&format!("live-session.{payload}"));
        format!("{payload}.{signature}")
    }

    /// The session a sealed token holds, if it is ours and still valid.
    pub fn open(sealed: &str, keys: &KeyRing, now: i64) -> Option<Self> {
        let (payload, signature) = sealed.trim().split_once('.')?;
        if !keys.verify_state(&format!("live-session.{payload}"), signature) {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let session: Self = serde_json::from_slice(&bytes).ok()?;
        (session.expires_at > now).then_some(session)
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
