//! Random faults on CRM API calls, in Zoho's documented shapes (reference
//! §1.6 and the error table): the plan and its draws are
//! [`sandbox_kit::faults`]; this turns a drawn kind into what Zoho would do.

use sandbox_kit::faults::{FaultConfig, FaultKind};
use serde_json::json;

use crate::store::{ApiResponse, Store, default_message, error};

/// What an injected fault does to one CRM call: answered, it is Zoho's
/// error and the `Retry-After` seconds, if any.
pub(crate) type Injected = sandbox_kit::faults::Injected<(ApiResponse, Option<u64>)>;

/// What `kind` does to a call. An expired token is expired for real, so the
/// client's refresh and retry are the real ones.
pub(crate) fn injected(kind: FaultKind, config: &FaultConfig) -> Injected {
    let answer = |status: u16, code: &str| error(status, code, default_message(code), json!({}));
    Injected::of(kind, config, |kind| match kind {
        FaultKind::TooManyRequests => (
            answer(429, "TOO_MANY_REQUESTS"),
            Some(config.retry_after_secs),
        ),
        FaultKind::TooManyRequestsBare => (answer(429, "TOO_MANY_REQUESTS"), None),
        FaultKind::ServerError => (answer(500, "INTERNAL_ERROR"), None),
        FaultKind::Unavailable => (answer(503, "INTERNAL_ERROR"), None),
        // Slow and timed-out calls never get here (`Injected::of`).
        FaultKind::ExpiredToken | FaultKind::Timeout | FaultKind::Slow => {
            (answer(401, "INVALID_TOKEN"), None)
        }
    })
}

/// The early answer of an injected fault, if it has one; an expired-token
/// fault expires the caller's token in `store` first.
pub(crate) fn early_answer(
    fault: Option<&(FaultKind, Injected)>,
    store: &mut Store,
    authorization: Option<&str>,
) -> Option<(ApiResponse, Option<u64>)> {
    match fault? {
        (kind, Injected::Answer((answer, retry_after))) => {
            if *kind == FaultKind::ExpiredToken {
                store.expire_access_token(authorization);
            }
            Some((answer.clone(), *retry_after))
        }
        _ => None,
    }
}
