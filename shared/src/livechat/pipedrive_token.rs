//! Pipedrive's signed app-extension token: HS256 with the app's JWT secret
//! (the client secret when the extension has none of its own), `exp`
//! required, every other algorithm refused.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

/// Leeway for clock skew on `exp` (the token lives five minutes).
const LEEWAY_SECS: u64 = 30;

/// Who Pipedrive says is using the extension.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PipedriveClaims {
    #[serde(rename = "userId", deserialize_with = "id_text")]
    pub user_id: String,
    #[serde(rename = "companyId", deserialize_with = "id_text")]
    pub company_id: String,
}

/// Ids come as numbers; compared as text, as connections store them.
fn id_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u64),
        Text(String),
    }
    Ok(match Id::deserialize(d)? {
        Id::Number(n) => n.to_string(),
        Id::Text(t) => t,
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the Pipedrive token has expired; ask Pipedrive for a new one")]
    Expired,
    #[error("the Pipedrive token is not valid: {0}")]
    Invalid(String),
}

/// The claims of a token signed with `secret`.
pub fn verify(token: &str, secret: &str) -> Result<PipedriveClaims, TokenError> {
    super::jwt_hmac::install();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = LEEWAY_SECS;
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_exp = true;
    let key = DecodingKey::from_secret(secret.as_bytes())
        .map_err(|e| TokenError::Invalid(format!("the secret is not usable: {e}")))?;
    match decode::<PipedriveClaims>(token, &key, &validation) {
        Ok(data) => Ok(data.claims),
        Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
            Err(TokenError::Expired)
        }
        Err(e) => Err(TokenError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &str = "extension-jwt-secret";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    fn token(alg: Algorithm, secret: &str, claims: serde_json::Value) -> String {
        crate::livechat::jwt_hmac::install();
        encode(
            &Header::new(alg),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()).expect("an HMAC key"),
        )
        .expect("encodes")
    }

    #[test]
    fn a_good_token_names_the_company_and_user() {
        let good = token(
            Algorithm::HS256,
            SECRET,
            json!({"userId": 11001, "companyId": 7100001, "exp": now() + 300}),
        );
        assert_eq!(
            verify(&good, SECRET),
            Ok(PipedriveClaims {
                user_id: "11001".into(),
                company_id: "7100001".into()
            })
        );
    }

    #[test]
    fn expired_forged_unsigned_and_other_algorithm_tokens_are_refused() {
        let claims = json!({"userId": 1, "companyId": 2, "exp": now() + 300});
        let expired = token(
            Algorithm::HS256,
            SECRET,
            json!({"userId": 1, "companyId": 2, "exp": now() - 120}),
        );
        assert_eq!(verify(&expired, SECRET), Err(TokenError::Expired));
        let forged = token(Algorithm::HS256, "another-secret", claims.clone());
        assert!(matches!(
            verify(&forged, SECRET),
            Err(TokenError::Invalid(_))
        ));
        let hs512 = token(Algorithm::HS512, SECRET, claims.clone());
        assert!(matches!(
            verify(&hs512, SECRET),
            Err(TokenError::Invalid(_))
        ));
        let no_exp = token(
            Algorithm::HS256,
            SECRET,
            json!({"userId": 1, "companyId": 2}),
        );
        assert!(matches!(
            verify(&no_exp, SECRET),
            Err(TokenError::Invalid(_))
        ));
        // alg "none": the header and claims without a signature.
        let good = token(Algorithm::HS256, SECRET, claims);
        let mut parts = good.split('.');
        let (_, body) = (parts.next(), parts.next().unwrap_or_default());
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{body}.");
        assert!(matches!(verify(&none, SECRET), Err(TokenError::Invalid(_))));
        assert!(matches!(
            verify("not a token", SECRET),
            Err(TokenError::Invalid(_))
        ));
    }
}
