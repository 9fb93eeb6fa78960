//! Cryptography the product relies on, built only from well-kept crates:
//! webhook signatures (HMAC-SHA256), token and message-content encryption at
//! rest (AES-256-GCM), signed OAuth `state`, and hashing of API tokens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("signature header missing or not `sha256=<64 hex chars>`")]
    MalformedSignature,
    #[error("signature does not match the body")]
    BadSignature,
    #[error("encrypted value is corrupt or was encrypted for another item")]
    Decrypt,
}

/// Checks Meta's `X-Hub-Signature-256` header against the raw body bytes, in
/// constant time. The body must be the bytes as received: Meta signs its own
/// escaped-Unicode serialisation, so re-serialised JSON would not verify.
pub fn verify_meta_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), CryptoError> {
    let hex_sig = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .ok_or(CryptoError::MalformedSignature)?;
    let expected = hex::decode(hex_sig).map_err(|_| CryptoError::MalformedSignature)?;
    if expected.len() != 32 {
        return Err(CryptoError::MalformedSignature);
    }
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(app_secret).map_err(|_| CryptoError::BadSignature)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| CryptoError::BadSignature)
}

/// `sha256=<hex>` for a body; what Meta sends, used by tests and the demo.
pub fn meta_signature(app_secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(app_secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Keys derived from the one master secret kept in Secrets Manager, each for
/// one purpose, so that no key is ever used for two things.
#[derive(Clone)]
pub struct KeyRing {
    token_key: [u8; 32],
    state_key: [u8; 32],
    content_key: [u8; 32],
}

impl KeyRing {
    pub fn from_master(master: &[u8]) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"whatsapp-crm-sync/v1"), master);
        let mut token_key = [0u8; 32];
        let mut state_key = [0u8; 32];
        let mut content_key = [0u8; 32];
        // 32-byte outputs are far below HKDF-SHA256's 8160-byte limit.
        hk.expand(b"token-encryption", &mut token_key)
            .expect("32 bytes is a valid HKDF length");
        hk.expand(b"oauth-state-signing", &mut state_key)
            .expect("32 bytes is a valid HKDF length");
        hk.expand(b"message-content-encryption", &mut content_key)
            .expect("32 bytes is a valid HKDF length");
        Self {
            token_key,
            state_key,
            content_key,
        }
    }

    pub fn token_cipher(&self) -> TokenCipher {
        TokenCipher {
            cipher: Aes256Gcm::new(&self.token_key.into()),
        }
    }

    /// The cipher for message content at rest (what customers and the
    /// business wrote, contact names): the same sealing as tokens under a
    /// key of its own, so a token's ciphertext never opens as content.
    pub fn content_cipher(&self) -> TokenCipher {
        TokenCipher {
            cipher: Aes256Gcm::new(&self.content_key.into()),
        }
    }

    /// HMAC-SHA256 of `message` under the state-signing key, base64url.
    pub fn sign_state(&self, message: &str) -> String {
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.state_key)
            .expect("HMAC takes any key length");
        mac.update(message.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    pub fn verify_state(&self, message: &str, signature: &str) -> bool {
        let Ok(sig) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let mut mac = <HmacSha256 as Mac>::new_from_slice(&self.state_key)
            .expect("HMAC takes any key length");
        mac.update(message.as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing(<redacted>)")
    }
}

/// AES-256-GCM for values at rest: OAuth tokens ([`KeyRing::token_cipher`])
/// and message content ([`KeyRing::content_cipher`]). The associated data
/// binds a ciphertext to the item (and field) it belongs to, so a value
/// copied into another item, or another workspace's, does not decrypt.
#[derive(Clone)]
pub struct TokenCipher {
    cipher: Aes256Gcm,
}

impl TokenCipher {
    /// Returns base64(nonce || ciphertext+tag).
    pub fn encrypt(&self, plaintext: &str, bound_to: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: bound_to.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of an in-memory buffer does not fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        STANDARD.encode(out)
    }

    pub fn decrypt(&self, sealed: &str, bound_to: &str) -> Result<String, CryptoError> {
        let raw = STANDARD.decode(sealed).map_err(|_| CryptoError::Decrypt)?;
        if raw.len() < 12 + 16 {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, body) = raw.split_at(12);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: bound_to.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

/// Where the store gets the content cipher: the key is derived from the app
/// master key, which Secrets Manager holds and a function reads on first
/// use (`crate::secrets::Secrets`), so the store asks for it only when it
/// first reads or writes message content.
#[async_trait]
pub trait ContentKeys: Send + Sync {
    async fn content_cipher(&self) -> Result<TokenCipher, crate::error::SecretsError>;
}

/// A key ring at hand (tests, tools) serves as it is.
#[async_trait]
impl ContentKeys for KeyRing {
    async fn content_cipher(&self) -> Result<TokenCipher, crate::error::SecretsError> {
        Ok(KeyRing::content_cipher(self))
    }
}

/// A fresh random token: 32 random bytes, base64url.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// PKCE (RFC 7636) S256 challenge of a verifier.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// API tokens are random 256-bit values, so a plain SHA-256 is enough to store
/// them without keeping anything that could be replayed.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// SHA-256 hex of any string; used where SQS wants a short, fixed-size id.
pub fn sha256_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Constant-time string comparison for shared secrets (operator key, verify token).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/whatsapp/");
    const APP_SECRET: &[u8] = b"fake_app_secret_for_tests_only";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).expect("fixture exists")
    }

    #[test]
    fn published_signature_vectors_verify_over_raw_bytes() {
        for (file, sig) in [
            (
                "cloud-text-inbound.json",
                "sha256=436eb83ccbeb9a2b7dfa402667f1b4e50e28d474bd93b8d1a6e77a5f1c305ab1",
            ),
            (
                "cloud-text-unicode-escaped.json",
                "sha256=624d72fb5ddc38de3af6704ae4fe732003a520b0896e1d141f4cf2129b0f41e9",
            ),
            (
                "malformed-truncated.json",
                "sha256=93efc03946a1fbe68b1b6f4a70e5885b88101c4d7f1a049cbc2a369fc0a5ad5b",
            ),
        ] {
            let body = fixture(file);
            assert_eq!(verify_meta_signature(APP_SECRET, &body, Some(sig)), Ok(()));
            assert_eq!(meta_signature(APP_SECRET, &body), sig);
        }
    }

    #[test]
    fn reserialised_unicode_body_does_not_verify() {
        let body = fixture("cloud-text-unicode-escaped.json");
        let value: serde_json::Value = serde_json::from_slice(&body).expect("valid json");
        let reserialised = serde_json::to_vec(&value).expect("serialises");
        let original_sig =
            "sha256=624d72fb5ddc38de3af6704ae4fe732003a520b0896e1d141f4cf2129b0f41e9";
        assert_eq!(
            verify_meta_signature(APP_SECRET, &reserialised, Some(original_sig)),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn missing_or_malformed_signature_headers_are_refused() {
        let body = b"{}";
        for header in [
            None,
            Some(""),
            Some("sha1=abc"),
            Some("sha256=zz"),
            Some("sha256=abcd"),
        ] {
            assert_eq!(
                verify_meta_signature(APP_SECRET, body, header),
                Err(CryptoError::MalformedSignature),
                "{header:?}"
            );
        }
        let wrong = meta_signature(b"another secret", body);
        assert_eq!(
            verify_meta_signature(APP_SECRET, body, Some(&wrong)),
            Err(CryptoError::BadSignature)
        );
    }

    #[test]
    fn tokens_round_trip_only_for_the_item_they_are_bound_to() {
        let cipher = KeyRing::from_master(b"master").token_cipher();
        let sealed = cipher.encrypt("1000.secret.token", "WS#a|CONN#zoho#ORG");
        assert!(!sealed.contains("secret"));
        assert_eq!(
            cipher.decrypt(&sealed, "WS#a|CONN#zoho#ORG").as_deref(),
            Ok("1000.secret.token")
        );
        assert_eq!(
            cipher.decrypt(&sealed, "WS#b|CONN#zoho#ORG"),
            Err(CryptoError::Decrypt)
        );
        let other_key = KeyRing::from_master(b"other").token_cipher();
        assert_eq!(
            other_key.decrypt(&sealed, "WS#a|CONN#zoho#ORG"),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn content_opens_only_with_its_own_key_and_binding() {
        let keys = KeyRing::from_master(b"master");
        let content = keys.content_cipher();
        let binding = "ws-a|MSG#wamid.1|text";
        let sealed = content.encrypt("The boiler is leaking", binding);
        assert!(!sealed.contains("boiler"));
        assert_eq!(
            content.decrypt(&sealed, binding).as_deref(),
            Ok("The boiler is leaking")
        );
        // Another item, another field of the same item, another workspace.
        for other in [
            "ws-a|MSG#wamid.2|text",
            "ws-a|MSG#wamid.1|contact_name",
            "ws-b|MSG#wamid.1|text",
        ] {
            assert_eq!(content.decrypt(&sealed, other), Err(CryptoError::Decrypt));
        }
        // The token key is another key: neither opens the other's values.
        assert_eq!(
            keys.token_cipher().decrypt(&sealed, binding),
            Err(CryptoError::Decrypt)
        );
        let token = keys.token_cipher().encrypt("1000.token", binding);
        assert_eq!(content.decrypt(&token, binding), Err(CryptoError::Decrypt));
        // Any byte changed is refused, as is a cut or a non-base64 value.
        let mut raw = STANDARD.decode(&sealed).expect("base64");
        for at in [0, 12, raw.len() - 1] {
            raw[at] ^= 1;
            assert_eq!(
                content.decrypt(&STANDARD.encode(&raw), binding),
                Err(CryptoError::Decrypt),
                "byte {at} flipped"
            );
            raw[at] ^= 1;
        }
        assert_eq!(
            content.decrypt(&STANDARD.encode(&raw[..20]), binding),
            Err(CryptoError::Decrypt)
        );
        assert_eq!(
            content.decrypt("not base64 !", binding),
            Err(CryptoError::Decrypt)
        );
        // Each sealing draws a fresh nonce: equal texts do not show as equal.
        assert_ne!(
            content.encrypt("same", binding),
            content.encrypt("same", binding)
        );
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn state_signatures_detect_tampering() {
        let keys = KeyRing::from_master(b"master");
        let sig = keys.sign_state("nonce.ws.user");
        assert!(keys.verify_state("nonce.ws.user", &sig));
        assert!(!keys.verify_state("nonce.ws.other", &sig));
        assert!(!KeyRing::from_master(b"x").verify_state("nonce.ws.user", &sig));
        assert!(!keys.verify_state("nonce.ws.user", "not base64 !"));
    }
}
