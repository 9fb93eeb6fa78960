//! `zoho-sandbox --port <p> --client-id <id> --client-secret <s> [--location us]`
//! Runs the Zoho CRM sandbox for the local demo until SIGTERM / ctrl-c.

use std::io::Write;
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

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse_args(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let handle = match ZohoSandbox::start(cfg).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("zoho-sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    // The demo scripts wait for this exact line.
    let _ = writeln!(out, "zoho-sandbox listening on {}", handle.base_url());
    let _ = out.flush();
    wait_for_signal().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}
