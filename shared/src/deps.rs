//! What every function builds once per container, outside the handler.

use std::sync::Arc;
use std::time::Duration;

use crate::adapters::crms::CrmClients;
use crate::adapters::dynamo::DynamoStore;
use crate::adapters::graph::{GraphBusinessNumbers, GraphMedia};
use crate::adapters::sqs::SqsQueue;
use crate::business_numbers::BusinessNumbers;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, MissingVar};
use crate::crm::CrmProvider;
use crate::media::MediaSource;
use crate::queue::Queue;
use crate::secrets::{Secrets, SecretsManagerSource};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Config(#[from] MissingVar),
    #[error("HTTP client: {0}")]
    Http(String),
    #[error(transparent)]
    Tls(#[from] crate::adapters::tls::TlsError),
}

/// The longest any outbound HTTP call may take.
pub const HTTP_CALL_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Deps {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub secrets: Arc<Secrets>,
    pub http: reqwest::Client,
    pub clock: Arc<dyn Clock>,
    /// WhatsApp media, through the Graph API.
    pub media: Arc<dyn MediaSource>,
    /// WhatsApp business numbers, through the Graph API.
    pub business_numbers: Arc<dyn BusinessNumbers>,
    /// Each CRM's OAuth and API clients.
    pub crms: Arc<dyn CrmProvider>,
}

impl Deps {
    /// AWS clients from the standard variables (`AWS_ENDPOINT_URL_*` select
    /// the local stack), everything else from [`Config`].
    pub async fn from_env() -> Result<Self, InitError> {
        let config = Config::from_env()?;
        let aws = aws_config()?;
        Self::build(config, &aws)
    }

    pub fn build(config: Config, aws: &aws_config::SdkConfig) -> Result<Self, InitError> {
        let secrets = Arc::new(Secrets::new(
            Box::new(SecretsManagerSource(aws_sdk_secretsmanager::Client::new(
                aws,
            ))),
            &config,
        ));
        // Message content is sealed at rest with a key from the app master
        // key: the store asks the secrets for it when it first needs it.
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            &config.table_name,
            secrets.clone(),
        );
        let queue = SqsQueue::new(
            aws_sdk_sqs::Client::new(aws),
            config.sync_queue_url.clone(),
            config.notes_queue_url.clone(),
        );
        let http = http_client()?;
        let media = GraphMedia::new(
            http.clone(),
            &config.graph_api_url,
            &config.graph_api_version,
        );
        let business_numbers = GraphBusinessNumbers::new(
            http.clone(),
            &config.graph_api_url,
            &config.graph_api_version,
        );
        let crms = CrmClients::new(http.clone(), secrets.clone(), config.clone());
        Ok(Self {
            config,
            store: Arc::new(store),
            queue: Arc::new(queue),
            secrets,
            http,
            clock: Arc::new(SystemClock),
            media: Arc::new(media),
            business_numbers: Arc::new(business_numbers),
            crms: Arc::new(crms),
        })
    }
}

/// The AWS SDK's configuration, from the variables Lambda gives every
/// function: the region (`AWS_REGION`), the execution role's credentials
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read
/// when a call needs them) and, locally, each service's endpoint
/// (`AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`). Every SDK
/// client of a function is built from it, on the process's one TLS
/// configuration; retries, time-outs and the credentials cache are the
/// clients' defaults.
///
/// Not `aws_config::load`: its credentials chain (profile files, web
/// identity through STS, ECS, IMDS) finds nothing on Lambda that the
/// environment does not give first, and it is the largest part of the SDK
/// in each binary (README, Benchmarks).
pub fn aws_config() -> Result<aws_types::SdkConfig, InitError> {
    let region = std::env::var("AWS_REGION").map_err(|_| MissingVar("AWS_REGION"))?;
    Ok(aws_types::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new(region))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
        )
        .service_config(EndpointsFromEnv)
        .http_client(crate::adapters::tls::SdkHttpClient::new()?)
        .build())
}

/// Service endpoints from the environment, as the SDK's own loader reads
/// them: `AWS_ENDPOINT_URL_DYNAMODB` (the service's id, upper case, spaces
/// as `_`) before `AWS_ENDPOINT_URL`. None set: the service's AWS endpoint.
#[derive(Debug)]
struct EndpointsFromEnv;

impl aws_types::service_config::LoadServiceConfig for EndpointsFromEnv {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        let service = key.service_id().to_uppercase().replace(' ', "_");
        std::env::var(format!("{}_{service}", key.env()))
            .or_else(|_| std::env::var(key.env()))
            .ok()
    }
}

/// The one client every outbound call outside AWS goes through (the CRMs,
/// the Graph API).
pub fn http_client() -> Result<reqwest::Client, InitError> {
    let tls = rustls::ClientConfig::clone(&*crate::adapters::tls::client_config()?);
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(Duration::from_secs(5))
        // Calls made in a worker's invocation get less when it ends
        // sooner (`budget::call_timeout`).
        .timeout(HTTP_CALL_TIMEOUT)
        // OAuth callbacks are followed by the browser, never by us.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| InitError::Http(e.to_string()))
}

/// Structured logs: JSON on Lambda (CloudWatch), levels from `RUST_LOG`
/// (`info`, `info,shared=debug`; [`log_filter`]).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        // stderr: Lambda sends it to CloudWatch all the same, and locally it
        // keeps program output (the demo's) apart from logs.
        .with_writer(std::io::stderr)
        .finish()
        .with(log_filter(std::env::var("RUST_LOG").ok().as_deref()));
    // A second call (tests, local runner) keeps the first subscriber.
    let _ = subscriber.try_init();
}

/// Which events are logged: `RUST_LOG`'s levels per target (`warn`,
/// `info,shared::sync=debug`), `info` when it is unset or does not read.
pub fn log_filter(rust_log: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    rust_log
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::log_filter;

    #[test]
    fn rust_log_sets_levels_per_target_and_info_is_the_default() {
        let unset = log_filter(None);
        assert!(unset.would_enable("shared::sync", &Level::INFO));
        assert!(!unset.would_enable("shared::sync", &Level::DEBUG));

        let quiet = log_filter(Some("warn"));
        assert!(!quiet.would_enable("shared::sync", &Level::INFO));
        assert!(quiet.would_enable("hyper", &Level::WARN));

        let detailed = log_filter(Some("info,shared::sync=debug"));
        assert!(detailed.would_enable("shared::sync", &Level::DEBUG));
        assert!(!detailed.would_enable("shared::crm", &Level::DEBUG));
        assert!(detailed.would_enable("shared::crm", &Level::INFO));

        let unreadable = log_filter(Some("shared=loud"));
        assert!(unreadable.would_enable("shared", &Level::INFO));
        assert!(!unreadable.would_enable("shared", &Level::DEBUG));
    }
}
