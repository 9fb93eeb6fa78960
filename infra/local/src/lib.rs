//! The local stack: the template's resources on DynamoDB Local and moto, and
//! a runner that serves the functions the way API Gateway and the SQS event
//! source would. Used by the end-to-end tests and the demo.

pub mod iam;
pub mod lambda;
pub mod provision;
pub mod runner;
pub mod template;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shared::config::Config;
use shared::deps::Deps;

pub use provision::Stack;
pub use runner::Runner;
pub use template::Template;

use crate::lambda::{FunctionSpec, LocalFunction};
use crate::runner::Deployed;

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
    #[error(transparent)]
    Iam(#[from] iam::IamError),
    #[error("building the functions: {0}")]
    Build(String),
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
}

/// What a local system is made of.
#[derive(Clone)]
pub struct LocalOptions {
    /// The SAM template to run (default: the project's; tests use altered
    /// copies).
    pub template: Option<PathBuf>,
    /// Prefix of every table, queue and secret name: one system per prefix.
    pub prefix: String,
    pub meta_app_secret: String,
    pub meta_verify_token: String,
    pub zoho_client_id: String,
    pub zoho_client_secret: String,
    /// Where Zoho authorization starts (the sandbox's base URL locally;
    /// empty: the functions' default, Zoho's own).
    pub zoho_accounts_url: String,
    /// `location=url` pairs of the accounts servers callbacks may name
    /// (empty: Zoho's data centres).
    pub zoho_accounts_servers: String,
    /// The API domains token responses may name, comma-separated (empty:
    /// Zoho's).
    pub zoho_api_domains: String,
    /// The Pipedrive app's client credentials (empty: the template's
    /// "not-configured" defaults).
    pub pipedrive_client_id: String,
    pub pipedrive_client_secret: String,
    /// Pipedrive's OAuth server, also trusted as the API origin its token
    /// answers name (the sandbox's base URL locally; empty: Pipedrive's own).
    pub pipedrive_oauth_url: String,
    /// The `PublicBaseUrl` parameter (default: the local address), e.g. a
    /// tunnel's HTTPS URL when serving for a real CRM.
    pub public_base_url: Option<String>,
    /// A fixed HTTP port, or 0 for any free one.
    pub port: u16,
    /// Replaces the template's queue visibility time-out (tests: seconds).
    pub visibility_timeout_secs: Option<i64>,
    /// Replaces the default first retry delay of the workers (tests: 1 s).
    pub retry_backoff_base_secs: Option<i32>,
    /// Further function environment (e.g. `OAUTH_STATE_TTL_SECS` for tests).
    pub extra_env: Vec<(String, String)>,
}

/// Without the secrets (the Meta app secret and verify token, the Zoho
/// client secret).
impl std::fmt::Debug for LocalOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalOptions")
            .field("template", &self.template)
            .field("prefix", &self.prefix)
            .field("zoho_client_id", &self.zoho_client_id)
            .field("zoho_accounts_url", &self.zoho_accounts_url)
            .field("zoho_accounts_servers", &self.zoho_accounts_servers)
            .field("zoho_api_domains", &self.zoho_api_domains)
            .field("pipedrive_client_id", &self.pipedrive_client_id)
            .field("pipedrive_oauth_url", &self.pipedrive_oauth_url)
            .field("public_base_url", &self.public_base_url)
            .field("port", &self.port)
            .field("visibility_timeout_secs", &self.visibility_timeout_secs)
            .field("retry_backoff_base_secs", &self.retry_backoff_base_secs)
            .finish_non_exhaustive()
    }
}

/// A running local system: resources provisioned, functions served, queues polled.
pub struct LocalSystem {
    pub stack: Stack,
    /// The local stack's administrator (tests and the demo look with it).
    pub aws: aws_config::SdkConfig,
    /// Dependencies built with every function's configuration and the
    /// administrator's credentials: a test's own view of the system. The
    /// functions never use it; each builds its own in its own process.
    pub deps: Arc<Deps>,
    /// Each function's credentials for its own role, by logical id.
    pub roles: BTreeMap<String, iam::RoleCredentials>,
    /// Each function's instances, by logical id.
    pub functions: BTreeMap<String, Arc<LocalFunction>>,
    pub runner: Runner,
}

