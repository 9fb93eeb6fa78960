//! The live-chat page in a browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, installed by `infra/local/stack.sh install`) frames
//! `GET /live/pipedrive` in a host page standing in for Pipedrive, which
//! answers the vendored app-extensions SDK's commands (`initialize`,
//! `get_signed_token`) as Pipedrive does. The page shows
//! the chat, sends a reply typed into it, and ticks it on as the Graph
//! sandbox's status webhooks arrive.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::TestSystem;
use fantoccini::{ClientBuilder, Locator};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

const COMPANY: u64 = 7_100_001;
/// The sandbox app's client secret, which signs extension tokens.
const APP_SECRET: &str = "pd-sandbox-secret";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn signed_token(user_id: u64) -> String {
    let exp = now() + 300;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({ "userId": user_id, "companyId": COMPANY, "exp": exp, "iat": exp - 300 }),
        &EncodingKey::from_secret(APP_SECRET.as_bytes()).expect("an HMAC key"),
    )
    .expect("encodes")
}

/// Pipedrive's part: frame the panel and answer the app-extensions SDK the
/// way Pipedrive does — each command arrives with a `MessagePort`, and the
/// answer (`{data}` or `{error}`) goes back on it.
fn host_page(panel_url: &str, panel_origin: &str, token: &str) -> String {
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
struct Driver(Child, u16);

impl Driver {
    fn start() -> Self {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipedrive_user_reads_and_answers_a_chat_in_the_framed_page() {
    // The stand-in for Pipedrive is on its own origin, which the page's
    // frame-ancestors admits only through the local-only extra origins.
    let host = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let host_origin = format!("http://{}", host.local_addr().expect("addr"));
    let system =
        TestSystem::start_with_env(&[("LIVE_EXTRA_FRAME_ANCESTORS", host_origin.as_str())]).await;

    // The page itself, as served: our CSP, no inline allowance by name.
    let page = system
        .http
        .get(system.url("/live/pipedrive?resource=person&selectedIds=1"))
        .send()
        .await
        .expect("answers");
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    for part in [
        "default-src 'self'",
        "frame-ancestors 'self' https://*.pipedrive.com https://*.zoho.com",
        "https://*.zohocloud.ca",
        host_origin.as_str(),
    ] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("Connect Pipedrive")
    );

    let (_, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.PAGE1")
        .await;

    let base = system.url("");
    let panel_origin = base.trim_end_matches('/').to_owned();
    let panel_url = format!(
        "{panel_origin}/live/pipedrive?id=7f1c2d9e-panel&resource=person&view=details&selectedIds={}&userId=11001&companyId={COMPANY}&theme=light",
        person["id"]
    );
    let html = host_page(&panel_url, &panel_origin, &signed_token(11_001));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let html = html.clone();
            async move { axum::response::Html(html) }
        }),
    );
    tokio::spawn(async move { axum::serve(host, app).await });

    let driver = Driver::start();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=420,860"] }),
    );
    let webdriver = format!("http://127.0.0.1:{}", driver.1);
    let client = {
        let mut tries = 0;
        loop {
            match ClientBuilder::rustls()
                .expect("rustls")
                .capabilities(caps.clone())
                .connect(&webdriver)
                .await
            {
                Ok(c) => break c,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver session: {e}"),
            }
        }
    };
    let outcome = async {
        client.goto(&format!("{host_origin}/")).await?;
        client.enter_frame(0).await?;
        let wait = Duration::from_secs(30);
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::XPath(
                "//li[contains(@class,'inbound')][contains(., 'Can I visit on Friday?')]",
            ))
            .await?;
        let window = client.find(Locator::Id("window")).await?.text().await?;
        assert!(window.starts_with("Window closes in 2"), "{window}");

        let text = client.find(Locator::Id("text")).await?;
        text.send_keys("Yes, Friday 10:00 works").await?;
        client.find(Locator::Id("send")).await?.click().await?;
        system
            .eventually("the reply to reach WhatsApp", || async {
                let texts: Vec<String> = system
                    .graph
                    .sent_messages()
                    .into_iter()
                    .filter(|m| m.body["type"] == "text")
                    .map(|m| m.body["text"]["body"].to_string())
                    .collect();
                match texts.as_slice() {
                    [one] if one.contains("Friday 10:00 works") => Ok(()),
                    other => Err(format!("sent {other:?}")),
                }
            })
            .await;
        // Delivered (or already read): the status webhooks tick it on.
        client
            .wait()
            .at_most(wait)
            .for_element(Locator::XPath(
                "//li[contains(@class,'outbound')][contains(., 'Friday 10:00 works')]\
                 //span[@class='ticks'][@data-status='delivered' or @data-status='read']",
            ))
            .await?;
        // The panel as Pipedrive shows it: the framed page, whole.
        client.enter_parent_frame().await?;
        let png = client
            .find(Locator::Id("panel"))
            .await?
            .screenshot()
            .await?;
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the target dir")
            .join("live-chat-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join("pipedrive.png"), png).expect("screenshot written");
        // One send, however the page was used.
        assert_eq!(
            system
                .graph
                .sent_messages()
                .iter()
                .filter(|m| m.body["type"] == "text")
                .count(),
            1
        );
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    drop(driver);
    outcome.expect("the browser steps");
}
