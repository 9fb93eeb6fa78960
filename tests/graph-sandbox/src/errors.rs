//! The Cloud API's error codes as the sandbox gives them: in Graph's HTTP
//! error envelope (`{"error":{"message","type","code","error_data":
//! {"messaging_product","details"},"fbtrace_id"}}`, no `error_subcode` from
//! v16.0 on) and in the `errors` array of a `failed` status webhook
//! (`{"code","title","message","error_data":{"details"},"href"}`).
//!
//! Codes, titles and meanings: the team's WhatsApp reference §8 ("Error codes
//! worth handling"). HTTP statuses follow Meta's error-code table (most are
//! 400; 132001 is 404, 131000 is 500, 131016 is 503, permission codes 403);
//! the reference itself lists no statuses.

use serde_json::{Value, json};

/// Where Meta's error-code documentation lives, as webhooks cite it.
const ERROR_CODES_HREF: &str = "/documentation/business-messaging/whatsapp/support/error-codes";

/// One Cloud API error: a code and the details of this occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudError {
    pub code: i64,
    /// `error_data.details`: what went wrong this time.
    pub details: String,
}

impl CloudError {
    pub fn new(code: i64, details: impl Into<String>) -> Self {
        Self {
            code,
            details: details.into(),
        }
    }

    /// Code 100 for a request parameter (`(#100) Invalid parameter`).
    pub fn invalid_parameter(details: impl Into<String>) -> Self {
        Self::new(100, details)
    }

    /// The catalogue entry for the code.
    pub fn info(&self) -> CodeInfo {
        code_info(self.code)
    }

    /// The HTTP status Graph answers this error with.
    pub fn http_status(&self) -> u16 {
        self.info().http_status
    }

    /// `error` of Graph's HTTP envelope (without `fbtrace_id`, added by the
    /// server).
    pub fn envelope(&self) -> Value {
        let info = self.info();
        json!({
            "message": format!("(#{}) {}", self.code, info.title),
            "type": info.error_type,
            "code": self.code,
            "error_data": { "messaging_product": "whatsapp", "details": self.details },
        })
    }

    /// One item of a status webhook's `errors` array.
    pub fn webhook_error(&self) -> Value {
        let title = self.info().title;
        json!({
            "code": self.code,
            "title": title,
            "message": title,
            "error_data": { "details": self.details },
            "href": ERROR_CODES_HREF,
        })
    }
}

impl std::fmt::Display for CloudError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(#{}) {}: {}",
            self.code,
            self.info().title,
            self.details
        )
    }
}

impl std::error::Error for CloudError {}

/// What the catalogue knows of a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub http_status: u16,
    pub title: &'static str,
    /// Graph's `type` (`OAuthException` for nearly every Cloud API error).
    pub error_type: &'static str,
    /// The details Meta gives when nothing more precise is known.
    pub default_details: &'static str,
}

const fn info(http_status: u16, title: &'static str, default_details: &'static str) -> CodeInfo {
    CodeInfo {
        http_status,
        title,
        error_type: "OAuthException",
        default_details,
    }
}

/// The catalogue. Unknown codes answer 400 "Unknown error".
#[rustfmt::skip]
pub fn code_info(code: i64) -> CodeInfo {
    match code {
        0 => info(401, "AuthException", "We were unable to authenticate the app user."),
        1 => info(400, "API Unknown", "Invalid request or possible server error."),
        2 => info(503, "API Service", "Temporary due to downtime or due to being overloaded."),
        4 => info(400, "Application request limit reached", "The app has reached its API call rate limit."),
        10 | 200..=299 | 131005 => info(403, "Permission denied", "Permission is either not granted or has been removed."),
        100 => info(400, "Invalid parameter", "The request included one or more unsupported or misspelled parameters."),
        190 => info(401, "Access token has expired", "Your access token has expired."),
        368 => info(403, "Temporarily blocked for policies violations", "The WhatsApp Business Account has been restricted or disabled for violating a platform policy."),
        80007 => info(400, "Rate limit issues", "The WhatsApp Business Account has reached its rate limit."),
        130429 => info(400, "Rate limit hit", "Message failed to send because there were too many messages sent from this phone number in a short period of time"),
        130497 => info(403, "Business account is restricted from messaging users in this country", "The WhatsApp Business Account is restricted from messaging users in this country."),
        131000 => info(500, "Something went wrong", "Message failed to send due to an unknown error."),
        131008 => info(400, "Required parameter is missing", "The request is missing a required parameter."),
        131009 => info(400, "Parameter value is not valid", "One or more parameter values are invalid."),
        131016 => info(503, "Service unavailable", "A service is temporarily unavailable."),
        131021 => info(400, "Recipient cannot be sender", "Sender and recipient phone number is the same."),
        131026 => info(400, "Message undeliverable", "Unable to deliver message. The recipient may not be a WhatsApp user, may not have accepted the latest Terms of Service, or may use an old WhatsApp version."),
        131031 => info(403, "Account has been locked", "The WhatsApp Business Account has been locked."),
        131047 => info(400, "Re-engagement message", "More than 24 hours have passed since the recipient last replied to the sender number."),
        131048 => info(400, "Spam rate limit hit", "Message failed to send because there are restrictions on how many messages can be sent from this phone number."),
        131049 => info(400, "This message was not delivered to maintain healthy ecosystem engagement.", "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."),
        131050 => info(400, "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp from your business", "The user has stopped marketing messages from this business."),
        131051 => info(400, "Unsupported message type", "Message type is not currently supported."),
        131052 => info(400, "Media download error", "Unable to download the media sent by the user."),
        131053 => info(400, "Media upload error", "Unable to upload the media used in the message."),
        131056 => info(400, "(Business Account, Consumer Account) pair rate limit hit", "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."),
        131057 => info(500, "Account in maintenance mode", "Business Account is in maintenance mode."),
        132000 => info(400, "Number of parameters does not match the expected number of params", "The number of variable parameter values does not match the number of variables defined in the template."),
        132001 => info(404, "Template name does not exist in the translation", "The template does not exist in the specified language or has not been approved."),
        132012 => info(400, "Parameter format does not match format in the created template", "Variable parameter values formatted incorrectly."),
        132015 => info(400, "Template is Paused", "Template is paused due to low quality so it cannot be sent in a template message."),
        132016 => info(400, "Template is Disabled", "Template has been paused too many times due to low quality and is now permanently disabled."),
        _ => info(400, "Unknown error", "An unknown error occurred."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_puts_the_code_in_the_message() {
        let e = CloudError::new(131047, "outside the window").envelope();
        assert_eq!(e["message"], "(#131047) Re-engagement message");
        assert_eq!(e["code"], 131047);
        assert_eq!(e["error_data"]["details"], "outside the window");
        assert!(e.get("error_subcode").is_none());
    }

    #[test]
    fn statuses_follow_the_table() {
        assert_eq!(CloudError::new(132001, "").http_status(), 404);
        assert_eq!(CloudError::new(131000, "").http_status(), 500);
        assert_eq!(CloudError::new(130429, "").http_status(), 400);
        assert_eq!(CloudError::new(999_999, "").http_status(), 400);
    }
}
