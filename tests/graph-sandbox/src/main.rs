//! `graph-sandbox --port <p> [--token <t>]... [--url-lifetime-secs <s>] [--file-size-as-number]
//! [--webhook-url <u> --app-secret <s>] [--window-errors-http]`
//! Runs the Graph API sandbox for the local demo until SIGTERM / ctrl-c.
//! Media are seeded over HTTP: `POST /__sandbox/media?id=…&mime_type=…`;
//! business numbers besides the default one with
//! `POST /__sandbox/phone-numbers?id=…&display_phone_number=…`; inbound
//! messages (the 24-hour window) with
//! `POST /__sandbox/inbound?phone_number_id=…&wa_id=…&timestamp=…`.

use std::process::ExitCode;

use graph_sandbox::{
    FileSizeFormat, GraphSandbox, GraphSandboxConfig, WebhookTarget, WindowErrorMode,
};

const USAGE: &str = "usage: graph-sandbox --port <p> [--token <t>]... [--url-lifetime-secs <s>] \
[--file-size-as-number] [--webhook-url <u> --app-secret <s>] [--window-errors-http]";

fn parse_args(args: &[String]) -> Result<GraphSandboxConfig, String> {
    let mut cfg = GraphSandboxConfig::default();
    let mut tokens = Vec::new();
    let (mut webhook_url, mut app_secret) = (None, None);
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
            "--webhook-url" => webhook_url = Some(value()?),
            "--app-secret" => app_secret = Some(value()?),
            "--window-errors-http" => cfg.window_error_mode = WindowErrorMode::HttpError,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    // Given tokens replace the default one rather than adding to it.
    if !tokens.is_empty() {
        cfg.access_tokens = tokens;
    }
    cfg.webhook = match (webhook_url, app_secret) {
        (Some(url), Some(app_secret)) => Some(WebhookTarget { url, app_secret }),
        (None, None) => None,
        _ => {
            return Err(format!(
                "--webhook-url and --app-secret go together\n{USAGE}"
            ));
        }
    };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tokens_replace_the_default() {
        let cfg = parse_args(&args(&["--port", "9", "--token", "a", "--token", "b"]))
            .expect("valid arguments");
        assert_eq!(cfg.port, 9);
        assert_eq!(cfg.access_tokens, vec!["a".to_owned(), "b".to_owned()]);
    }

    #[test]
    fn a_webhook_needs_its_secret() {
        let cfg = parse_args(&args(&["--webhook-url", "http://x/h", "--app-secret", "s"]))
            .expect("valid arguments");
        assert_eq!(cfg.webhook.map(|w| w.app_secret), Some("s".to_owned()));
        assert!(parse_args(&args(&["--webhook-url", "http://x/h"])).is_err());
    }

    #[test]
    fn unknown_flags_are_refused() {
        assert!(parse_args(&args(&["--nope"])).is_err());
        assert!(parse_args(&args(&["--port"])).is_err());
    }
}
