//! `graph-sandbox --port <p> [--token <t>]... [--url-lifetime-secs <s>] [--file-size-as-number]`
//! Runs the Graph API media sandbox for the local demo until SIGTERM / ctrl-c.
//! Media are seeded over HTTP: `POST /__sandbox/media?id=…&mime_type=…`.

use std::process::ExitCode;

use graph_sandbox::{FileSizeFormat, GraphSandbox, GraphSandboxConfig};

const USAGE: &str = "usage: graph-sandbox --port <p> [--token <t>]... [--url-lifetime-secs <s>] \
[--file-size-as-number]";

fn parse_args(args: &[String]) -> Result<GraphSandboxConfig, String> {
    let mut cfg = GraphSandboxConfig::default();
    let mut tokens = Vec::new();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => cfg.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--token" => tokens.push(value()?),
            "--url-lifetime-secs" => {
                let s: u64 = value()?.parse().map_err(|e| format!("{flag}: {e}"))?;
                cfg.url_lifetime = std::time::Duration::from_secs(s);
            }
            "--file-size-as-number" => cfg.file_size_format = FileSizeFormat::Number,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    // Given tokens replace the default one rather than adding to it.
    if !tokens.is_empty() {
        cfg.access_tokens = tokens;
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> ExitCode {
    sandbox_kit::run_binary(
        "graph-sandbox",
        parse_args,
        GraphSandbox::start,
        |handle| handle.base_url(),
        async |handle| handle.shutdown().await,
    )
    .await
}
