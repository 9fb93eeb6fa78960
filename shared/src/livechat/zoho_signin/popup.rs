//! The sign-in popup's page, once Zoho sent the user back: the one-time
//! code goes to the widget that opened the popup, never to anyone else.

use lambda_http::{Body, Response};

use crate::handlers::http::HttpResponse;

/// What the popup shows once the callback has run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Popup {
    /// Hand `code` to the widget that began with `nonce`.
    SignedIn {
        code: String,
        nonce: String,
        crm_user_email: String,
    },
    /// The Zoho user has no personal connection: no code.
    NotConnected {
        nonce: String,
        crm_user_email: String,
    },
}

/// The popup's one script. It posts to its opener with our origin as the
/// target, so the browser delivers the message only to a window on our
/// origin — the widget — and drops it for any other page that opened the
/// popup. When the opener is ours the popup closes; otherwise (a strict
/// opener policy on the way cut the link, or a foreign page opened it) it
/// shows the code for the user to paste into the widget themselves.
const POPUP_JS: &str = r#"(function () {
  var d = document.body.dataset;
  var opener = window.opener && !window.opener.closed ? window.opener : null, ours = false;
  // Reading a foreign window's location throws.
  try { ours = !!opener && opener.location.origin === location.origin; } catch (e) { ours = false; }
  if (opener) {
    opener.postMessage(d.code ? { type: "zoho-live-code", code: d.code, nonce: d.nonce }
                              : { type: "zoho-live-code", nonce: d.nonce, notConnected: true }, location.origin);
  }
  if (!d.code) { return; }
  if (ours) { window.close(); return; }
  document.getElementById("handoff").hidden = false;
  document.getElementById("copy").addEventListener("click", function () {
    if (navigator.clipboard) { navigator.clipboard.writeText(d.code); }
  });
})();"#;

const POPUP_CSS: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#1d2939}h1{font-size:1.2rem}code{background:#f2f4f7;padding:0 .25rem;word-break:break-all}";

/// The popup's page: its script and style allowed by their hashes only,
/// never framed, never cached, and no referrer for the links on it (the
/// URL holds Zoho's code and our state).
pub fn page(popup: &Popup) -> HttpResponse {
    let (status, data, body) = match popup {
        Popup::SignedIn {
            code,
            nonce,
            crm_user_email,
        } => (
            200,
            // Code and nonce are base64url: nothing to escape in an attribute.
            format!(r#" data-code="{code}" data-nonce="{nonce}""#),
            format!(
                "<h1>Signed in</h1><p>You are signed in to the WhatsApp chat as {}.</p>\
                 <p>Go back to Zoho CRM; the chat will open. You can close this window.</p>\
                 <div id=\"handoff\" hidden><p>If the WhatsApp panel in Zoho CRM still asks you \
                 to sign in, paste this code into it. Paste it nowhere else: it signs in as you, \
                 once, for two minutes.</p><p><code>{code}</code> \
                 <button id=\"copy\" type=\"button\">Copy</button></p></div>",
                html_escape::encode_text(crm_user_email)
            ),
        ),
        Popup::NotConnected {
            nonce,
            crm_user_email,
        } => (
            403,
            format!(r#" data-nonce="{nonce}""#),
            format!(
                "<h1>Connect Zoho first</h1><p>You are signed in to Zoho as {}, but you have no \
                 personal Zoho connection in the WhatsApp sync, and live chat shows chats only to \
                 users with one.</p><p>Connect your own Zoho account in the WhatsApp sync (its \
                 connect page, <code>POST /oauth/zoho/start</code> with \
                 <code>{{\"connection\": \"personal\"}}</code>), then open the chat again.</p>",
                html_escape::encode_text(crm_user_email)
            ),
        ),
    };
    let csp = format!(
        "default-src 'none'; script-src {}; style-src {}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
        super::super::page::sha256_source(POPUP_JS),
        super::super::page::sha256_source(POPUP_CSS),
    );
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>WhatsApp chat sign-in</title>\
         <style>{POPUP_CSS}</style></head><body{data}>{body}<script>{POPUP_JS}</script></body></html>"
    );
    Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("content-security-policy", csp)
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("x-content-type-options", "nosniff")
        .body(Body::Text(html))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html_of(page: &HttpResponse) -> &str {
        let Body::Text(html) = page.body() else {
            panic!("a text body")
        };
        html
    }

    #[test]
    fn the_popup_allows_exactly_its_own_script_and_escapes_the_crm_user() {
        let signed_in = page(&Popup::SignedIn {
            code: "c0de".into(),
            nonce: "n".repeat(22),
            crm_user_email: "bruno@acme.example".into(),
        });
        assert_eq!(signed_in.status(), 200);
        let csp = signed_in.headers()["content-security-policy"]
            .to_str()
            .expect("ascii");
        assert!(csp.contains(&super::super::super::page::sha256_source(POPUP_JS)));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-inline"));
        let html = html_of(&signed_in);
        assert!(html.contains(&format!("<script>{POPUP_JS}</script>")));
        assert!(html.contains(r#"data-code="c0de""#));
        assert!(
            html.contains(r#"<div id="handoff" hidden>"#),
            "the code for pasting shows only when no window of ours opened the popup"
        );
        let inline_handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_alphabetic).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!inline_handler, "no inline handlers");
        let refused = page(&Popup::NotConnected {
            nonce: "n".repeat(22),
            crm_user_email: "<b>x@y</b>".into(),
        });
        assert_eq!(refused.status(), 403);
        let html = html_of(&refused);
        assert!(html.contains("&lt;b&gt;x@y&lt;/b&gt;"));
        assert!(!html.contains("data-code"), "never a code");
    }

    #[test]
    fn the_code_is_posted_only_to_our_own_origin() {
        assert!(POPUP_JS.contains("}, location.origin);"));
        assert!(!POPUP_JS.contains("\"*\""), "never to any origin");
        assert!(POPUP_JS.contains(&format!("type: \"{}\"", super::super::MESSAGE_TYPE)));
    }
}
