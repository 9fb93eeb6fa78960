//! The live-chat page the CRMs frame: one dependency-light HTML page
//! (`page/live.html`, with its style and script inlined from `page/live.css`
//! and `page/live.js`), served by the `api` function at `GET /live/pipedrive`
//! (a Pipedrive custom panel / floating window) and `GET /live/zoho` (a Zoho
//! CRM related-list widget), each with its CRM's SDK, vendored unchanged and
//! served from `GET /live/sdk/<file>` (no CDN: the page's script sources are
//! ours alone).
//!
//! The inline style and script are allowed by their SHA-256 hashes, never by
//! `'unsafe-inline'`; `frame-ancestors` names the CRMs' origins, plus any
//! origins in `LIVE_EXTRA_FRAME_ANCESTORS` (space separated; for local hosts
//! such as the browser tests' stand-ins for the CRMs — not set in the
//! template).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lambda_http::{Body, Response};
use sha2::{Digest, Sha256};

use crate::handlers::http::HttpResponse;

const HTML: &str = include_str!("page/live.html");
const CSS: &str = include_str!("page/live.css");
const JS: &str = include_str!("page/live.js");

/// A CRM's SDK, vendored (see each file's first comment for its origin).
struct Sdk {
    file: &'static str,
    source: &'static str,
}

const PIPEDRIVE_SDK: Sdk = Sdk {
    file: "pipedrive-app-extensions-sdk-0.15.1.umd.js",
    source: include_str!("page/sdk/pipedrive-app-extensions-sdk-0.15.1.umd.js"),
};
const ZOHO_SDK: Sdk = Sdk {
    file: "zoho-embedded-app-sdk-1.min.js",
    source: include_str!("page/sdk/zoho-embedded-app-sdk-1.min.js"),
};

/// The CRMs that frame the page: path word, name shown, SDK.
fn crm_page(crm: &str) -> Option<(&'static str, &'static str, &'static Sdk)> {
    match crm {
        "pipedrive" => Some(("pipedrive", "Pipedrive", &PIPEDRIVE_SDK)),
        "zoho" => Some(("zoho", "Zoho", &ZOHO_SDK)),
        _ => None,
    }
}

/// Where Pipedrive and Zoho CRM (every data centre) frame extension pages.
pub const CRM_FRAME_ANCESTORS: &[&str] = &[
    "https://*.pipedrive.com",
    "https://*.zoho.com",
    "https://*.zoho.eu",
    "https://*.zoho.in",
    "https://*.zoho.com.au",
    "https://*.zoho.jp",
    "https://*.zohocloud.ca",
];

/// The environment variable naming extra frame ancestors (local only).
pub const EXTRA_ANCESTORS_ENV: &str = "LIVE_EXTRA_FRAME_ANCESTORS";

/// Extra origins from `LIVE_EXTRA_FRAME_ANCESTORS`: only `http(s)://host[:port]`
/// words, so nothing can smuggle another directive into the header.
pub fn extra_ancestors_from_env() -> Vec<String> {
    std::env::var(EXTRA_ANCESTORS_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .filter(|o| is_origin(o))
        .map(str::to_owned)
        .collect()
}

fn is_origin(word: &str) -> bool {
    let rest = word
        .strip_prefix("https://")
        .or_else(|| word.strip_prefix("http://"));
    rest.is_some_and(|r| {
        !r.is_empty()
            && r.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*'))
    })
}

/// A CSP source allowing exactly `text` (an inline script or style).
pub(crate) fn sha256_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The page for `crm` (`pipedrive` or `zoho`), framed by the CRMs and
/// `extra` origins; none for another word.
pub fn page(crm: &str, extra: &[String]) -> Option<HttpResponse> {
    let (crm, crm_name, sdk) = crm_page(crm)?;
    let ancestors: Vec<&str> = CRM_FRAME_ANCESTORS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .collect();
    let parents = ancestors.join(" ");
    // 'self' admits the vendored SDK; blob: the media previews the page
    // fetches with its session header.
    let csp = format!(
        "default-src 'self'; script-src 'self' {}; style-src {}; connect-src 'self'; img-src 'self' data: blob:; \
         base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors 'self' {parents}",
        sha256_source(JS),
        sha256_source(CSS),
    );
    let body = HTML
        .replace("{{CRM}}", crm)
        .replace("{{CRM_NAME}}", crm_name)
        .replace(
            "{{SDK}}",
            &format!(r#"<script src="/live/sdk/{}"></script>"#, sdk.file),
        )
        .replace("{{STYLE}}", CSS)
        .replace("{{SCRIPT}}", JS);
    Some(secured(
        Response::builder()
            .status(200)
            .header("content-type", "text/html; charset=utf-8")
            .header("content-security-policy", csp)
            .header("cache-control", "no-store"),
        body,
    ))
}

/// A vendored SDK by its file name; none for another name.
pub fn sdk(file: &str) -> Option<HttpResponse> {
    let sdk = [&PIPEDRIVE_SDK, &ZOHO_SDK]
        .into_iter()
        .find(|s| s.file == file)?;
    // The file name carries the version: a new version is a new name.
    Some(secured(
        Response::builder()
            .status(200)
            .header("content-type", "text/javascript; charset=utf-8")
            .header("cache-control", "public, max-age=86400"),
        sdk.source.to_owned(),
    ))
}

fn secured(builder: lambda_http::http::response::Builder, body: String) -> HttpResponse {
    builder
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer")
        .body(Body::Text(body))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_style_and_script_match_their_hashes() {
        let response =
            page("pipedrive", &["http://127.0.0.1:4000".into()]).expect("the Pipedrive page");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .expect("ascii");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains(&sha256_source(JS)), "{csp}");
        assert!(
            csp.ends_with("frame-ancestors 'self' https://*.pipedrive.com https://*.zoho.com https://*.zoho.eu https://*.zoho.in https://*.zoho.com.au https://*.zoho.jp https://*.zohocloud.ca http://127.0.0.1:4000"),
            "{csp}"
        );
        let Body::Text(html) = response.body() else {
            panic!("a text body")
        };
        assert!(html.contains(&format!("<script>{JS}</script>")));
        assert!(html.contains(&format!("<style>{CSS}</style>")));
        assert!(!html.contains("{{CRM"), "every placeholder filled");
        assert!(!html.contains("{{STYLE") && !html.contains("{{SDK"));
        assert!(
            html.contains(r#"<script src="/live/sdk/pipedrive-app-extensions-sdk-0.15.1.umd.js">"#)
        );
    }

    #[test]
    fn each_crm_gets_its_own_sdk_and_nothing_else_is_served() {
        let Some(zoho) = page("zoho", &[]) else {
            panic!("a Zoho page")
        };
        let Body::Text(html) = zoho.body() else {
            panic!("a text body")
        };
        assert!(html.contains("/live/sdk/zoho-embedded-app-sdk-1.min.js"));
        assert!(html.contains("Sign in with Zoho"));
        assert!(page("hubspot", &[]).is_none());
        assert!(sdk("zoho-embedded-app-sdk-1.min.js").is_some());
        assert!(sdk("../page.rs").is_none());
    }

    #[test]
    fn only_origins_are_taken_as_extra_ancestors() {
        assert!(is_origin("http://127.0.0.1:4000"));
        assert!(is_origin("https://acme.pipedrive.com"));
        assert!(!is_origin("'unsafe-inline'"));
        assert!(!is_origin("http://x; script-src *"));
        assert!(!is_origin("https://"));
    }
}
