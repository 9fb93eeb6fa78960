//! Live chat from Zoho CRM's widget: signing in through Zoho in a popup
//! (the one-time code handed to the widget, redeemable only with the
//! widget's own nonce),
//! the chats a lead shows the user who signed in — read with their own
//! Zoho token — and templates prefilled from a record's fields, for Zoho
//! and Pipedrive.

use std::sync::Arc;

use e2e::{ALICE_WA_ID, TestSystem, ZOHO_BRUNO_ID, messages_delivery};
use graph_sandbox::SeedTemplate;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use shared::crypto::{pkce_challenge, random_token};
use shared::livechat::zoho_signin::{self, SessionAsk, SignIn, SignInStatus, SignedIn};
use shared::model::CrmKind;
use shared::store::Store;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The popup's page once Zoho sent the user back.
struct PopupPage {
    status: u16,
    csp: String,
    html: String,
}

impl PopupPage {
    /// A `data-…` attribute of the page's body.
    fn data(&self, name: &str) -> Option<String> {
        let marker = format!("data-{name}=\"");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')?;
        Some(self.html[start..start + end].to_owned())
    }

    fn script(&self) -> &str {
        let start = self
            .html
            .find("<script>")
            .map_or(0, |i| i + "<script>".len());
        let end = self.html.find("</script>").unwrap_or(start);
        &self.html[start..end]
    }
}

/// The widget opens the popup: `GET /oauth/zoho/live?nonce=…`; where it is
/// sent (Zoho's authorize URL).
async fn open_popup(system: &TestSystem, browser: &reqwest::Client, nonce: &str) -> String {
    let response = browser
        .get(system.url(&format!("/oauth/zoho/live?nonce={nonce}")))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("a Location")
        .to_owned()
}

/// The user approves at Zoho (the sandbox's authorizing user), and Zoho
/// sends the popup to our callback.
async fn through_zoho(
    system: &TestSystem,
    browser: &reqwest::Client,
    authorize: &str,
) -> PopupPage {
    let consent = system.http.get(authorize).send().await.expect("consent");
    assert_eq!(consent.status(), 302, "the sandbox approves and redirects");
    let callback = consent
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("a redirect")
        .to_owned();
    let page = browser.get(&callback).send().await.expect("callback");
    PopupPage {
        status: page.status().as_u16(),
        csp: page
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        html: page.text().await.unwrap_or_default(),
    }
}

/// The whole popup in the user's browser (the system's cookie-keeping
/// client); its page.
async fn sign_in(system: &TestSystem, nonce: &str) -> PopupPage {
    let authorize = open_popup(system, &system.http, nonce).await;
    through_zoho(system, &system.http, &authorize).await
}

