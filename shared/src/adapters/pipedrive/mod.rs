//! Pipedrive (reference `pipedrive.md`): the OAuth server ([`oauth`]) and
//! the CRM API of one connection ([`api`]), with what both share: which API
//! hosts tokens may go to, and what each API call costs.
//!
//! The API client speaks v2 where Pipedrive has moved (persons, deals,
//! pipelines, stages, search, field metadata) and v1 where only v1 exists
//! (leads, lead labels, notes, files, users).

mod api;
mod call;
mod costs;
mod deals;
mod fields;
mod files;
mod notes;
pub mod oauth;

pub use api::PipedriveApi;
pub use costs::token_cost;
pub use oauth::PipedriveOAuth;

/// Pipedrive's OAuth server and which API hosts it may name.
#[derive(Debug, Clone)]
pub struct PipedriveConfig {
    /// `PIPEDRIVE_OAUTH_URL`, default `https://oauth.pipedrive.com`.
    pub oauth_url: String,
    /// One more API origin trusted besides `https://*.pipedrive.com`
    /// (`PIPEDRIVE_EXTRA_API_ORIGIN`): the local sandbox, never set in AWS.
    pub extra_api_origin: Option<String>,
}

impl Default for PipedriveConfig {
    fn default() -> Self {
        Self {
            oauth_url: "https://oauth.pipedrive.com".into(),
            extra_api_origin: None,
        }
    }
}

impl PipedriveConfig {
    /// Whether tokens may be sent to `api_domain`: HTTPS on Pipedrive's own
    /// domain (a company's `acme.pipedrive.com`, or `api.pipedrive.com`),
    /// nothing else — not a path, a port, credentials or a look-alike host.
    pub fn trusts_api_domain(&self, api_domain: &str) -> bool {
        if self.extra_api_origin.as_deref() == Some(api_domain) {
            return true;
        }
        let Ok(url) = url::Url::parse(api_domain) else {
            return false;
        };
        let host = url.host_str().unwrap_or_default();
        url.scheme() == "https"
            && url.port().is_none()
            && url.username().is_empty()
            && url.password().is_none()
            && matches!(url.path(), "" | "/")
            && url.query().is_none()
            && host
                .strip_suffix(".pipedrive.com")
                .is_some_and(|sub| !sub.is_empty() && !sub.contains('.'))
    }
}
