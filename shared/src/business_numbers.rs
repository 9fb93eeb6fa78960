//! The business-number port: what the WhatsApp Cloud API says a phone-number
//! id is, read with an access token. Graph lets a token read only the
//! numbers of its own business, so reading the number, and finding the
//! number registered, proves that whoever holds the token controls it.

use async_trait::async_trait;

/// A business phone number as the Cloud API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessNumber {
    /// As Graph writes it (`+44 7700 900100`).
    pub display_phone_number: String,
    pub verified_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessNumberError {
    /// Invalid, expired, or without permission to read numbers.
    #[error(
        "the WhatsApp Cloud API refused the access token (invalid, expired or without permission)"
    )]
    TokenRefused,
    /// No such number, or one of another business: Graph does not tell which.
    #[error(
        "the WhatsApp Cloud API has no phone number with this id that the access token may read"
    )]
    NotReadable,
    /// Rate-limited, down or unreachable: asking again later may work.
    #[error("the WhatsApp Cloud API could not answer ({0}); try again")]
    Unavailable(String),
    /// Any other refusal.
    #[error("the WhatsApp Cloud API refused the request: {0}")]
    Rejected(String),
    #[error("the WhatsApp Cloud API answered something we cannot use: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait BusinessNumbers: Send + Sync {
    /// The number `phone_number_id` names, read with `access_token`.
    async fn read(
        &self,
        access_token: &str,
        phone_number_id: &str,
    ) -> Result<BusinessNumber, BusinessNumberError>;
}
