//! Random faults on API calls, in Pipedrive's documented shapes (reference
//! §10: the error envelope, 401 `unauthorized access`, 429 with the
//! `x-ratelimit-*` headers of a full burst window): the plan and its draws
//! are [`sandbox_kit::faults`]; this turns a drawn kind into what Pipedrive
//! would do.

use axum::response::Response;
use sandbox_kit::faults::{FaultConfig, FaultKind};
use serde_json::json;

use super::api::{unauthorized, with_rate_headers};
use super::to_response;
use crate::store::{RateHeaders, Reply, Store, error, error_body, status_message};

/// What an injected fault does to one API call.
pub(super) type Injected = sandbox_kit::faults::Injected<Response>;

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
    Injected::of(kind, config, |kind| match kind {
        FaultKind::TooManyRequests => too_many(store, Some(config.retry_after_secs)),
        FaultKind::TooManyRequestsBare => too_many(store, None),
        FaultKind::ServerError => to_response(error(500, status_message(500))),
        FaultKind::Unavailable => to_response(error(503, status_message(503))),
        // Slow and timed-out calls never get here (`Injected::of`).
        FaultKind::ExpiredToken | FaultKind::Timeout | FaultKind::Slow => {
            store.expire_access_token(token);
            unauthorized()
        }
    })
}