/// Executables of the template's functions, by binary name: in
/// `LOCAL_STACK_BIN_DIR`, else in the cargo target directory this program
/// runs from (`cargo build` makes them; the test and demo commands run it
/// first). Binaries older than the code they are built from are refused, so
/// a test never runs yesterday's function.
fn function_binaries(names: &[String]) -> Result<BTreeMap<String, PathBuf>, LocalError> {
    let dir = match std::env::var_os("LOCAL_STACK_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe()?;
            exe.ancestors()
                .skip(1)
                .find(|dir| names.iter().all(|n| dir.join(n).is_file()))
                .map(Path::to_path_buf)
                .ok_or_else(|| {
                    LocalError::Build(format!(
                        "no built {} next to {}: run `cargo build` first (the local stack runs the functions' own binaries)",
                        names.join(", "),
                        exe.display()
                    ))
                })?
        }
    };
    let binaries: BTreeMap<String, PathBuf> =
        names.iter().map(|n| (n.clone(), dir.join(n))).collect();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // (Cargo.lock is left out: cargo does not relink a binary whose own
    // dependencies did not change with it.)
    let newest_source = ["shared/src", "shared/Cargo.toml", "functions"]
        .iter()
        .filter_map(|p| newest_change(&workspace.join(p)))
        .max();
    for (name, path) in &binaries {
        let built = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| LocalError::Build(format!("{}: {e}", path.display())))?;
        if newest_source.is_some_and(|source| source > built) {
            return Err(LocalError::Build(format!(
                "{} is older than the code it is built from: run `cargo build` first",
                path.display()
            )));
        }
        tracing::debug!(function = %name, path = %path.display(), "function binary");
    }
    Ok(binaries)
}

/// The newest modification time of a file or of any file under a directory.
fn newest_change(path: &Path) -> Option<std::time::SystemTime> {
    let metadata = std::fs::metadata(path).ok()?;
    if !metadata.is_dir() {
        return metadata.modified().ok();
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| newest_change(&entry.path()))
        .max()
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
        let template_file = options.template.clone().unwrap_or_else(template_path);
        let template = Template::load(&template_file)?;
        let mut parameters = BTreeMap::from([
            (
                "PublicBaseUrl".to_owned(),
                options
                    .public_base_url
                    .clone()
                    .unwrap_or_else(|| base_url.clone()),
            ),
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
        for (parameter, value) in [
            ("PipedriveClientId", &options.pipedrive_client_id),
            (
                "PipedriveClientSecretValue",
                &options.pipedrive_client_secret,
            ),
        ] {
            if !value.is_empty() {
                parameters.insert(parameter.to_owned(), value.clone());
            }
        }
        let region = aws
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "us-east-1".into());
        let stack = provision::provision(
            &aws,
            template,
            &options.prefix,
            &parameters,
            options.visibility_timeout_secs,
        )
        .await?;
        let roles = iam::function_roles(&stack, &template_file, &region).await?;
        let names: Vec<String> = stack
            .template
            .functions
            .iter()
            .map(|f| f.binary.clone())
            .collect();
        let binaries = function_binaries(&names)?;

        // What the local stack sets beyond the template: where the AWS
        // services and the CRM and Graph sandboxes are, and test knobs.
        let mut overrides: BTreeMap<String, String> = [
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        ]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), std::env::var(k).ok()?)))
        .collect();
        for (variable, value) in [
            ("ZOHO_ACCOUNTS_URL", &options.zoho_accounts_url),
            ("ZOHO_ACCOUNTS_SERVERS", &options.zoho_accounts_servers),
            ("ZOHO_API_DOMAINS", &options.zoho_api_domains),
            ("PIPEDRIVE_OAUTH_URL", &options.pipedrive_oauth_url),
            ("PIPEDRIVE_EXTRA_API_ORIGIN", &options.pipedrive_oauth_url),
        ] {
            if !value.is_empty() {
                overrides.insert(variable.into(), value.clone());
            }
        }
        overrides.extend(options.extra_env.iter().cloned());
        if let Some(base) = options.retry_backoff_base_secs {
            overrides.insert("RETRY_BACKOFF_BASE_SECS".into(), base.to_string());
        }

        let mut functions = BTreeMap::new();
        let mut everything = overrides.clone();
        for def in &stack.template.functions {
            let role = roles.get(&def.logical_id).ok_or_else(|| {
                LocalError::Config(format!(
                    "the SAM translation gave {} no role",
                    def.logical_id
                ))
            })?;
            let binary = binaries.get(&def.binary).ok_or_else(|| {
                LocalError::Build(format!("cargo built no binary named {}", def.binary))
            })?;
            let name = format!("{}-{}", options.prefix, def.logical_id);
            let mut env = stack.function_env(def)?;
            everything.extend(env.clone());
            env.extend(overrides.clone());
            env.extend(lambda_environment(
                &options.prefix,
                &name,
                def,
                binary,
                &region,
                role,
            ));
            let max_instances = if def.sqs_trigger.is_some() {
                1 // one poller, one batch at a time
            } else {
                HTTP_INSTANCES
            };
            let function = Arc::new(LocalFunction::new(FunctionSpec {
                name,
                binary: binary.clone(),
                env,
                timeout: Duration::from_secs(def.timeout_secs),
                max_instances,
            }));
            functions.insert(
                def.logical_id.clone(),
                Deployed {
                    def: def.clone(),
                    function,
                },
            );
        }
        let config = Config::from_lookup(|k| everything.get(k).cloned())
            .map_err(|e| LocalError::Config(e.to_string()))?;
        let deps =
            Arc::new(Deps::build(config, &aws).map_err(|e| LocalError::Config(e.to_string()))?);
        let handles = functions
            .iter()
            .map(|(id, deployed)| (id.clone(), deployed.function.clone()))
            .collect();
        let runner = Runner::start(&stack, functions, listener, aws_sdk_sqs::Client::new(&aws))?;
        Ok(Self {
            stack,
            aws,
            deps,
            roles,
            functions: handles,
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
            .secret_ids
            .get("OperatorKeySecret")
            .ok_or_else(|| LocalError::Config("the template has no OperatorKeySecret".into()))?;
        Ok(provision::secret_value(&self.aws, id).await?)
    }

    /// AWS clients' configuration with a function's own role credentials:
    /// what that function may do, and nothing more.
    pub fn aws_as(&self, function_logical_id: &str) -> Option<aws_config::SdkConfig> {
        let role = self.roles.get(function_logical_id)?;
        let credentials = aws_credential_types::Credentials::new(
            role.access_key_id.clone(),
            role.secret_access_key.clone(),
            Some(role.session_token.clone()),
            None,
            "local-stack-role",
        );
        Some(
            self.aws
                .to_builder()
                .credentials_provider(
                    aws_credential_types::provider::SharedCredentialsProvider::new(credentials),
                )
                .build(),
        )
    }
}

