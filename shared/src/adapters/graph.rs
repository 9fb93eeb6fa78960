//! The Meta Graph API. WhatsApp media (WhatsApp reference §7): the
//! metadata call `GET /{version}/{media_id}` gives the MIME type, the size and
//! a download URL that lives 5 minutes; the URL gives the bytes. Business
//! numbers: `GET /{version}/{phone_number_id}?fields=display_phone_number,
//! verified_name` reads a number, for a token of the business that owns it.
//! Every call carries the bearer token, which is never logged.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::media::MediaError;

mod media;
mod numbers;

pub use media::GraphMedia;
pub use numbers::GraphBusinessNumbers;

/// Longest Graph error message kept in [`MediaError::Rejected`].
const MESSAGE_MAX_CHARS: usize = 300;

/// Where Graph is and the version we speak.
#[derive(Clone)]
struct Graph {
    http: reqwest::Client,
    base_url: String,
    api_version: String,
}

impl Graph {
    /// `base_url`: `https://graph.facebook.com` (or a sandbox);
    /// `api_version`: e.g. `v25.0`.
    fn new(http: reqwest::Client, base_url: &str, api_version: &str) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_version: api_version.trim_matches('/').to_owned(),
        }
    }

    /// `{base}/{version}/{id}/{edge}`: an edge of a node (a number's
    /// messages, a business account's templates).
    fn edge_url(&self, id: &str, edge: &str) -> String {
        format!(
            "{}/{}/{}/{edge}",
            self.base_url,
            self.api_version,
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        )
    }

    /// `GET /{version}/{id}`: a node (media item, phone number) by its id.
    fn node(&self, id: &str, token: &str) -> reqwest::RequestBuilder {
        let url = format!(
            "{}/{}/{}",
            self.base_url,
            self.api_version,
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        );
        self.http.get(url).bearer_auth(token)
    }
}

#[derive(Deserialize)]
struct GraphErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    code: Option<i64>,
    /// What exactly was wrong (`message` is often only "Invalid parameter").
    #[serde(default)]
    error_data: Option<GraphErrorData>,
}

#[derive(Deserialize)]
struct GraphErrorData {
    #[serde(default)]
    details: Option<String>,
}

fn transport(e: reqwest::Error) -> MediaError {
    // Without the URL: a download URL is a signed link.
    MediaError::Transport(e.without_url().to_string())
}

/// This call's timeout within the invocation's time left (a transient
/// failure when none is left).
fn call_timeout() -> Result<std::time::Duration, MediaError> {
    crate::budget::call_timeout(crate::deps::HTTP_CALL_TIMEOUT)
        .map_err(|e| MediaError::Transport(e.to_string()))
}

/// Maps a Graph error answer by HTTP status and Graph `code` (reference §8
/// "Error codes worth handling"; code 100 is Graph's "cannot load this id").
fn graph_error(status: StatusCode, body: &str, token: &str) -> MediaError {
    let error = serde_json::from_str::<GraphErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let code = error.as_ref().and_then(|e| e.code);
    match (status.as_u16(), code) {
        // 190: token invalid/expired; 102: session; 3, 10, 200–299: missing
        // permission. None of these is fixed by retrying.
        (401 | 403, _) | (_, Some(190 | 102 | 3 | 10 | 200..=299)) => MediaError::Unauthorized,
        (429, _) | (_, Some(4 | 17 | 32 | 613 | 80007 | 130429)) => MediaError::RateLimited,
        (s, _) if s >= 500 => MediaError::Unavailable(s),
        // Graph's "unknown/temporary" codes: retry with back-off.
        (s, Some(1 | 2 | 131000 | 131016)) => MediaError::Unavailable(s),
        (404, _) | (_, Some(100)) => MediaError::NotFound,
        (s, code) => {
            // Some Graph messages quote the token they refused.
            let message = error
                .map(|e| e.message)
                .unwrap_or_default()
                .replace(token, "[token]")
                .chars()
                .take(MESSAGE_MAX_CHARS)
                .collect();
            MediaError::Rejected {
                status: s,
                code,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: u16, body: &str) -> MediaError {
        graph_error(
            StatusCode::from_u16(status).expect("valid status"),
            body,
            "EAAtoken",
        )
    }

    fn envelope(code: i64, message: &str) -> String {
        serde_json::json!({"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "x"}})
            .to_string()
    }

    #[test]
    fn graph_errors_map_by_status_and_code() {
        assert_eq!(error(401, &envelope(190, "bad")), MediaError::Unauthorized);
        assert_eq!(error(400, &envelope(190, "bad")), MediaError::Unauthorized);
        assert_eq!(error(403, "<html>"), MediaError::Unauthorized);
        assert_eq!(error(400, &envelope(200, "perm")), MediaError::Unauthorized);
        assert_eq!(error(429, ""), MediaError::RateLimited);
        assert_eq!(error(400, &envelope(4, "limit")), MediaError::RateLimited);
        assert_eq!(
            error(400, &envelope(130429, "tput")),
            MediaError::RateLimited
        );
        assert_eq!(
            error(503, &envelope(2, "down")),
            MediaError::Unavailable(503)
        );
        assert_eq!(error(502, "bad gateway"), MediaError::Unavailable(502));
        assert_eq!(
            error(400, &envelope(1, "unknown")),
            MediaError::Unavailable(400)
        );
        assert_eq!(
            error(400, &envelope(100, "no such id")),
            MediaError::NotFound
        );
        assert_eq!(error(404, ""), MediaError::NotFound);
        assert_eq!(
            error(400, &envelope(131052, "Media download error")),
            MediaError::Rejected {
                status: 400,
                code: Some(131052),
                message: "Media download error".into()
            }
        );
    }

    #[test]
    fn rejections_never_carry_the_token() {
        let MediaError::Rejected { message, .. } =
            error(400, &envelope(12345, "Malformed access token EAAtoken"))
        else {
            panic!("expected a rejection");
        };
        assert_eq!(message, "Malformed access token [token]");
    }
}
