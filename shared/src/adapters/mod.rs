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

/// Longest `Retry-After` waited out within a call; a longer one is left to
/// the queue's back-off.
const LONGEST_QUICK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The wait before trying a failed CRM call once more within the
/// invocation, if it is worth it: an answer that says the CRM did nothing
/// (429, 503: after its `Retry-After`, else a second), or any 5xx of a
/// method that may be repeated (GET, PUT, DELETE: half a second). A 5xx of
/// a create (POST, PATCH) may have done the work, so it is left to the
/// queue, whose retry looks for what a lost answer made. `None` too when
/// the wait would not leave the retried call its time. Without this, one
/// call in five failing fails most attempts of a new chat (four or five
/// calls), and five failed attempts dead-letter it.
fn quick_retry_wait(
    method: &reqwest::Method,
    status: reqwest::StatusCode,
    retry_after: Option<&reqwest::header::HeaderValue>,
) -> Option<std::time::Duration> {
    use reqwest::{Method, StatusCode};
    let second = std::time::Duration::from_secs(1);
    let wait = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => retry_after
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(second, std::time::Duration::from_secs),
        s if s.is_server_error() && [Method::GET, Method::PUT, Method::DELETE].contains(method) => {
            std::time::Duration::from_millis(500)
        }
        _ => return None,
    };
    let time_left = crate::budget::call_timeout(crate::deps::HTTP_CALL_TIMEOUT)
        .is_ok_and(|left| left >= wait + second);
    (wait <= LONGEST_QUICK_WAIT && time_left).then_some(wait)
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use reqwest::{Method, StatusCode};
    use std::time::Duration;

    #[test]
    fn a_refusal_that_did_nothing_is_tried_again_after_its_retry_after() {
        let two = HeaderValue::from_static("2");
        assert_eq!(
            quick_retry_wait(&Method::POST, StatusCode::TOO_MANY_REQUESTS, Some(&two)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            quick_retry_wait(&Method::POST, StatusCode::SERVICE_UNAVAILABLE, None),
            Some(Duration::from_secs(1))
        );
        let long = HeaderValue::from_static("30");
        assert_eq!(
            quick_retry_wait(&Method::GET, StatusCode::TOO_MANY_REQUESTS, Some(&long)),
            None,
            "a long wait is the queue's back-off"
        );
    }

    #[test]
    fn a_server_error_is_tried_again_only_for_a_call_that_may_be_repeated() {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            assert_eq!(
                quick_retry_wait(&method, StatusCode::INTERNAL_SERVER_ERROR, None),
                Some(Duration::from_millis(500)),
                "{method}"
            );
        }
        for method in [Method::POST, Method::PATCH] {
            assert_eq!(
                quick_retry_wait(&method, StatusCode::INTERNAL_SERVER_ERROR, None),
                None,
                "{method}: it may have created something"
            );
        }
        assert_eq!(
            quick_retry_wait(&Method::GET, StatusCode::BAD_REQUEST, None),
            None
        );
    }

    #[tokio::test]
    async fn no_retry_when_the_invocation_has_no_time_for_it() {
        let deadline = std::time::SystemTime::now() + Duration::from_secs(4);
        let wait = crate::budget::within(Some(deadline), async {
            quick_retry_wait(&Method::GET, StatusCode::SERVICE_UNAVAILABLE, None)
        })
        .await;
        assert_eq!(
            wait, None,
            "4 s left: 3 s reserved, not enough to wait 1 s and call"
        );
    }
}
