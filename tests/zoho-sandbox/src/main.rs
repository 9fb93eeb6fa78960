//! `zoho-sandbox --port <p> --client-id <id> --client-secret <s> [--location us]`
//! Runs the Zoho CRM sandbox for the local demo until SIGTERM / ctrl-c.

use std::process::ExitCode;

use zoho_sandbox::{SandboxConfig, ZohoSandbox};

const USAGE: &str = "usage: zoho-sandbox --port <p> --client-id <id> --client-secret <s> [--location us] \
[--redirect-uri <uri>]... [--search-index-delay-ms <ms>] [--access-token-ttl-secs <s>]";

fn parse_args(args: &[String]) -> Result<SandboxConfig, String> {
    let mut cfg = SandboxConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => cfg.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--client-id" => cfg.client_id = value()?,
            "--client-secret" => cfg.client_secret = value()?,
            "--location" => cfg.location = value()?,
            "--redirect-uri" => cfg.redirect_uris.push(value()?),
            "--search-index-delay-ms" => {
                let ms: u64 = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
                cfg.search_index_delay = std::time::Duration::from_millis(ms);
            }
            "--access-token-ttl-secs" => {
                let s: u64 = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
                cfg.access_token_ttl = std::time::Duration::from_secs(s);
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    sandbox_kit::run_binary(
        "zoho-sandbox",
        parse_args,
        ZohoSandbox::start,
        |handle| handle.base_url(),
        async |handle| handle.shutdown().await,
    )
    .await
}
