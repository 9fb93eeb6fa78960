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
        let aws = aws_config().await?;
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

/// The AWS SDK's configuration from the standard variables: every SDK
/// client of a function (and the credentials chain) is built from it, on the
/// process's one TLS configuration.
pub async fn aws_config() -> Result<aws_config::SdkConfig, InitError> {
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::adapters::tls::SdkHttpClient::new()?)
        .load()
        .await)
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

/// Structured logs: JSON on Lambda (CloudWatch), level from `RUST_LOG`.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second call (tests, local runner) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        // stderr: Lambda sends it to CloudWatch all the same, and locally it
        // keeps program output (the demo's) apart from logs.
        .with_writer(std::io::stderr)
        .try_init();
}