/// Concurrent instances of an HTTP function (Lambda scales out per request).
const HTTP_INSTANCES: usize = 8;

/// The variables Lambda itself sets in a function's environment.
fn lambda_environment(
    prefix: &str,
    name: &str,
    def: &template::FunctionDef,
    binary: &Path,
    region: &str,
    role: &iam::RoleCredentials,
) -> BTreeMap<String, String> {
    let task_root = binary
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    BTreeMap::from([
        ("AWS_LAMBDA_FUNCTION_NAME".into(), name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            def.memory_mb.to_string(),
        ),
        (
            // The template names each function's log group after the stack
            // and the binary (its LoggingConfig).
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{prefix}-{}", def.binary),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "local".into()),
        ("AWS_REGION".into(), region.to_owned()),
        ("AWS_DEFAULT_REGION".into(), region.to_owned()),
        ("AWS_ACCESS_KEY_ID".into(), role.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY".into(),
            role.secret_access_key.clone(),
        ),
        ("AWS_SESSION_TOKEN".into(), role.session_token.clone()),
        ("_HANDLER".into(), "bootstrap".into()),
        ("LAMBDA_TASK_ROOT".into(), task_root),
        ("TZ".into(), ":UTC".into()),
        ("LANG".into(), "en_US.UTF-8".into()),
        (
            "PATH".into(),
            "/usr/local/bin:/usr/bin/:/bin:/opt/bin".into(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_show_no_secret_when_debugged() {
        let options = LocalOptions {
            template: None,
            prefix: "t1".into(),
            meta_app_secret: "meta-secret".into(),
            meta_verify_token: "verify-secret".into(),
            zoho_client_id: "1000.CLIENT".into(),
            zoho_client_secret: "zoho-secret".into(),
            zoho_accounts_url: "http://127.0.0.1:1".into(),
            zoho_accounts_servers: "us=http://127.0.0.1:1".into(),
            zoho_api_domains: "http://127.0.0.1:1".into(),
            pipedrive_client_id: "pd-client".into(),
            pipedrive_client_secret: "pd-secret".into(),
            pipedrive_oauth_url: String::new(),
            public_base_url: None,
            port: 0,
            visibility_timeout_secs: None,
            retry_backoff_base_secs: None,
            extra_env: vec![("GRAPH_TOKEN".into(), "env-secret".into())],
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("1000.CLIENT"), "{shown}");
    }
}
