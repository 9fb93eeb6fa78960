//! One API call: the bearer token (refreshed once after a 401), the call's
//! timeout, its cost counted and logged, the rate-limit headers read on a
//! 429, and every other status turned into a [`CrmError`]. Also the paging
//! of v1 (`start`/`limit`) and v2 (`cursor`) lists.

use std::sync::atomic::Ordering;
use std::time::Duration;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use super::PipedriveApi;
use super::costs::token_cost;
use crate::adapters::{crm_call_timeout, crm_transport};
use crate::crm::CrmError;

/// The longest burst-window reset waited out before the one retry: more
/// than this and the call is left to the queue's back-off.
const LONGEST_BURST_WAIT: Duration = Duration::from_secs(2);

/// Time a retried call still needs after the wait.
const RETRY_MARGIN: Duration = Duration::from_secs(1);

/// What a path segment keeps unencoded (ids are digits or UUIDs).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A v1 list page: 500 is the largest `limit` the list endpoints we use take
/// (the per-record file lists cap it at 100 themselves).
pub(super) const V1_PAGE: &str = "500";
/// A v2 list page (`limit` ≤ 500).
pub(super) const V2_PAGE: &str = "500";

/// `template` with each `{…}` replaced by the next of `ids`, percent-encoded
/// as a path segment (an id can never add a segment or a query).
fn fill(template: &str, ids: &[&str]) -> String {
    let mut path = String::with_capacity(template.len() + 16);
    let mut ids = ids.iter();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        match ids.next() {
            Some(id) => path.extend(utf8_percent_encode(id, SEGMENT)),
            None => path.push_str(&rest[open..=open + close]),
        }
        rest = &rest[open + close + 1..];
    }
    path.push_str(rest);
    path
}

/// The `x-ratelimit-*` headers of a 429 (reference §10).
#[derive(Debug, Clone, Copy)]
struct RateHeaders {
    remaining: Option<u64>,
    reset: Option<u64>,
}

impl RateHeaders {
    fn read(headers: &HeaderMap) -> Self {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Self {
            remaining: number("x-ratelimit-remaining"),
            reset: number("x-ratelimit-reset"),
        }
    }
}