/// `POST /api/live/zoho/session`.
async fn session(system: &TestSystem, body: Value) -> (u16, Value) {
    let response = system
        .http
        .post(system.url("/api/live/zoho/session"))
        .json(&body)
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A live-chat `GET` with a session.
async fn live_get(system: &TestSystem, session: &str, path: &str) -> (u16, Value) {
    let response = system
        .http
        .get(system.url(path))
        .header("x-live-session", session)
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A named template whose parameters a record can fill, beside the
/// sandbox's positional ones.
fn seed_named_template(system: &TestSystem) {
    system.graph.seed_template(
        SeedTemplate::new("sofa_offer", "en", "APPROVED", "MARKETING")
            .named()
            .with_body(
                "Dear {{name}}, hi {{first_name}}: {{company}} has a sofa for you. Reply to {{email}} or quote {{offer_code}}.",
                &["Maria Souza", "Maria", "Casa", "maria@casa.example", "SOFA10"],
            ),
    );
}

/// What `sofa_offer` is prefilled with from Maria's record, her company
/// named `company`.
fn maria_prefilled(company: &str) -> Vec<(String, Value)> {
    [
        ("name", json!("Maria Souza")),
        ("first_name", json!("Maria")),
        ("company", json!(company)),
        ("email", json!("maria@casa.example")),
        ("offer_code", Value::Null),
    ]
    .map(|(name, value)| (name.to_owned(), value))
    .to_vec()
}

/// The prefilled values of `template`'s parameters, by name.
fn prefill(listed: &Value, template: &str) -> Vec<(String, Value)> {
    listed["templates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["name"] == template)
        .and_then(|t| t["parameters"].as_array())
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_owned(),
                p["value"].clone(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zoho_user_signs_in_through_zoho_and_sees_only_the_leads_zoho_shows_them() {
    let system = TestSystem::start().await;
    // Ana owns the workspace and connects the organization; Alice writes,
    // and the sync makes her lead, owned by Ana.
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    let asked_at = now() - 60;
    system
        .post_webhook(&messages_delivery(
            ALICE_WA_ID,
            "Alice",
            &[("wamid.ZLIVE1", asked_at, "Is the sofa still for sale?")],
        ))
        .await;
    let (alice_lead, _) = system
        .wait_for_note_line("+447700900123", "still for sale")
        .await;
    let alice_lead = format!("Leads/{}", alice_lead["id"].as_str().expect("an id"));
    // Bruno, a member, connects his own Zoho account (Zoho user Bruno Lima).
    let (bruno_id, _) = system
        .personally_connected_member(&workspace, "bruno@acme.example")
        .await;

    // The widget's popup: to Zoho for the user and org scopes only.
    let nonce = random_token();
    let authorize = open_popup(&system, &system.http, &nonce).await;
    let scope = url::Url::parse(&authorize)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        scope.as_deref(),
        Some("ZohoCRM.users.READ,ZohoCRM.org.READ")
    );
    // Before Zoho sends the user back there is nothing to redeem, and a
    // nonce alone never asks for anything.
    let (status, body) = session(&system, json!({ "nonce": nonce })).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = session(&system, json!({ "code": random_token(), "nonce": nonce })).await;
    assert_eq!(status, 401);

    let page = through_zoho(&system, &system.http, &authorize).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let code = page.data("code").expect("a one-time code on the page");
    assert_eq!(page.data("nonce").as_deref(), Some(nonce.as_str()));
    assert!(page.script().contains("postMessage"), "{}", page.html);
    assert!(
        page.script().contains("location.origin"),
        "only to our origin"
    );
    // The page's one script is allowed by its hash, nothing inline else.
    let hash = pkce_challenge(page.script())
        .replace('-', "+")
        .replace('_', "/");
    assert!(
        page.csp.contains(&format!("'sha256-{hash}='")),
        "{}",
        page.csp
    );
    assert!(!page.csp.contains("unsafe-inline"), "{}", page.csp);

    // The sign-in's own grant was given back at Zoho; Bruno's connection's
    // grant lives on.
    let grants = system.sandbox.grants_of("bruno@acme.example");
    let sign_in_grant = grants.last().expect("the sign-in's grant");
    assert_eq!(
        sign_in_grant.scopes,
        ["ZohoCRM.users.READ", "ZohoCRM.org.READ"]
    );
    assert!(sign_in_grant.revoked, "the sign-in's grant is revoked");
    assert!(
        grants.iter().filter(|g| !g.revoked).count() == 1,
        "only the personal connection's grant is live: {grants:?}"
    );

    // The code with another sign-in's nonce is nothing (and not spent).
    let (status, body) = session(&system, json!({ "code": code, "nonce": random_token() })).await;
    assert_eq!(status, 401, "{body}");
    // The code with its nonce, once: a session for Bruno, with who he is in Zoho.
    let (status, started) = session(&system, json!({ "code": code, "nonce": nonce })).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["workspace_id"], workspace.id.as_str());
    assert_eq!(started["user_id"], bruno_id.as_str());
    assert_eq!(started["crm_user_id"], ZOHO_BRUNO_ID);
    assert_eq!(started["crm_user_name"], "Bruno Lima");
    assert_eq!(started["crm_user_email"], "bruno@acme.example");
    assert!(started["expires_at"].as_i64() > Some(now()));
    let live = started["session"].as_str().expect("a session").to_owned();
    let (status, body) = session(&system, json!({ "code": code, "nonce": nonce })).await;
    assert_eq!(status, 401, "used: {body}");

    // A page that lures Bruno into signing in with its own nonce learns
    // nothing by it: the code goes only to a window on our origin (or
    // before Bruno's eyes), and the nonce alone redeems nothing.
    let lure = random_token();
    let page = sign_in(&system, &lure).await;
    assert_eq!(page.status, 200, "{}", page.html);
    for guess in [
        json!({ "nonce": lure }),
        json!({ "code": "", "nonce": lure }),
        json!({ "code": random_token(), "nonce": lure }),
    ] {
        let (status, body) = session(&system, guess.clone()).await;
        assert!(status == 400 || status == 401, "{guess}: {status} {body}");
    }
    assert!(
        page.script()
            .contains("opener.location.origin === location.origin"),
        "the popup closes without showing the code only for a window of ours"
    );

    // Bruno sees Alice's lead while Zoho shows it to him…
    let chats = format!("/api/live/chats?record={alice_lead}");
    let (status, view) = live_get(&system, &live, &chats).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["chats"][0]["contact"], "+447700900123");
    assert_eq!(
        view["chats"][0]["messages"][0]["text"],
        "Is the sofa still for sale?"
    );
    // …a forged id or module shows nothing…
    for forged in ["Leads/5725767000009999999", "Spaceships/1"] {
        let (status, body) =
            live_get(&system, &live, &format!("/api/live/chats?record={forged}")).await;
        assert_eq!(status, 404, "{forged}: {body}");
    }
    // …and once Leads are private to their owners, not Ana's lead, but his own.
    system.sandbox.restrict_to_owners("Leads");
    let (status, body) = live_get(&system, &live, &chats).await;
    assert_eq!(status, 404, "{body}");
    let brunos = system
        .sandbox
        .insert_record(
            "Leads",
            json!({
                "First_Name": "Maria", "Last_Name": "Souza", "Company": "Casa Souza",
                "Email": "maria@casa.example", "Mobile": "+447700900777",
            }),
        )
        .expect("Bruno's lead");
    let (status, body) = live_get(
        &system,
        &live,
        &format!("/api/live/chats?record=Leads/{brunos}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["numbers"], json!(["+447700900777"]));
    assert_eq!(body["chats"], json!([]), "no chat yet");

    // Templates for a chat, prefilled from Bruno's lead where names match.
    system
        .give_the_number_its_business_account(&workspace)
        .await;
    seed_named_template(&system);
    let templates = format!(
        "/api/live/chats/{}/templates",
        e2e::chat_key_param(ALICE_WA_ID)
    );
    let (status, plain) = live_get(&system, &live, &templates).await;
    assert_eq!(status, 200, "{plain}");
    assert!(
        plain["templates"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["parameters"].is_u64())),
        "without a record, the answer is as it was (a count): {plain}"
    );
    let (status, listed) = live_get(
        &system,
        &live,
        &format!("{templates}?record=Leads/{brunos}"),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        prefill(&listed, "sofa_offer"),
        maria_prefilled("Casa Souza")
    );
    assert_eq!(
        prefill(&listed, "order_update"),
        [("1".to_owned(), Value::Null), ("2".to_owned(), Value::Null)],
        "positional parameters stay empty"
    );
    let (status, body) =
        live_get(&system, &live, &format!("{templates}?record={alice_lead}")).await;
    assert_eq!(status, 404, "a lead Zoho hides prefills nothing: {body}");

    // Once his access token expires, Bruno's own is refreshed — never
    // swapped for the organization's, whose user (Ana) sees her lead.
    system.sandbox.expire_access_tokens();
    let refreshes = system.sandbox.token_refresh_count();
    let (status, body) = live_get(&system, &live, &chats).await;
    assert_eq!(status, 404, "still Bruno's view: {body}");
    assert!(system.sandbox.token_refresh_count() > refreshes);
    let (status, body) = live_get(
        &system,
        &live,
        &format!("/api/live/chats?record=Leads/{brunos}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Bruno revokes the app in Zoho: his connection reads nothing now,
    // and a new sign-in gives no code.
    assert!(system.sandbox.revoke_grants_of("bruno@acme.example") >= 1);
    let (status, body) = live_get(
        &system,
        &live,
        &format!("/api/live/chats?record=Leads/{brunos}"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_connected");
    let again = random_token();
    let page = sign_in(&system, &again).await;
    assert_eq!(page.status, 403, "{}", page.html);
    assert_eq!(page.data("code"), None);
    assert_eq!(page.data("nonce").as_deref(), Some(again.as_str()));
    assert!(
        page.script().contains("notConnected: true"),
        "the widget is told to show Connect"
    );
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_personal_connection_or_from_another_browser_there_is_no_code() {
    let system = TestSystem::start().await;
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;

    // Carla is a Zoho user of the organization with no personal connection.
    system
        .sandbox
        .set_authorizing_user("carla@acme.example")
        .expect("Carla");
    let nonce = random_token();
    let page = sign_in(&system, &nonce).await;
    assert_eq!(page.status, 403, "{}", page.html);
    assert_eq!(page.data("code"), None, "never a code");
    assert!(page.html.contains("carla@acme.example"), "{}", page.html);
    assert!(page.html.contains("/oauth/zoho/start"), "where to connect");
    assert_eq!(page.data("nonce").as_deref(), Some(nonce.as_str()));
    let (status, body) = session(&system, json!({ "code": random_token(), "nonce": nonce })).await;
    assert_eq!(status, 401, "nothing to redeem: {body}");
    let grants = system.sandbox.grants_of("carla@acme.example");
    assert_eq!(grants.len(), 1);
    assert!(grants[0].revoked, "her sign-in's grant is given back too");

    // The callback in another browser than the popup's: refused before
    // any code exchange.
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let authorize = open_popup(&system, &system.http, &random_token()).await;
    let page = through_zoho(&system, &elsewhere, &authorize).await;
    assert_eq!(page.status, 403, "{}", page.html);
    assert_eq!(
        system.sandbox.grants_of("carla@acme.example").len(),
        1,
        "no code was exchanged"
    );

    // A forged state, a replayed one, a nonce too short to be random, and
    // Pipedrive (whose extension signs its own tokens) are refused.
    let authorize = open_popup(&system, &system.http, &random_token()).await;
    let consent = system.http.get(&authorize).send().await.expect("consent");
    let callback = consent
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("a redirect")
        .to_owned();
    let mut forged = url::Url::parse(&callback).expect("a URL");
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{}x", &v[..v.len() - 1])
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(&pairs);
    let refused = system
        .http
        .get(forged.as_str())
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 400);
    let replayed = system.http.get(&callback).send().await.expect("answers");
    assert_eq!(replayed.status(), 400, "the forged try used the state up");
    let short = system
        .http
        .get(system.url("/oauth/zoho/live?nonce=short"))
        .send()
        .await
        .expect("answers");
    assert_eq!(short.status(), 400);
    let pipedrive = system
        .http
        .get(system.url(&format!("/oauth/pipedrive/live?nonce={}", random_token())))
        .send()
        .await
        .expect("answers");
    assert_eq!(pipedrive.status(), 404);
    let (status, _) = session(&system, json!({})).await;
    assert_eq!(status, 400, "neither a code nor a nonce");
    let (status, _) = session(&system, json!({ "code": random_token() })).await;
    assert_eq!(status, 400, "a code without its nonce");
    system.assert_contract_kept();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_expires_and_a_ready_sign_in_goes_to_one_taker_only() {
    let system = TestSystem::start_with_env(&[("LIVE_SIGNIN_CODE_TTL_SECS", "2")]).await;
    let workspace = system.workspace("ana@acme.example", "UTC").await;
    system.connect_zoho(&workspace).await;
    let nonce = random_token();
    let page = sign_in(&system, &nonce).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let code = page.data("code").expect("a code");
    tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
    let (status, body) = session(&system, json!({ "code": code, "nonce": nonce })).await;
    assert_eq!(status, 401, "{body}");

    // Against DynamoDB itself: a ready sign-in taken at once three times
    // (a double click, a retry), many times over, goes to exactly one of
    // them, and never to its code with another nonce.
    let store: Arc<dyn Store> = system.local.deps.store.clone();
    for round in 0..20 {
        let nonce = random_token();
        let code = random_token();
        let nonce_hash = shared::crypto::sha256_hex(&nonce);
        store
            .settle_sign_in(
                &nonce_hash,
                &SignIn {
                    status: SignInStatus::Ready(SignedIn {
                        code_hash: shared::crypto::sha256_hex(&code),
                        workspace_id: workspace.id.clone(),
                        user_id: workspace.owner_id.clone(),
                        crm: CrmKind::Zoho,
                        crm_org_id: "20093921".into(),
                        crm_user_id: e2e::ZOHO_ADMIN_ID.into(),
                        crm_user_email: "ana@acme.example".into(),
                        crm_user_name: None,
                    }),
                    expires_at: now() + 120,
                },
            )
            .await
            .expect("settled");
        let takers = [
            SessionAsk {
                code: code.clone(),
                nonce: random_token(),
            },
            SessionAsk {
                code: code.clone(),
                nonce: nonce.clone(),
            },
            SessionAsk {
                code: code.clone(),
                nonce: nonce.clone(),
            },
            SessionAsk {
                code,
                nonce: nonce.clone(),
            },
        ]
        .map(|ask| {
            let store = store.clone();
            tokio::spawn(async move { zoho_signin::take(store.as_ref(), &ask, now()).await })
        });
        let mut won = 0;
        for taker in takers {
            if taker.await.expect("joins").is_ok() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
}

/// A token as Pipedrive's extension signs it (HS256, the sandbox app's
/// client secret).
fn pipedrive_token(user_id: u64) -> String {
    let exp = now() + 300;
    encode(
        &Header::new(Algorithm::HS256),
        &json!({ "userId": user_id, "companyId": 7_100_001, "exp": exp, "iat": exp - 300 }),
        &EncodingKey::from_secret(b"pd-sandbox-secret").expect("an HMAC key"),
    )
    .expect("encodes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_prefilled_from_a_pipedrive_person() {
    let system = TestSystem::start().await;
    let (workspace, _alice) = system
        .pipedrive_chat_with_a_fresh_question("wamid.ZPD1")
        .await;
    let response = system
        .http
        .post(system.url("/api/live/pipedrive/session"))
        .json(&json!({ "token": pipedrive_token(11_001) }))
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let started: Value = response.json().await.expect("JSON");
    assert_eq!(started["crm_user_email"], "ana@acme.example");
    let live = started["session"].as_str().expect("a session").to_owned();
    let (org_id, org_name) = system.pipedrive.organization().expect("an organization");
    let maria = system
        .pipedrive
        .insert_person(json!({
            "name": "Maria Souza", "org_id": org_id,
            "emails": [{ "value": "maria@casa.example", "primary": true }],
            "phones": [{ "value": "+447700900777", "primary": true }],
        }))
        .expect("a person");
    system
        .give_the_number_its_business_account(&workspace)
        .await;
    seed_named_template(&system);
    let templates = format!(
        "/api/live/chats/{}/templates",
        e2e::chat_key_param(ALICE_WA_ID)
    );
    let (status, listed) = live_get(
        &system,
        &live,
        &format!("{templates}?record=persons/{maria}"),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(prefill(&listed, "sofa_offer"), maria_prefilled(&org_name));
    let (status, body) = live_get(
        &system,
        &live,
        &format!("{templates}?record=persons/987654"),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    // A new chat's templates come from the business number itself.
    let (status, by_number) = live_get(
        &system,
        &live,
        &format!(
            "/api/live/numbers/{}/templates?record=persons/{maria}",
            e2e::PHONE_NUMBER_ID
        ),
    )
    .await;
    assert_eq!(status, 200, "{by_number}");
    assert_eq!(
        prefill(&by_number, "sofa_offer"),
        prefill(&listed, "sofa_offer")
    );
    let (status, _) = live_get(&system, &live, "/api/live/numbers/999/templates").await;
    assert_eq!(status, 404, "not a number of the workspace");
    system.assert_pipedrive_contract_kept();
}
