//! `GET /oauth/{crm}/callback` with arbitrary query strings and cookies:
//! no connection is ever stored without the genuine signed state of a flow
//! and the cookie of the browser that started it; every refusal is a clear
//! 4xx.

use lambda_http::Body;
use proptest::prelude::*;
use shared::handlers::oauth;

use super::{Checked, OWNER_TOKEN, Violation, answer, clear_refusal, ensure, harness};

#[derive(Debug, Clone)]
pub enum StateChoice {
    Missing,
    /// The state the flow's start gave.
    Genuine,
    /// The flow's nonce with another signature.
    ForgedSignature(String),
    /// The flow's signature on another nonce.
    OtherNonce(String),
    /// Anything at all.
    Raw(String),
}

#[derive(Debug, Clone)]
pub enum CookieChoice {
    None,
    Genuine,
    /// The flow's cookie name with another value.
    WrongValue(String),
    Raw(String),
}

#[derive(Debug, Clone)]
pub struct Callback {
    /// The CRM in the path: `zoho` (the flow's), `pipedrive`, or anything.
    pub crm: String,
    pub state: StateChoice,
    pub code: Option<String>,
    pub error: Option<String>,
    pub extra: Vec<(String, String)>,
    pub cookie: CookieChoice,
    /// Raw query text appended as is (URI characters only).
    pub raw: String,
}

pub fn callback() -> impl Strategy<Value = Callback> {
    let text = || prop_oneof![3 => any::<String>(), 1 => "[a-zA-Z0-9._-]{0,30}"];
    let state = prop_oneof![
        1 => Just(StateChoice::Missing),
        2 => Just(StateChoice::Genuine),
        2 => text().prop_map(StateChoice::ForgedSignature),
        2 => text().prop_map(StateChoice::OtherNonce),
        2 => text().prop_map(StateChoice::Raw),
    ];
    let cookie = prop_oneof![
        1 => Just(CookieChoice::None),
        2 => Just(CookieChoice::Genuine),
        1 => "[ -~]{0,40}".prop_map(CookieChoice::WrongValue),
        1 => "[ -~]{0,80}".prop_map(CookieChoice::Raw),
    ];
    let extra_key = prop_oneof![
        proptest::sample::select(
            &[
                "location",
                "accounts-server",
                "api_domain",
                "state",
                "code",
                "error"
            ][..]
        )
        .prop_map(str::to_owned),
        any::<String>(),
    ];
    (
        prop_oneof![
            3 => Just("zoho".to_owned()),
            1 => Just("pipedrive".to_owned()),
            1 => "[a-zA-Z0-9%._~-]{1,12}",
        ],
        state,
        prop::option::weighted(0.8, text()),
        prop::option::weighted(0.15, text()),
        proptest::collection::vec((extra_key, text()), 0..4),
        cookie,
        "[A-Za-z0-9%&=+._~-]{0,40}",
    )
        .prop_map(|(crm, state, code, error, extra, cookie, raw)| Callback {
            crm,
            state,
            code,
            error,
            extra,
            cookie,
            raw,
        })
}

/// Starts a flow as the owner: its signed state and its browser cookie.
fn start(case: &super::Case) -> Result<(String, String), Violation> {
    let h = harness();
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://hostile.test/oauth/zoho/start")
        .header("authorization", format!("Bearer {OWNER_TOKEN}"))
        .body(Body::Text(r#"{"connection":"organization"}"#.into()))
        .map_err(|e| Violation::Property(e.to_string()))?;
    let response = h
        .block_on(oauth::handle(&case.deps, request))
        .map_err(|e| Violation::Property(e.to_string()))?;
    let (status, body) = answer(&response);
    let broken = || Violation::Property(format!("the flow did not start: {status} {body}"));
    let value: serde_json::Value = serde_json::from_str(&body).map_err(|_| broken())?;
    let url = url::Url::parse(value["authorize_url"].as_str().unwrap_or_default())
        .map_err(|_| broken())?;
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(broken)?;
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(broken)?;
    Ok((state, cookie))
}

pub fn check(input: &Callback) -> Checked {
    let h = harness();
    let case = h.case();
    let (genuine_state, genuine_cookie) = start(&case)?;
    let writes_before = case.store.writes().len();
    let (nonce, signature) = genuine_state
        .split_once('.')
        .ok_or_else(|| Violation::Property("a state without its signature".into()))?;
    let state = match &input.state {
        StateChoice::Missing => None,
        StateChoice::Genuine => Some(genuine_state.clone()),
        StateChoice::ForgedSignature(s) if s != signature => Some(format!("{nonce}.{s}")),
        StateChoice::ForgedSignature(_) => Some(format!("{nonce}.x")),
        StateChoice::OtherNonce(n) if n != nonce => Some(format!("{n}.{signature}")),
        StateChoice::OtherNonce(_) => Some(format!("x.{signature}")),
        StateChoice::Raw(s) => Some(s.clone()),
    };
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in &input.extra {
        query.append_pair(key, value);
    }
    if let Some(state) = &state {
        query.append_pair("state", state);
    }
    if let Some(code) = &input.code {
        query.append_pair("code", code);
    }
    if let Some(error) = &input.error {
        query.append_pair("error", error);
    }
    let query = format!("{}{}", query.finish(), input.raw);
    let cookie_name = genuine_cookie.split('=').next().unwrap_or_default();
    let cookie = match &input.cookie {
        CookieChoice::None => None,
        CookieChoice::Genuine => Some(genuine_cookie.clone()),
        CookieChoice::WrongValue(v) => Some(format!("{cookie_name}={v}")),
        CookieChoice::Raw(v) => Some(v.clone()),
    };
    let mut builder = lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!(
            "https://hostile.test/oauth/{}/callback?{query}",
            input.crm
        ));
    if let Some(cookie) = cookie
        .as_deref()
        .and_then(|c| lambda_http::http::HeaderValue::from_str(c).ok())
    {
        builder = builder.header("cookie", cookie);
    }
    // A URI that HTTP cannot carry never reaches the function.
    let Ok(request) = builder.body(Body::Empty) else {
        return Ok(());
    };
    let response = h
        .block_on(oauth::handle(&case.deps, request))
        .map_err(|e| Violation::Property(format!("the handler failed: {e}")))?;
    let (status, body) = answer(&response);
    let stored: Vec<String> = case.store.writes()[writes_before..]
        .iter()
        .filter(|w| **w != "take_oauth_state")
        .map(|w| (*w).to_owned())
        .collect();
    // Only the flow's own state, from its own browser, may go on to the
    // CRM (whose token server here is a closed port: nothing is granted).
    let genuine = state.as_deref() == Some(genuine_state.as_str())
        && cookie.as_deref() == Some(genuine_cookie.as_str());
    if !genuine && (!stored.is_empty() || case.store.connection_count() > 0) {
        return Err(Violation::StoredWithoutSignature(stored));
    }
    if genuine {
        ensure(case.store.connection_count() == 0 && status != 500, || {
            format!("a flow whose code exchange failed answered {status}: {body}")
        })
    } else {
        clear_refusal(status, &body)
    }
}
