//! Adapters: the ports on real services.

pub mod crms;
pub mod dynamo;
pub mod graph;
pub mod pipedrive;
mod sealed;
pub mod sqs;
pub mod tls;
pub mod zoho;

use crate::crm::CrmError;

/// A CRM call that did not get an answer (the URL left out: it may hold a token).
fn crm_transport(e: reqwest::Error) -> CrmError {
    CrmError::Transport(e.without_url().to_string())
}

/// A CRM call's timeout within the invocation's time left (a transient
/// failure when none is left).
fn crm_call_timeout() -> Result<std::time::Duration, CrmError> {
    crate::budget::call_timeout(crate::deps::HTTP_CALL_TIMEOUT)
        .map_err(|e| CrmError::Transport(e.to_string()))
}

/// What a token revocation's status means (RFC 7009): a 400 is a token the
/// server does not know, which is as revoked as it gets.
fn revocation_result(status: reqwest::StatusCode) -> Result<(), CrmError> {
    match status {
        s if s.is_success() => Ok(()),
        reqwest::StatusCode::BAD_REQUEST => Ok(()),
        reqwest::StatusCode::TOO_MANY_REQUESTS => Err(CrmError::RateLimited),
        s => Err(CrmError::Unavailable(s.as_u16())),
    }
}
