//! `pipedrive-sandbox --port <p> --client-id <id> --client-secret <s> [...]`
//! Runs the Pipedrive sandbox for the local demo until SIGTERM / ctrl-c.

use std::process::ExitCode;
use std::time::Duration;

use pipedrive_sandbox::{PipedriveSandbox, PipedriveSandboxConfig, Plan};

const USAGE: &str = "usage: pipedrive-sandbox --port <p> --client-id <id> --client-secret <s> \
[--redirect-uri <uri>] [--plan lite|growth|premium|ultimate] [--seats <n>] [--daily-budget <tokens>] \
[--search-index-delay-ms <ms>] [--access-token-ttl-secs <s>] [--conversion-polls <n>] \
[--file-max-bytes <n>] [--scopes <a,b,...>] [--no-bursts] [--retry-after]";

fn parse_args(args: &[String]) -> Result<PipedriveSandboxConfig, String> {
    let mut cfg = PipedriveSandboxConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let num = |v: String| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--port" => cfg.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--client-id" => cfg.client_id = value()?,
            "--client-secret" => cfg.client_secret = value()?,
            "--redirect-uri" => cfg.redirect_uri = Some(value()?),
            "--plan" => {
                let v = value()?;
                cfg.company.plan =
                    Plan::parse(&v).ok_or_else(|| format!("--plan: unknown plan {v}"))?;
            }
            "--seats" => cfg.company.seats = num(value()?)?,
            "--daily-budget" => cfg.company.daily_budget = Some(num(value()?)?),
            "--search-index-delay-ms" => {
                cfg.search_index_delay = Duration::from_millis(num(value()?)?)
            }
            "--access-token-ttl-secs" => cfg.access_token_ttl = Duration::from_secs(num(value()?)?),
            "--conversion-polls" => {
                cfg.conversion_polls = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
            }
            "--file-max-bytes" => {
                cfg.file_max_bytes = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
            }
            "--scopes" => cfg.app_scopes = value()?.split(',').map(str::to_string).collect(),
            "--no-bursts" => cfg.bursts_enabled = false,
            "--retry-after" => cfg.retry_after_header = true,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    sandbox_kit::run_binary(
        "pipedrive-sandbox",
        parse_args,
        PipedriveSandbox::start,
        |handle| handle.base_url(),
        async |handle| handle.shutdown().await,
    )
    .await
}
