//! `infra/local/stack.sh serve`: the local stack as a server for real use —
//! every function of the template on one fixed port, against the real Zoho
//! and Graph APIs (or any others the environment names), so a developer can
//! put an HTTPS tunnel in front of it and try it with a Zoho developer org
//! and a WhatsApp test number.
//!
//! Environment (required): META_APP_SECRET, META_VERIFY_TOKEN,
//! ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, PUBLIC_BASE_URL (the tunnel's HTTPS
//! URL; register `<it>/oauth/zoho/callback` in the Zoho API console and
//! `<it>/webhooks/whatsapp` in the Meta app). Optional: SERVE_PORT (default
//! 3000), SERVE_PREFIX (default `serve<unix time>`: a fresh system each
//! start; the stack keeps everything in memory until it stops), ZOHO_ACCOUNTS_URL, ZOHO_ACCOUNTS_SERVERS, ZOHO_API_DOMAINS,
//! GRAPH_API_URL, GRAPH_API_VERSION, RUST_LOG.

use local_stack::{LocalOptions, LocalSystem};

fn required(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{name} is not set (see infra/local/src/bin/serve.rs)"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::deps::init_tracing();
    let optional = |name: &str| std::env::var(name).unwrap_or_default();
    let port: u16 = match std::env::var("SERVE_PORT") {
        Ok(port) => port
            .parse()
            .map_err(|_| format!("SERVE_PORT: not a port: {port}"))?,
        Err(_) => 3000,
    };
    let extra_env = ["GRAPH_API_URL", "GRAPH_API_VERSION"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect();
    let system = LocalSystem::start(LocalOptions {
        template: None,
        prefix: std::env::var("SERVE_PREFIX")
            .unwrap_or_else(|_| format!("serve{}", chrono::Utc::now().timestamp())),
        meta_app_secret: required("META_APP_SECRET")?,
        meta_verify_token: required("META_VERIFY_TOKEN")?,
        zoho_client_id: required("ZOHO_CLIENT_ID")?,
        zoho_client_secret: required("ZOHO_CLIENT_SECRET")?,
        zoho_accounts_url: optional("ZOHO_ACCOUNTS_URL"),
        zoho_accounts_servers: optional("ZOHO_ACCOUNTS_SERVERS"),
        zoho_api_domains: optional("ZOHO_API_DOMAINS"),
        pipedrive_client_id: optional("PIPEDRIVE_CLIENT_ID"),
        pipedrive_client_secret: optional("PIPEDRIVE_CLIENT_SECRET"),
        pipedrive_oauth_url: optional("PIPEDRIVE_OAUTH_URL"),
        public_base_url: Some(required("PUBLIC_BASE_URL")?),
        port,
        visibility_timeout_secs: None,
        retry_backoff_base_secs: None,
        extra_env,
    })
    .await?;
    let operator_key = system.operator_key().await?;
    println!(
        "serving every function of infra/template.yaml on {}",
        system.base_url()
    );
    println!("operator key (POST /api/workspaces): {operator_key}");
    println!("Ctrl-C stops (the table, queues and secrets stay until the stack stops)");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
