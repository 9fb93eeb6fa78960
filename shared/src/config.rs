//! Configuration from the environment: the SAM template sets the resource
//! names; every external base URL can be overridden so that the same binaries
//! run against AWS and the real CRMs, or against the local stack and sandboxes.

use std::collections::BTreeMap;

pub use crate::adapters::pipedrive::PipedriveConfig;

#[derive(Debug, thiserror::Error)]
#[error("environment variable {0} is not set")]
pub struct MissingVar(pub &'static str);

#[derive(Debug, Clone)]
pub struct Config {
    pub table_name: String,
    /// The resources below are set only for the functions that use them (as
    /// the template gives each function only its own): one a function was
    /// not given fails where it is used, naming the variable.
    pub sync_queue_url: Option<String>,
    pub notes_queue_url: Option<String>,
    pub app_key_secret_id: Option<String>,
    pub operator_key_secret_id: Option<String>,
    pub meta_app_secret_id: Option<String>,
    pub zoho_client_secret_id: Option<String>,
    pub pipedrive_client_secret_id: Option<String>,
    /// Where this deployment is reachable; OAuth redirect URIs are built from it.
    pub public_base_url: Option<String>,
    pub zoho: ZohoConfig,
    pub pipedrive: PipedriveConfig,
    /// First retry delay after a transient failure (then doubling);
    /// `RETRY_BACKOFF_BASE_SECS`, default 10. Tests shorten it.
    pub retry_backoff_base_secs: i32,
    /// How long an OAuth `state` stays valid; `OAUTH_STATE_TTL_SECS`, default 600.
    pub oauth_state_ttl_secs: i64,
    /// Largest note content written to the CRM, in characters; a day that
    /// needs more continues in `(part 2)` and so on. `NOTE_CONTENT_MAX`,
    /// default 30 000 (Zoho's exact limit is not documented; its large
    /// text areas hold 32 000).
    pub note_content_max: usize,
    /// The queues' `maxReceiveCount`: a message failing on this receive goes
    /// to the dead-letter queue. `MAX_RECEIVE_COUNT`, default
    /// [`DEFAULT_MAX_RECEIVE_COUNT`] (the template's value; a test keeps
    /// them equal).
    pub max_receive_count: u32,
    /// How often a chat's remembered Lead is checked for conversion, in
    /// seconds; `CONVERSION_CHECK_SECS`, default 3600 (an hour: the steady
    /// state stays at one CRM call per message). Tests set 0.
    pub conversion_check_secs: i64,
    /// The longest sync waits for a CRM's spent daily API budget before
    /// trying again, in seconds. Pipedrive resets budgets at midnight of a
    /// server time zone it does not name: the wait is until the next
    /// midnight UTC, or this long if sooner, and tried again then.
    /// `BUDGET_WAIT_MAX_SECS`, default 3 hours. Tests shorten it.
    pub budget_wait_max_secs: i64,
    /// The Graph API's base URL (`GRAPH_API_URL`, default
    /// `https://graph.facebook.com`) and version (`GRAPH_API_VERSION`,
    /// default `v23.0`), for media downloads and for reading a business
    /// number when it is registered.
    pub graph_api_url: String,
    pub graph_api_version: String,
    /// Largest file attached to a CRM record, in bytes; a larger one gets a
    /// note line that says so. `ATTACHMENT_MAX_BYTES`, default 20 MB: the
    /// file passes through the function's memory (256 MB) within its 30 s,
    /// well under Zoho's documented 100 MB per attachment.
    pub attachment_max_bytes: u64,
    /// How long after a workspace's deletion began its job waits before it
    /// checks that nothing is left: longer than any function runs (30 s),
    /// so that work begun before the deletion has ended and written what it
    /// would. `WORKSPACE_DELETION_SETTLE_SECS`, default 60. Tests shorten it.
    pub workspace_deletion_settle_secs: i64,
    /// How long a live-chat sign-in's one-time code may be exchanged for a
    /// session: long enough for the popup to hand it back, short enough
    /// that a leaked one is dead. `LIVE_SIGNIN_CODE_TTL_SECS`, default 120.
    /// Tests shorten it.
    pub live_signin_code_ttl_secs: i64,
}

pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;
/// Within Zoho's documented 100 MB per attachment (`ZOHO_ATTACHMENT_MAX_BYTES`).
pub const DEFAULT_ATTACHMENT_MAX_BYTES: u64 = 20_000_000;

#[derive(Debug, Clone)]
pub struct ZohoConfig {
    /// Where the authorization request starts (Zoho routes users to their DC).
    pub accounts_url: String,
    /// The accounts servers a callback may name, by `location`. The callback's
    /// `accounts-server` is only trusted when it is one of these: the code
    /// exchange sends our client secret there.
    pub accounts_servers: BTreeMap<String, String>,
    /// The API domains a token response may name; tokens are only ever sent
    /// to one of these.
    pub api_domains: Vec<String>,
}

/// Zoho's API hosts per data centre, with their sandbox/developer variants.
const ZOHO_API_TLDS: &[&str] = &["com", "eu", "in", "com.au", "jp", "ca", "sa", "com.cn"];

/// Zoho's data centres (reference §1.3).
const ZOHO_ACCOUNTS_SERVERS: &[(&str, &str)] = &[
    ("us", "https://accounts.zoho.com"),
    ("eu", "https://accounts.zoho.eu"),
    ("in", "https://accounts.zoho.in"),
    ("au", "https://accounts.zoho.com.au"),
    ("jp", "https://accounts.zoho.jp"),
    ("ca", "https://accounts.zohocloud.ca"),
    ("sa", "https://accounts.zoho.sa"),
    ("cn", "https://accounts.zoho.com.cn"),
];

impl Config {
    pub fn from_env() -> Result<Self, MissingVar> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, MissingVar> {
        let need = |key: &'static str| get(key).filter(|v| !v.is_empty()).ok_or(MissingVar(key));
        let given = |key: &'static str| get(key).filter(|v| !v.is_empty());
        let accounts_servers = match get("ZOHO_ACCOUNTS_SERVERS") {
            Some(list) => parse_pairs(&list),
            None => ZOHO_ACCOUNTS_SERVERS
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        Ok(Self {
            table_name: need("TABLE_NAME")?,
            sync_queue_url: given("SYNC_QUEUE_URL"),
            notes_queue_url: given("NOTES_QUEUE_URL"),
            app_key_secret_id: given("APP_KEY_SECRET_ID"),
            operator_key_secret_id: given("OPERATOR_KEY_SECRET_ID"),
            meta_app_secret_id: given("META_APP_SECRET_ID"),
            zoho_client_secret_id: given("ZOHO_CLIENT_SECRET_ID"),
            pipedrive_client_secret_id: given("PIPEDRIVE_CLIENT_SECRET_ID"),
            pipedrive: PipedriveConfig {
                oauth_url: given("PIPEDRIVE_OAUTH_URL")
                    .map(|u| u.trim_end_matches('/').to_owned())
                    .unwrap_or_else(|| PipedriveConfig::default().oauth_url),
                extra_api_origin: given("PIPEDRIVE_EXTRA_API_ORIGIN")
                    .map(|u| u.trim_end_matches('/').to_owned()),
            },
            public_base_url: given("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            zoho: ZohoConfig {
                accounts_url: get("ZOHO_ACCOUNTS_URL")
                    .unwrap_or_else(|| "https://accounts.zoho.com".to_owned())
                    .trim_end_matches('/')
                    .to_owned(),
                accounts_servers,
                api_domains: match get("ZOHO_API_DOMAINS") {
                    Some(list) => list
                        .split(',')
                        .map(|d| d.trim().trim_end_matches('/').to_owned())
                        .filter(|d| !d.is_empty())
                        .collect(),
                    None => ZOHO_API_TLDS
                        .iter()
                        .flat_map(|tld| {
                            ["www", "sandbox", "developer"]
                                .map(|env| format!("https://{env}.zohoapis.{tld}"))
                        })
                        .collect(),
                },
            },
            note_content_max: get("NOTE_CONTENT_MAX")
                .and_then(|v| v.parse().ok())
                .unwrap_or(30_000),
            oauth_state_ttl_secs: get("OAUTH_STATE_TTL_SECS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(600),
            retry_backoff_base_secs: get("RETRY_BACKOFF_BASE_SECS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(10),
            // SQS allows 1 to 1000; 0 would call every failure the last.
            max_receive_count: get("MAX_RECEIVE_COUNT")
                .and_then(|v| v.parse().ok())
                .filter(|count: &u32| (1..=1000).contains(count))
                .unwrap_or(DEFAULT_MAX_RECEIVE_COUNT),
            conversion_check_secs: get("CONVERSION_CHECK_SECS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3600),
            budget_wait_max_secs: get("BUDGET_WAIT_MAX_SECS")
                .and_then(|v| v.parse().ok())
                .filter(|secs: &i64| *secs > 0)
                .unwrap_or(3 * 3600),
            graph_api_url: get("GRAPH_API_URL")
                .map(|u| u.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| "https://graph.facebook.com".to_owned()),
            graph_api_version: get("GRAPH_API_VERSION").unwrap_or_else(|| "v23.0".to_owned()),
            attachment_max_bytes: get("ATTACHMENT_MAX_BYTES")
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_ATTACHMENT_MAX_BYTES),
            workspace_deletion_settle_secs: get("WORKSPACE_DELETION_SETTLE_SECS")
                .and_then(|v| v.parse().ok())
                .filter(|secs: &i64| *secs >= 0)
                .unwrap_or(60),
            live_signin_code_ttl_secs: get("LIVE_SIGNIN_CODE_TTL_SECS")
                .and_then(|v| v.parse().ok())
                .filter(|secs: &i64| *secs > 0)
                .unwrap_or(120),
        })
    }
}

/// `us=https://a,eu=https://b` → map.
fn parse_pairs(list: &str) -> BTreeMap<String, String> {
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_owned(),
                v.trim().trim_end_matches('/').to_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(key: &str) -> Option<String> {
        Some(format!("value-of-{key}"))
    }

    #[test]
    fn zoho_data_centres_default_to_the_real_ones() {
        let config = Config::from_lookup(|k| match k {
            "ZOHO_ACCOUNTS_SERVERS" | "ZOHO_ACCOUNTS_URL" | "ZOHO_API_DOMAINS" => None,
            other => base(other),
        })
        .expect("complete");
        assert_eq!(config.zoho.accounts_url, "https://accounts.zoho.com");
        assert_eq!(
            config.zoho.accounts_servers.get("eu").map(String::as_str),
            Some("https://accounts.zoho.eu")
        );
        assert!(
            config
                .zoho
                .api_domains
                .contains(&"https://www.zohoapis.eu".to_owned())
        );
        assert!(
            !config
                .zoho
                .api_domains
                .iter()
                .any(|d| d.contains("example"))
        );
    }

    #[test]
    fn data_centres_can_point_at_sandboxes() {
        let config = Config::from_lookup(|k| match k {
            "ZOHO_ACCOUNTS_SERVERS" => Some("us=http://127.0.0.1:1/, eu=http://127.0.0.1:2".into()),
            other => base(other),
        })
        .expect("complete");
        assert_eq!(config.zoho.accounts_servers.len(), 2);
        assert_eq!(config.zoho.accounts_servers["us"], "http://127.0.0.1:1");
    }

    #[test]
    fn a_max_receive_count_sqs_would_refuse_falls_back_to_the_default() {
        let count = |value: &str| {
            let value = value.to_owned();
            Config::from_lookup(move |k| match k {
                "MAX_RECEIVE_COUNT" => Some(value.clone()),
                other => base(other),
            })
            .expect("complete")
            .max_receive_count
        };
        assert_eq!(count("0"), DEFAULT_MAX_RECEIVE_COUNT);
        assert_eq!(count("1001"), DEFAULT_MAX_RECEIVE_COUNT);
        assert_eq!(count("many"), DEFAULT_MAX_RECEIVE_COUNT);
        assert_eq!(count("1"), 1);
        assert_eq!(count("12"), 12);
    }

    #[test]
    fn a_missing_variable_is_named() {
        let err = Config::from_lookup(|k| (k != "TABLE_NAME").then(|| "x".to_owned()))
            .expect_err("incomplete");
        assert_eq!(
            err.to_string(),
            "environment variable TABLE_NAME is not set"
        );
    }
}
