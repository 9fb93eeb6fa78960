//! The local stack: the template's resources on DynamoDB Local and moto, and
//! a runner that serves the functions the way API Gateway and the SQS event
//! source would. Used by the end-to-end tests and the demo.

pub mod provision;
pub mod runner;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use shared::config::Config;
use shared::deps::Deps;

pub use provision::Stack;
pub use runner::Runner;
pub use template::Template;

/// The project's SAM template.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "{0} is not set: start the local stack first (`infra/local/stack.sh start` and source .local/stack.env), or run the README's test command"
    )]
    NoLocalStack(&'static str),
    #[error(transparent)]
    Template(#[from] template::TemplateError),
    #[error(transparent)]
    Provision(#[from] provision::ProvisionError),
    #[error("configuration: {0}")]
    Config(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// What a local system is made of.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Prefix of every table, queue and secret name: one system per prefix.
    pub prefix: String,
    pub meta_app_secret: String,
    pub meta_verify_token: String,
    pub zoho_client_id: String,
    pub zoho_client_secret: String,
    /// Where Zoho authorization starts (the sandbox's base URL locally).
    pub zoho_accounts_url: String,
    /// `location=url` pairs of the accounts servers callbacks may name.
    pub zoho_accounts_servers: String,
    /// The API domains token responses may name (comma-separated).
    pub zoho_api_domains: String,
    /// A fixed HTTP port, or 0 for any free one.
    pub port: u16,
    /// Replaces the template's queue visibility time-out (tests: seconds).
    pub visibility_timeout_secs: Option<i64>,
    /// Replaces the default first retry delay of the workers (tests: 1 s).
    pub retry_backoff_base_secs: Option<i32>,
    /// Further function environment (e.g. `OAUTH_STATE_TTL_SECS` for tests).
    pub extra_env: Vec<(String, String)>,
}

/// A running local system: resources provisioned, functions served, queues polled.
pub struct LocalSystem {
    pub stack: Stack,
    pub aws: aws_config::SdkConfig,
    pub deps: Arc<Deps>,
    pub runner: Runner,
}

impl LocalSystem {
    pub async fn start(options: LocalOptions) -> Result<Self, LocalError> {
        for var in [
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        ] {
            if std::env::var(var).map(|v| v.is_empty()).unwrap_or(true) {
                return Err(LocalError::NoLocalStack(var));
            }
        }
        let aws = aws_config::load_from_env().await;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let template = Template::load(&template_path())?;
        let parameters = BTreeMap::from([
            ("PublicBaseUrl".to_owned(), base_url.clone()),
            (
                "MetaAppSecretValue".to_owned(),
                options.meta_app_secret.clone(),
            ),
            (
                "MetaVerifyToken".to_owned(),
                options.meta_verify_token.clone(),
            ),
            ("ZohoClientId".to_owned(), options.zoho_client_id.clone()),
            (
                "ZohoClientSecretValue".to_owned(),
                options.zoho_client_secret.clone(),
            ),
        ]);
        let stack = provision::provision(
            &aws,
            template,
            &options.prefix,
            &parameters,
            options.visibility_timeout_secs,
        )
        .await?;
        let mut env = stack.env.clone();
        env.insert(
            "ZOHO_ACCOUNTS_URL".into(),
            options.zoho_accounts_url.clone(),
        );
        env.insert(
            "ZOHO_ACCOUNTS_SERVERS".into(),
            options.zoho_accounts_servers.clone(),
        );
        env.insert("ZOHO_API_DOMAINS".into(), options.zoho_api_domains.clone());
        env.extend(options.extra_env.iter().cloned());
        if let Some(base) = options.retry_backoff_base_secs {
            env.insert("RETRY_BACKOFF_BASE_SECS".into(), base.to_string());
        }
        let config = Config::from_lookup(|k| env.get(k).cloned())
            .map_err(|e| LocalError::Config(e.to_string()))?;
        let deps =
            Arc::new(Deps::build(config, &aws).map_err(|e| LocalError::Config(e.to_string()))?);
        let runner = Runner::start(
            &stack,
            deps.clone(),
            listener,
            aws_sdk_sqs::Client::new(&aws),
        )?;
        Ok(Self {
            stack,
            aws,
            deps,
            runner,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.runner.base_url
    }

    /// The operator key the stack generated (it lives in Secrets Manager).
    pub async fn operator_key(&self) -> Result<String, LocalError> {
        let id = self
            .stack
            .env
            .get("OPERATOR_KEY_SECRET_ID")
            .ok_or_else(|| LocalError::Config("no OPERATOR_KEY_SECRET_ID".into()))?;
        Ok(provision::secret_value(&self.aws, id).await?)
    }
}
