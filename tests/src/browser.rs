//! Headless Chromium for the live-chat page's browser tests and benchmark:
//! chromedriver (Debian's `chromium-driver`, installed by
//! `infra/local/stack.sh install`), a WebDriver session, and host pages that
//! stand in for the CRMs around the framed page.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::ClientBuilder;
use serde_json::json;

/// Pipedrive's part: frame the panel and answer the app-extensions SDK the
/// way Pipedrive does — each command arrives with a `MessagePort`, and the
/// answer (`{data}` or `{error}`) goes back on it.
pub fn pipedrive_host_page(panel_url: &str, panel_origin: &str, token: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Pipedrive (stand-in)</title></head>
<body style="margin:0;background:#f5f5f5">
<iframe id="panel" src="{panel_url}" style="width:360px;height:640px;border:0"></iframe>
<script>
window.sdkCommands = [];
window.addEventListener("message", function (e) {{
  var d = e.data, port = e.ports && e.ports[0];
  if (e.origin !== "{panel_origin}" || !d || !d.payload || !port) return;
  var p = d.payload;
  if (p.type !== "command") return;
  window.sdkCommands.push(p.command);
  if (p.command === "get_signed_token") port.postMessage({{ data: {{ token: "{token}" }} }});
  else port.postMessage({{ data: {{}} }});
}});
</script></body></html>"#
    )
}

/// chromedriver on a free port, stopped when dropped.
pub struct Driver(Child, u16);

impl Driver {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (infra/local/stack.sh install installs it)");
        Self(child, port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Serves each `(path, html)` on `listener`: the stand-in for the CRM's
/// pages.
pub fn serve_host(listener: tokio::net::TcpListener, pages: Vec<(&str, String)>) {
    let mut app = axum::Router::new();
    for (path, html) in pages {
        app = app.route(
            path,
            axum::routing::get(move || {
                let html = html.clone();
                async move { axum::response::Html(html) }
            }),
        );
    }
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// A headless Chromium session (and its chromedriver, kept alive by the
/// second value).
pub async fn browser() -> (fantoccini::Client, Driver) {
    let driver = Driver::start();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=420,860"] }),
    );
    let webdriver = format!("http://127.0.0.1:{}", driver.1);
    // The harness links rustls with both providers (ring for the functions'
    // code, AWS-LC for its own clients), so fantoccini's client needs the
    // process default named. A second call finds it set and changes nothing.
    let _ = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut tries = 0;
    loop {
        match ClientBuilder::rustls()
            .expect("rustls")
            .capabilities(caps.clone())
            .connect(&webdriver)
            .await
        {
            Ok(client) => return (client, driver),
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("chromedriver session: {e}"),
        }
    }
}