/// Unix seconds of the next midnight UTC, when the daily budget is assumed
/// to reset (Pipedrive says "server time" without naming its zone).
pub(super) fn next_midnight_utc() -> i64 {
    let now = chrono::Utc::now();
    (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map_or(now.timestamp() + 86_400, |t| t.and_utc().timestamp())
}

/// What a 429 means. Pipedrive answers a spent daily budget and a full
/// burst window alike; the headers describe the burst window only. A 429
/// while the window has room, or one that outlasts the window's reset, is
/// the budget (reference §10, "ours"); a full window whose reset is near
/// is waited out once; any other is a burst left to the caller's back-off.
fn after_429(rate: RateHeaders, waited: bool) -> Result<Duration, CrmError> {
    if waited || rate.remaining.is_some_and(|r| r > 0) {
        return Err(CrmError::BudgetSpent {
            resets_at: next_midnight_utc(),
        });
    }
    let wait = match rate.reset {
        Some(secs) => Duration::from_secs(secs.max(1)),
        None => return Err(CrmError::RateLimited),
    };
    let time_left = crate::budget::call_timeout(crate::deps::HTTP_CALL_TIMEOUT)
        .is_ok_and(|left| left >= wait + RETRY_MARGIN);
    if wait <= LONGEST_BURST_WAIT && time_left {
        Ok(wait)
    } else {
        Err(CrmError::RateLimited)
    }
}

/// Whether an answer with `status` was charged: refused calls (401, 403,
/// 429) and failures (5xx) are taken to cost nothing, as in the sandbox;
/// Pipedrive does not document it.
fn charged(status: StatusCode) -> bool {
    !matches!(status.as_u16(), 401 | 403 | 429) && !status.is_server_error()
}

/// A refusal from the error envelope: `{success: false, error, error_info,
/// code?}` (`code` only on plan-limit 403s, else the status); v2 validation messages name the field (`Validation failed:
/// <field>: <problem>`).
fn rejection(status: StatusCode, body: Option<&Value>) -> CrmError {
    let text = |key: &str| {
        body.and_then(|b| b[key].as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    // `error_info` is mostly a pointer to the docs: only a fallback.
    let message = text("error")
        .or_else(|| text("error_info"))
        .unwrap_or_else(|| status.canonical_reason().unwrap_or_default())
        .to_owned();
    let field = text("error")
        .and_then(|e| e.strip_prefix("Validation failed: "))
        .and_then(|rest| rest.split_once(": "))
        .map(|(field, _)| field.to_owned());
    CrmError::Rejected {
        status: status.as_u16(),
        code: text("code")
            .map(str::to_owned)
            .unwrap_or_else(|| status.as_u16().to_string()),
        message,
        field,
    }
}

/// How a list pages.
#[derive(Debug, Clone, Copy)]
enum Paging {
    /// v1: `start`/`limit`.
    Start,
    /// v2: `cursor`/`limit`.
    Cursor,
}

/// The items of a list answer: `data` itself, or `data.items` (search).
fn items_of(body: &Value) -> &[Value] {
    body["data"]
        .as_array()
        .or_else(|| body["data"]["items"].as_array())
        .map_or(&[], Vec::as_slice)
}

impl PipedriveApi {
    /// Sends `method` on `template` (ids filled in) with the current access
    /// token; after a 401, refreshes once and sends it once more; after a
    /// burst 429 with a near reset, waits once and sends it once more.
    /// `build` adds the query and body, again for each attempt. Returns the
    /// JSON answer (`Null` when empty). Logs the template, never the ids
    /// or the query (a search term is a phone number).
    pub(super) async fn call(
        &self,
        method: Method,
        template: &'static str,
        ids: &[&str],
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Value, CrmError> {
        let url = format!("{}{}", self.api_domain, fill(template, ids));
        let cost = u64::from(token_cost(method.as_str(), template));
        let mut token = self.tokens.current().await?;
        let (mut refreshed, mut waited, mut retried) = (false, false, false);
        loop {
            let request = self.http.request(method.clone(), &url).bearer_auth(&token);
            let response = build(request)
                .timeout(crm_call_timeout()?)
                .send()
                .await
                .map_err(crm_transport)?;
            let status = response.status();
            let rate = RateHeaders::read(response.headers());
            // 429s have their own rule (burst or budget): see `after_429`.
            let quick_wait = crate::adapters::quick_retry_wait(
                &method,
                status,
                response.headers().get("retry-after"),
            );
            let tokens = if charged(status) { cost } else { 0 };
            self.spent.fetch_add(tokens, Ordering::Relaxed);
            self.meter
                .spent(u32::try_from(tokens).unwrap_or(u32::MAX))
                .await;
            tracing::info!(
                method = %method,
                path = template,
                status = status.as_u16(),
                tokens,
                "Pipedrive API call"
            );
            let text = response.text().await.map_err(crm_transport)?;
            let body: Option<Value> = serde_json::from_str(&text).ok();
            match status {
                s if s.is_success() => {
                    return match body {
                        Some(body) => Ok(body),
                        None if text.trim().is_empty() => Ok(Value::Null),
                        None => Err(CrmError::Decode(format!("{template}: not JSON"))),
                    };
                }
                StatusCode::UNAUTHORIZED if !refreshed => {
                    tracing::info!(
                        path = template,
                        "Pipedrive refused the access token; refreshing once"
                    );
                    token = self.tokens.refresh_after_rejection(&token).await?;
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED => return Err(CrmError::Unauthorized),
                StatusCode::TOO_MANY_REQUESTS => {
                    let wait = after_429(rate, waited)?;
                    tracing::info!(
                        path = template,
                        wait_secs = wait.as_secs(),
                        "Pipedrive burst limit; waiting once"
                    );
                    tokio::time::sleep(wait).await;
                    waited = true;
                }
                s if s.is_server_error() => match quick_wait {
                    Some(wait) if !retried => {
                        tracing::info!(
                            path = template,
                            status = s.as_u16(),
                            wait_ms = wait.as_millis() as u64,
                            "Pipedrive call failed; trying once more"
                        );
                        tokio::time::sleep(wait).await;
                        retried = true;
                    }
                    _ => return Err(CrmError::Unavailable(s.as_u16())),
                },
                s => return Err(rejection(s, body.as_ref())),
            }
        }
    }

    /// `GET` of one object: its `data`.
    pub(super) async fn get_one(
        &self,
        template: &'static str,
        ids: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, CrmError> {
        let body = self
            .call(Method::GET, template, ids, |r| r.query(query))
            .await?;
        Ok(body["data"].clone())
    }

    /// Visits the items of a list page by page until `visit` says stop
    /// (returns true) or the list ends: v1 lists page by `start` (the next
    /// one in `additional_data.pagination`, or flat in `additional_data`
    /// for leads and per-record file lists), v2 lists by `cursor`.
    async fn scan(
        &self,
        paging: Paging,
        template: &'static str,
        ids: &[&str],
        query: &[(&str, &str)],
        mut visit: impl FnMut(&Value) -> bool + Send,
    ) -> Result<(), CrmError> {
        let mut page: Option<(&str, String)> = None;
        loop {
            let body = self
                .call(Method::GET, template, ids, |r| {
                    let r = r.query(query);
                    match &page {
                        Some((key, value)) => r.query(&[(*key, value.as_str())]),
                        None => r,
                    }
                })
                .await?;
            if items_of(&body).iter().any(&mut visit) {
                return Ok(());
            }
            let additional = &body["additional_data"];
            page = match paging {
                Paging::Cursor => additional["next_cursor"]
                    .as_str()
                    .filter(|next| !next.is_empty())
                    .map(|next| ("cursor", next.to_owned())),
                Paging::Start => {
                    let pagination = additional.get("pagination").unwrap_or(additional);
                    let start = page.as_ref().map_or(Some(0), |(_, s)| s.parse().ok());
                    pagination["next_start"]
                        .as_u64()
                        .filter(|next| {
                            pagination["more_items_in_collection"] == true
                                && start.is_some_and(|start| *next > start)
                        })
                        .map(|next| ("start", next.to_string()))
                }
            };
            if page.is_none() {
                return Ok(());
            }
        }
    }

    /// Every item of a v2 list.
    pub(super) async fn v2_all(
        &self,
        template: &'static str,
        ids: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Vec<Value>, CrmError> {
        let mut all = Vec::new();
        self.scan(Paging::Cursor, template, ids, query, |item| {
            all.push(item.clone());
            false
        })
        .await?;
        Ok(all)
    }

    /// Visits the items of a v1 list (see `scan`).
    pub(super) async fn v1_scan(
        &self,
        template: &'static str,
        ids: &[&str],
        query: &[(&str, &str)],
        visit: impl FnMut(&Value) -> bool + Send,
    ) -> Result<(), CrmError> {
        self.scan(Paging::Start, template, ids, query, visit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_fill_the_template_as_single_segments() {
        assert_eq!(fill("/api/v2/persons/{id}", &["42"]), "/api/v2/persons/42");
        assert_eq!(
            fill("/v1/leads/{id}", &["../users?x=1"]),
            "/v1/leads/..%2Fusers%3Fx%3D1"
        );
        assert_eq!(fill("/v1/users", &[]), "/v1/users");
    }

    #[test]
    fn a_429_with_room_in_the_window_or_after_a_wait_is_the_budget() {
        let budget = |r| matches!(r, Err(CrmError::BudgetSpent { .. }));
        let room = RateHeaders {
            remaining: Some(3),
            reset: Some(1),
        };
        assert!(budget(after_429(room, false)));
        let full = RateHeaders {
            remaining: Some(0),
            reset: Some(1),
        };
        assert_eq!(after_429(full, false).ok(), Some(Duration::from_secs(1)));
        assert!(budget(after_429(full, true)));
        let far = RateHeaders {
            remaining: Some(0),
            reset: Some(30),
        };
        assert!(matches!(after_429(far, false), Err(CrmError::RateLimited)));
        let silent = RateHeaders {
            remaining: None,
            reset: None,
        };
        assert!(matches!(
            after_429(silent, false),
            Err(CrmError::RateLimited)
        ));
    }

    #[test]
    fn the_envelope_names_the_refusal_and_the_field() {
        let body = json!({"success": false, "error": "Validation failed: name: is required",
            "error_info": "Please check developers.pipedrive.com", "data": null});
        match rejection(StatusCode::BAD_REQUEST, Some(&body)) {
            CrmError::Rejected {
                status,
                code,
                message,
                field,
            } => {
                assert_eq!(status, 400);
                assert_eq!(code, "400");
                assert_eq!(message, "Validation failed: name: is required");
                assert_eq!(field.as_deref(), Some("name"));
            }
            other => panic!("{other:?}"),
        }
        let capped =
            json!({"success": false, "error": "limit", "code": "feature_capping_deals_limit"});
        assert!(matches!(
            rejection(StatusCode::FORBIDDEN, Some(&capped)),
            CrmError::Rejected { code, .. } if code == "feature_capping_deals_limit"
        ));
    }
}
