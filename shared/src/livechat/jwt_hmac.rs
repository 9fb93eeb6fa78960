//! The one cryptography `jsonwebtoken` needs here: HMAC (HS256, and HS384
//! and HS512 so tests can forge tokens Pipedrive never sends), on the same
//! `hmac`/`sha2` crates as the webhook signature. The crate's own RustCrypto
//! provider would bring RSA, ECDSA and EdDSA into every function that links
//! it — code no token we accept can reach, at the cost of binary size and
//! build time.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Sha256, Sha384, Sha512};
use signature::{Signer, Verifier};

/// Makes the HMAC provider the process's `jsonwebtoken` cryptography; does
/// nothing when a provider is already in place (it is then this one, or a
/// test's build that enabled one of the crate's own).
pub fn install() {
    static PROVIDER: CryptoProvider = CryptoProvider {
        signer_factory,
        verifier_factory,
        key_utils: KeyUtils::new_unimplemented(),
    };
    let _ = PROVIDER.install_default();
}

enum HmacKey {
    Sha256(Hmac<Sha256>),
    Sha384(Hmac<Sha384>),
    Sha512(Hmac<Sha512>),
}

struct HmacJwt {
    algorithm: Algorithm,
    key: HmacKey,
}

impl HmacJwt {
    fn new(algorithm: Algorithm, secret: &[u8]) -> Result<Self, Error> {
        let invalid = |_| Error::from(ErrorKind::InvalidKeyFormat);
        let key = match algorithm {
            Algorithm::HS256 => HmacKey::Sha256(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS384 => HmacKey::Sha384(Hmac::new_from_slice(secret).map_err(invalid)?),
            Algorithm::HS512 => HmacKey::Sha512(Hmac::new_from_slice(secret).map_err(invalid)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        };
        Ok(Self { algorithm, key })
    }
}

fn signer_factory(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    Ok(Box::new(HmacJwt::new(*algorithm, key.as_bytes())?))
}

fn verifier_factory(
    algorithm: &Algorithm,
    key: &DecodingKey,
) -> Result<Box<dyn JwtVerifier>, Error> {
    Ok(Box::new(HmacJwt::new(*algorithm, key.try_get_as_bytes()?)?))
}

impl Signer<Vec<u8>> for HmacJwt {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        fn sign<M: Mac + Clone>(mac: &M, message: &[u8]) -> Vec<u8> {
            let mut mac = mac.clone();
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        Ok(match &self.key {
            HmacKey::Sha256(mac) => sign(mac, message),
            HmacKey::Sha384(mac) => sign(mac, message),
            HmacKey::Sha512(mac) => sign(mac, message),
        })
    }
}

impl Verifier<Vec<u8>> for HmacJwt {
    fn verify(&self, message: &[u8], tag: &Vec<u8>) -> Result<(), signature::Error> {
        // `verify_slice` compares in constant time.
        fn verify<M: Mac + Clone>(mac: &M, message: &[u8], tag: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(message);
            mac.verify_slice(tag).is_ok()
        }
        let valid = match &self.key {
            HmacKey::Sha256(mac) => verify(mac, message, tag),
            HmacKey::Sha384(mac) => verify(mac, message, tag),
            HmacKey::Sha512(mac) => verify(mac, message, tag),
        };
        valid.then_some(()).ok_or_else(signature::Error::new)
    }
}

impl JwtSigner for HmacJwt {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

impl JwtVerifier for HmacJwt {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231 test case 2 ("Jefe"), through the provider's signer.
    #[test]
    fn signs_as_rfc_4231_says() {
        install();
        let key = EncodingKey::from_secret(b"Jefe").expect("an HMAC key");
        let message = b"what do ya want for nothing?";
        let tag = jsonwebtoken::crypto::sign(message, &key, Algorithm::HS256).expect("signs");
        // base64url of 5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843
        assert_eq!(tag, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM");
        let decoding = DecodingKey::from_secret(b"Jefe").expect("an HMAC key");
        assert_eq!(
            jsonwebtoken::crypto::verify(&tag, message, &decoding, Algorithm::HS256),
            Ok(true)
        );
        assert_eq!(
            jsonwebtoken::crypto::verify(&tag, b"another message", &decoding, Algorithm::HS256),
            Ok(false)
        );
        assert!(jsonwebtoken::crypto::sign(message, &key, Algorithm::RS256).is_err());
    }
}
