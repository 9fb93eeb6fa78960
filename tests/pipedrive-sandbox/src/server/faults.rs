//! Random faults on API calls, in Pipedrive's documented shapes (reference
//! §10: the error envelope, 401 `unauthorized access`, 429 with the
//! `x-ratelimit-*` headers of a full burst window): the plan and its draws
//! are [`sandbox_kit::faults`]; this turns a drawn kind into what Pipedrive
//! would do.

use std::time::Duration;

use axum::response::Response;
use sandbox_kit::faults::{FaultConfig, FaultKind};
use serde_json::json;

use super::api::{unauthorized, with_rate_headers};
use super::to_response;
use crate::store::{RateHeaders, Reply, Store, error, error_body, status_message};

/// What an injected fault does to one API call.
pub(super) enum Injected {
    /// Answered with this instead of the API's answer.
    Answer(Response),
    /// Served as usual after this wait.
    Delay(Duration),
    /// Served as usual, the answer then held this long (past the client's
    /// time-out).
    Hold(Duration),
}

/// What `kind` does to a call with the access token `token`. A 429 is a
/// burst-window refusal (window full, resetting in `retry_after_secs`); an
/// expired token is expired for real, so the refresh and retry are real.
pub(super) fn injected(
    kind: FaultKind,
    config: &FaultConfig,
    store: &mut Store,
    token: &str,
) -> Injected {
    let too_many = |store: &Store, retry_after: Option<u64>| {
        let mut body = error_body(status_message(429));
        body["errorCode"] = json!(429);
        let window = RateHeaders {
            limit: store.burst_limit(false, store.home_company()),
            remaining: 0,
            reset: config.retry_after_secs,
        };
        with_rate_headers(to_response(Reply::json(429, body)), window, retry_after)
    };
    match kind {
        FaultKind::TooManyRequests => {
            Injected::Answer(too_many(store, Some(config.retry_after_secs)))
        }
        FaultKind::TooManyRequestsBare => Injected::Answer(too_many(store, None)),
        FaultKind::ServerError | FaultKind::Unavailable => {
            let status = if kind == FaultKind::ServerError {
                500
            } else {
                503
            };
            Injected::Answer(to_response(error(status, status_message(status))))
        }
        FaultKind::ExpiredToken => {
            store.expire_access_token(token);
            Injected::Answer(unauthorized())
        }
        FaultKind::Timeout => Injected::Hold(config.timeout_hold()),
        FaultKind::Slow => Injected::Delay(config.slow()),
    }
}
