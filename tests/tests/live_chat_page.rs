//! The live-chat page in a browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, installed by `infra/local/stack.sh install`) frames
//! `GET /live/pipedrive` in a host page standing in for Pipedrive, which
//! answers the vendored app-extensions SDK's commands (`initialize`,
//! `get_signed_token`) as Pipedrive does, and `GET /live/zoho` in one
//! standing in for Zoho CRM (the embedded-app SDK's context and
//! `getCurrentUser()`), where the user signs in through the popup. On both
//! the page shows the chat, sends a reply typed into it and ticks it on as
//! the Graph sandbox's status webhooks arrive, reacts with an emoji, sends a
//! photo, and offers only templates once the window is closed.

use std::time::Duration;

use e2e::TestSystem;
use e2e::live::{
    PIPEDRIVE_ANA, PIPEDRIVE_APP_SECRET, PIPEDRIVE_COMPANY, pipedrive_extension_token, unix_now,
};
use fantoccini::Locator;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

/// A photo of a house (240×150 PNG).
const FRONT_DOOR_PNG: &[u8] = include_bytes!("../fixtures/front-door.png");

/// The element `locator` finds once it is there (30 s at most); a test
/// failure naming it otherwise.
async fn shown(client: &fantoccini::Client, locator: Locator<'_>) -> fantoccini::elements::Element {
    let what = format!("{locator:?}");
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(locator)
        .await
        .unwrap_or_else(|e| panic!("waited for {what}: {e}"))
}

/// The bodies of the messages the Graph sandbox was asked to send, of `kind`.
fn sent_of_type(system: &TestSystem, kind: &str) -> Vec<Value> {
    system
        .graph
        .sent_messages()
        .into_iter()
        .filter(|m| m.body["type"] == kind)
        .map(|m| m.body)
        .collect()
}

/// Saves a screenshot of the host page's frame `frame_id` (the page as the
/// CRM shows it) under `target/live-chat-screenshots/`.
async fn save_screenshot(
    client: &fantoccini::Client,
    frame_id: &str,
    name: &str,
) -> Result<(), fantoccini::error::CmdError> {
    let png = client
        .find(Locator::Id(frame_id))
        .await?
        .screenshot()
        .await?;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("live-chat-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    std::fs::write(dir.join(name), png).expect("screenshot written");
    Ok(())
}

/// Reacts 👍 to the contact's message `wamid` from its reaction button;
/// waits until the Graph sandbox was asked once and the page shows it.
async fn react_with_thumbs_up(
    client: &fantoccini::Client,
    system: &TestSystem,
    wamid: &str,
) -> Result<(), fantoccini::error::CmdError> {
    client
        .find(Locator::Css(&format!(
            "li.inbound[data-id='{wamid}'] button.react"
        )))
        .await?
        .click()
        .await?;
    client
        .find(Locator::Css(&format!(
            "li.inbound[data-id='{wamid}'] button[aria-label='React 👍']"
        )))
        .await?
        .click()
        .await?;
    system
        .eventually("the reaction to reach WhatsApp", || async {
            let reactions: Vec<_> = sent_of_type(system, "reaction");
            match reactions.as_slice() {
                [one]
                    if one["reaction"]["message_id"] == wamid
                        && one["reaction"]["emoji"] == "👍" =>
                {
                    Ok(())
                }
                other => Err(format!("sent {other:?}")),
            }
        })
        .await;
    shown(
        client,
        Locator::XPath(&format!(
            "//li[@data-id='{wamid}']//span[contains(@class,'reaction')][.='👍']"
        )),
    )
    .await;
    Ok(())
}

/// Sends the photo of a front door with the caption "The front door",
/// chosen through the attachment button's file input; waits until the
/// Graph sandbox was asked once and the page previews the photo itself.
async fn send_the_front_door(
    client: &fantoccini::Client,
    system: &TestSystem,
) -> Result<(), fantoccini::error::CmdError> {
    let photo = std::env::temp_dir().join(format!(
        "front-door-{}-{}.png",
        std::process::id(),
        unix_now()
    ));
    std::fs::write(&photo, FRONT_DOOR_PNG).expect("photo written");
    client
        .find(Locator::Id("text"))
        .await?
        .send_keys("The front door")
        .await?;
    client
        .execute("document.getElementById('file').hidden = false;", vec![])
        .await?;
    client
        .find(Locator::Id("file"))
        .await?
        .send_keys(&photo.display().to_string())
        .await?;
    client
        .execute("document.getElementById('file').hidden = true;", vec![])
        .await?;
    system
        .eventually("the photo to reach WhatsApp", || async {
            let images: Vec<_> = sent_of_type(system, "image");
            match images.as_slice() {
                [one] if one["image"]["caption"] == "The front door" => Ok(()),
                other => Err(format!("sent {other:?}")),
            }
        })
        .await;
    shown(
        client,
        Locator::XPath(
            "//li[contains(@class,'outbound')][contains(., 'The front door')]//img[@class='preview']",
        ),
    )
    .await;
    // The preview is the photo itself, fetched with the session.
    system
        .eventually("the photo's preview to load", || async {
            let width = client
                .execute(
                    "var i = document.querySelector('li.outbound img.preview'); return i ? i.naturalWidth : 0;",
                    vec![],
                )
                .await
                .map_err(|e| e.to_string())?;
            (width == json!(240))
                .then_some(())
                .ok_or(format!("width {width}"))
        })
        .await;
    let _ = std::fs::remove_file(&photo);
    Ok(())
}

/// In Bob's chat, whose window is closed: the composer offers templates
/// only, and `order_update` goes out once with the parameters Bob, #42.
async fn send_order_update_for_bob(
    client: &fantoccini::Client,
    system: &TestSystem,
) -> Result<(), fantoccini::error::CmdError> {
    shown(
        client,
        Locator::XPath("//li[contains(@class,'inbound')][contains(., 'order on its way')]"),
    )
    .await;
    assert_eq!(
        client.find(Locator::Id("window")).await?.text().await?,
        "Window closed"
    );
    assert!(
        client
            .find(Locator::Id("text"))
            .await?
            .prop("disabled")
            .await?
            .as_deref()
            == Some("true")
    );
    shown(
        client,
        Locator::XPath("//select[@id='template-picker']/option[.='order_update · en']"),
    )
    .await
    .click()
    .await?;
    let params = client
        .find_all(Locator::Css("#template-params input"))
        .await?;
    assert_eq!(params.len(), 2);
    params[0].clear().await?;
    params[0].send_keys("Bob").await?;
    params[1].clear().await?;
    params[1].send_keys("#42").await?;
    let preview = client
        .find(Locator::Id("template-preview"))
        .await?
        .text()
        .await?;
    assert_eq!(preview, "Hi Bob, your order #42 has been updated.");
    client
        .find(Locator::Id("template-send"))
        .await?
        .click()
        .await?;
    system
        .eventually("the template to reach WhatsApp", || async {
            let templates: Vec<_> = sent_of_type(system, "template");
            match templates.as_slice() {
                [one]
                    if one["template"]["name"] == "order_update"
                        && one["template"]["components"][0]["parameters"][1]["text"] == "#42" =>
                {
                    Ok(())
                }
                other => Err(format!("sent {other:?}")),
            }
        })
        .await;
    shown(
        client,
        Locator::XPath("//li[contains(@class,'outbound')][contains(., 'order_update')]"),
    )
    .await;
    Ok(())
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

    let (workspace, person) = system
        .pipedrive_chat_with_a_fresh_question("wamid.PAGE1")
        .await;

    let base = system.url("");
    let panel_origin = base.trim_end_matches('/').to_owned();
    let panel_url = format!(
        "{panel_origin}/live/pipedrive?id=7f1c2d9e-panel&resource=person&view=details&selectedIds={}&userId=11001&companyId={PIPEDRIVE_COMPANY}&theme=light",
        person["id"]
    );
    system
        .bob_wrote_two_days_ago("wamid.PAGEBOB", "Is my order on its way?")
        .await;
    let (bob, _) = system
        .wait_for_pipedrive_note("+447700900456", "order on its way")
        .await;
    system
        .give_the_number_its_business_account(&workspace)
        .await;
    let bob_url = panel_url.replace(
        &format!("selectedIds={}", person["id"]),
        &format!("selectedIds={}", bob["id"]),
    );
    let token =
        pipedrive_extension_token(Algorithm::HS256, PIPEDRIVE_APP_SECRET, PIPEDRIVE_ANA, 300);
    e2e::browser::serve_host(
        host,
        vec![
            (
                "/",
                e2e::browser::pipedrive_host_page(&panel_url, &panel_origin, &token),
            ),
            (
                "/bob",
                e2e::browser::pipedrive_host_page(&bob_url, &panel_origin, &token),
            ),
        ],
    );
    let (client, driver) = e2e::browser::browser().await;
    let outcome = async {
        client.goto(&format!("{host_origin}/")).await?;
        client.enter_frame(0).await?;
        shown(
            &client,
            Locator::XPath(
                "//li[contains(@class,'inbound')][contains(., 'Can I visit on Friday?')]",
            ),
        )
        .await;
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
        shown(
            &client,
            Locator::XPath(
                "//li[contains(@class,'outbound')][contains(., 'Friday 10:00 works')]\
                 //span[@class='ticks'][@data-status='delivered' or @data-status='read']",
            ),
        )
        .await;

        // A thumbs-up on Alice's question.
        react_with_thumbs_up(&client, &system, "wamid.PAGE1").await?;

        // A photo with a caption, chosen through the attachment button.
        send_the_front_door(&client, &system).await?;
        // The panel as Pipedrive shows it: the framed page, whole.
        client.enter_parent_frame().await?;
        save_screenshot(&client, "panel", "pipedrive.png").await?;

        // Bob's window is closed: the composer offers templates only, and
        // one goes out with its parameters.
        client.goto(&format!("{host_origin}/bob")).await?;
        client.enter_frame(0).await?;
        send_order_update_for_bob(&client, &system).await?;
        client.enter_parent_frame().await?;
        save_screenshot(&client, "panel", "pipedrive-template.png").await?;

        // One send each, however the page was used.
        assert_eq!(sent_of_type(&system, "text").len(), 1);
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    drop(driver);
    outcome.expect("the browser steps");
}

/// Zoho CRM's part: frame the widget with `serviceOrigin`, answer the
/// embedded-app SDK's `REGISTER` with `SET_CONTEXT` and the record's
/// `PageLoad`, and `getCurrentUser()` with `current_user` — as Zoho does,
/// and with nothing signed in it.
fn zoho_host_page(
    widget_url: &str,
    widget_origin: &str,
    lead_id: &str,
    current_user: &Value,
) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Zoho CRM (stand-in)</title></head>
<body style="margin:0;background:#f5f5f5">
<iframe id="widget" src="{widget_url}" style="width:360px;height:640px;border:0"></iframe>
<script>
var frame = document.getElementById("widget");
function answer(message) {{ frame.contentWindow.postMessage(message, "{widget_origin}"); }}
window.addEventListener("message", function (e) {{
  if (e.origin !== "{widget_origin}") return;
  var d = typeof e.data === "string" ? JSON.parse(e.data) : e.data;
  if (!d || d.type !== "SDK.EVENT") return;
  if (d.eventName === "REGISTER") {{
    answer({{ type: "FRAMEWORK.EVENT", eventName: "SET_CONTEXT", data: {{ uniqueID: "widget-1", model: {{}}, locale: "en_US" }} }});
    answer({{ type: "FRAMEWORK.EVENT", eventName: "PageLoad", data: {{ Entity: "Leads", EntityId: "{lead_id}" }} }});
  }} else if (d.eventName === "CRM_EVENT" && d.data && d.data.category === "CONFIG" && d.data.type === "CURRENT_USER") {{
    answer({{ type: "FRAMEWORK.EVENT", eventName: "EVENT_RESPONSE", promiseid: d.promiseid, data: {{ users: [{current_user}] }} }});
  }}
}});
</script></body></html>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoho_user_signs_in_from_the_widget_and_answers_a_lead() {
    let host = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let host_origin = format!("http://{}", host.local_addr().expect("addr"));
    let system =
        TestSystem::start_with_env(&[("LIVE_EXTRA_FRAME_ANCESTORS", host_origin.as_str())]).await;

    // Ana connects the organization, and so herself: her personal connection
    // is what the widget's sign-in finds.
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    system
        .graph
        .set_webhook(&system.url("/webhooks/whatsapp"), e2e::META_APP_SECRET);
    let asked_at = unix_now() - 60;
    system
        .post_webhook(&e2e::text_delivery(
            e2e::ALICE_WA_ID,
            "Alice",
            "wamid.ZPAGE1",
            asked_at,
            "Do you deliver to Porto?",
        ))
        .await;
    system
        .graph
        .record_inbound(e2e::PHONE_NUMBER_ID, e2e::ALICE_WA_ID, asked_at);
    let (lead, _) = system
        .wait_for_note_line("+447700900123", "deliver to Porto")
        .await;
    let lead_id = lead["id"].as_str().expect("a lead id").to_owned();
    system
        .bob_wrote_two_days_ago("wamid.ZPAGEBOB", "Is my order on its way?")
        .await;
    let (bob_lead, _) = system
        .wait_for_note_line("+447700900456", "order on its way")
        .await;
    let bob_lead_id = bob_lead["id"].as_str().expect("a lead id").to_owned();
    system
        .give_the_number_its_business_account(&workspace)
        .await;

    let panel_origin = system.url("").trim_end_matches('/').to_owned();
    let widget_url = format!(
        "{panel_origin}/live/zoho?serviceOrigin={}",
        url_encode(&host_origin)
    );
    // Zoho's own idea of who is looking: a hint the page only compares.
    let current_user =
        json!({ "id": e2e::ZOHO_ADMIN_ID, "full_name": "Ana Admin", "email": "ana@acme.example" });
    e2e::browser::serve_host(
        host,
        vec![
            (
                "/",
                zoho_host_page(&widget_url, &panel_origin, &lead_id, &current_user),
            ),
            (
                "/bob",
                zoho_host_page(&widget_url, &panel_origin, &bob_lead_id, &current_user),
            ),
        ],
    );
    let (client, driver) = e2e::browser::browser().await;
    let outcome = async {
        client.goto(&format!("{host_origin}/")).await?;
        client.enter_frame(0).await?;
        // Nothing is shown before the user signs in through our own flow.
        shown(&client, Locator::Id("sign-in-button"))
            .await
            .click()
            .await?;
        shown(
            &client,
            Locator::XPath(
                "//li[contains(@class,'inbound')][contains(., 'Do you deliver to Porto?')]",
            ),
        )
        .await;
        assert!(
            !client
                .find(Locator::Id("mismatch"))
                .await?
                .is_displayed()
                .await?,
            "signed in as the user Zoho shows"
        );
        let text = client.find(Locator::Id("text")).await?;
        text.send_keys("Yes, Porto in 2 days ").await?;
        // An emoji from the picker (chromedriver types no emoji itself).
        client
            .find(Locator::Id("emoji-toggle"))
            .await?
            .click()
            .await?;
        client
            .find(Locator::Css("#emoji button[aria-label='👍']"))
            .await?
            .click()
            .await?;
        client.find(Locator::Id("send")).await?.click().await?;
        shown(
            &client,
            Locator::XPath(
                "//li[contains(@class,'outbound')][contains(., 'Porto in 2 days')]\
                 //span[@class='ticks'][@data-status='delivered' or @data-status='read']",
            ),
        )
        .await;
        react_with_thumbs_up(&client, &system, "wamid.ZPAGE1").await?;
        send_the_front_door(&client, &system).await?;
        client.enter_parent_frame().await?;
        save_screenshot(&client, "widget", "zoho.png").await?;

        // Bob's lead, in a new widget, signed in again — this time the
        // sign-in window has no link back to the widget (as a strict
        // opener policy would cut it), so the user carries the code over
        // by hand. Then the composer offers templates only.
        client.goto(&format!("{host_origin}/bob")).await?;
        client.enter_frame(0).await?;
        client
            .execute(
                "window.open = function (url) { window.signInUrl = url; return {}; };",
                vec![],
            )
            .await?;
        shown(&client, Locator::Id("sign-in-button"))
            .await
            .click()
            .await?;
        let sign_in_url = client.execute("return window.signInUrl;", vec![]).await?;
        let sign_in_url = sign_in_url.as_str().expect("the popup's URL").to_owned();
        let widget_window = client.window().await?;
        let popup = client.new_window(true).await?;
        client.switch_to_window(popup.handle).await?;
        client.goto(&format!("{panel_origin}{sign_in_url}")).await?;
        let code = shown(&client, Locator::Css("#handoff code"))
            .await
            .text()
            .await?;
        assert!(
            client
                .find(Locator::Id("copy"))
                .await?
                .is_displayed()
                .await?
        );
        client.close_window().await?;
        client.switch_to_window(widget_window).await?;
        client.enter_frame(0).await?;
        shown(&client, Locator::Id("code-input"))
            .await
            .send_keys(&code)
            .await?;
        client
            .find(Locator::Css("#code-form button[type='submit']"))
            .await?
            .click()
            .await?;
        send_order_update_for_bob(&client, &system).await?;
        client.enter_parent_frame().await?;
        save_screenshot(&client, "widget", "zoho-template.png").await?;
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    drop(driver);
    outcome.expect("the browser steps");

    // Sent once, and in the lead's day note once with who sent it.
    let texts: Vec<_> = system
        .graph
        .sent_messages()
        .into_iter()
        .filter(|m| m.body["type"] == "text")
        .collect();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert_eq!(texts[0].body["text"]["body"], "Yes, Porto in 2 days 👍");
    system
        .wait_for_note_line("+447700900123", "→ ana@acme.example")
        .await;
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
