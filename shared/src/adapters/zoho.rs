//! Zoho CRM v8 over HTTPS: the accounts server (OAuth) and the CRM API.
//! Shapes and status codes follow the reference and Zoho's OpenAPI files.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{crm_call_timeout, crm_transport};
use crate::config::ZohoConfig;
use crate::crm::{
    Choice, Conversion, Crm, CrmError, CrmIdentity, CrmOAuth, FieldMeta, FoundRecord, ModuleMeta,
    NewFollowUp, NewRecord, NoMeter, NoteDraft, Pipeline, TokenGrant, TokenServer, UsageMeter,
};
use crate::model::{CrmKind, CrmUser, RecordRef};
use crate::phone::E164;
use crate::tokens::{AccessTokens, FreshToken};

/// Scopes for everything the product does with Zoho.
pub const SCOPES: &str = "ZohoCRM.modules.ALL,ZohoSearch.securesearch.READ,ZohoCRM.modules.notes.ALL,ZohoCRM.modules.attachments.ALL,ZohoCRM.users.READ,ZohoCRM.org.READ,ZohoCRM.settings.modules.READ,ZohoCRM.settings.fields.READ";

/// Scopes of a live-chat sign-in: who the user is (`users?type=CurrentUser`)
/// and in which organization (`org`), nothing more — that grant is given
/// back at once, the user's personal connection does the work.
pub const SIGN_IN_SCOPES: &str = "ZohoCRM.users.READ,ZohoCRM.org.READ";

/// Zoho's codes for an access token it will not accept (reference §1.8).
const TOKEN_REJECTED_CODES: &[&str] = &[
    "INVALID_TOKEN",
    "AUTHENTICATION_FAILURE",
    "INVALID_OAUTHTOKEN",
];

/// Zoho's limit of criteria in one search (reference §4).
const SEARCH_CRITERIA_MAX: usize = 10;

/// Zoho does not say how long a note may be (reference §7.3): large text
/// areas elsewhere hold 32,000 characters; the configured cap sits below.
const NOTE_CONTENT_MAX: usize = 32_000;

/// The forms to search a number by: E.164, the `00` international prefix
/// some people type, and the spaced and dashed ways of writing it (Zoho's
/// normalisation of phone searches is not documented, so the common
/// written forms are asked for too; all go in one search), then the same
/// for the number's equivalent forms (national quirks). National forms are
/// not searched: without a country code a match could be the wrong person.
pub fn searchable_forms(number: &E164) -> Vec<String> {
    std::iter::once(number.clone())
        .chain(number.equivalents())
        .flat_map(|n| {
            let mut forms = vec![n.to_string(), format!("00{}", n.digits())];
            forms.extend(n.written_forms());
            forms
        })
        .collect()
}

fn not_in_zoho(what: &str) -> CrmError {
    CrmError::Rejected {
        status: 400,
        code: "NOT_SUPPORTED".into(),
        message: format!("the Zoho sync does not make {what}"),
        field: None,
    }
}

#[derive(Clone)]
pub struct ZohoOAuth {
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    config: ZohoConfig,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    api_domain: Option<String>,
    expires_in: Option<i64>,
    expires_in_sec: Option<i64>,
    error: Option<String>,
}

impl ZohoOAuth {
    fn authorize(
        &self,
        scopes: &str,
        redirect_uri: &str,
        state: &str,
        code_challenge: &str,
    ) -> String {
        let mut url = format!("{}/oauth/v2/auth?", self.config.accounts_url);
        url.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("scope", scopes)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("access_type", "offline")
                .append_pair("prompt", "consent")
                .append_pair("state", state)
                .append_pair("code_challenge", code_challenge)
                .append_pair("code_challenge_method", "S256")
                .finish(),
        );
        url
    }

    pub fn new(
        http: reqwest::Client,
        client_id: String,
        client_secret: String,
        config: ZohoConfig,
    ) -> Self {
        Self {
            http,
            client_id,
            client_secret,
            config,
        }
    }

    async fn token_call(
        &self,
        accounts_server: &str,
        form: &[(&str, &str)],
    ) -> Result<TokenGrant, CrmError> {
        let response = self
            .http
            .post(format!("{accounts_server}/oauth/v2/token"))
            .form(form)
            .timeout(crm_call_timeout()?)
            .send()
            .await
            .map_err(crm_transport)?;
        let status = response.status();
        if status.is_server_error() {
            return Err(CrmError::Unavailable(status.as_u16()));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| CrmError::Decode(format!("token response: {e}")))?;
        // Zoho answers token errors with HTTP 200 and an `error` field.
        match (body.access_token, body.error) {
            (Some(access_token), None) => {
                // Older responses carry `expires_in` in ms beside `expires_in_sec`.
                let expires_in_secs = body.expires_in_sec.or(body.expires_in).unwrap_or(3600);
                let api_domain = body
                    .api_domain
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned();
                // Tokens only ever go to one of Zoho's own API hosts.
                if !self.config.api_domains.contains(&api_domain) {
                    return Err(CrmError::Rejected {
                        status: status.as_u16(),
                        code: "UNKNOWN_API_DOMAIN".into(),
                        message: format!(
                            "the token response names an unknown API domain `{api_domain}`"
                        ),
                        field: None,
                    });
                }
                Ok(TokenGrant {
                    access_token,
                    refresh_token: body.refresh_token,
                    api_domain,
                    expires_in_secs,
                })
            }
            (_, Some(error)) if error == "Access Denied" => Err(CrmError::RateLimited),
            // A revoked grant or a used/expired code: only a person can fix it.
            (_, Some(error)) if error == "invalid_code" => Err(CrmError::ConnectionBroken(error)),
            // Our own configuration (e.g. `invalid_client`): not the grant's fault.
            (_, Some(error)) => Err(CrmError::Rejected {
                status: status.as_u16(),
                code: error,
                message: "the accounts server refused the token request".into(),
                field: None,
            }),
            (None, None) => Err(CrmError::Decode("token response without a token".into())),
        }
    }
}

#[async_trait]
impl CrmOAuth for ZohoOAuth {
    /// `prompt=consent` with `access_type=offline` is what makes Zoho issue
    /// a refresh token on a reconnect. The request starts at the configured
    /// accounts URL; Zoho routes users to their data centre.
    fn authorize_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> String {
        self.authorize(SCOPES, redirect_uri, state, code_challenge)
    }

    /// Offline with consent too: only a grant with a refresh token can be
    /// revoked at once (revoking it ends its access tokens), and the
    /// sign-in gives its grant back as soon as it knows the user.
    fn sign_in_url(&self, redirect_uri: &str, state: &str, code_challenge: &str) -> Option<String> {
        Some(self.authorize(SIGN_IN_SCOPES, redirect_uri, state, code_challenge))
    }

    /// The data centre the callback names (`location`, default `us`), only
    /// a known one: the code exchange sends our client secret there.
    fn token_server(&self, callback: &HashMap<String, String>) -> Result<TokenServer, String> {
        let location = callback
            .get("location")
            .cloned()
            .unwrap_or_else(|| "us".into());
        let accounts_server = self
            .config
            .accounts_servers
            .get(&location)
            .cloned()
            .ok_or_else(|| format!("unknown Zoho data centre `{location}`"))?;
        if let Some(named) = callback.get("accounts-server")
            && named.trim_end_matches('/') != accounts_server
        {
            return Err(format!(
                "the accounts server does not belong to data centre `{location}`"
            ));
        }
        Ok(TokenServer {
            location,
            accounts_server,
        })
    }

    async fn exchange_code(
        &self,
        server: &TokenServer,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.token_call(
            &server.accounts_server,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("redirect_uri", redirect_uri),
                ("code", code),
                ("code_verifier", code_verifier),
            ],
        )
        .await
    }

    async fn refresh(
        &self,
        accounts_server: &str,
        refresh_token: &str,
    ) -> Result<TokenGrant, CrmError> {
        self.token_call(
            accounts_server,
            &[
                ("grant_type", "refresh_token"),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    async fn revoke(&self, accounts_server: &str, refresh_token: &str) -> Result<(), CrmError> {
        let response = self
            .http
            .post(format!("{accounts_server}/oauth/v2/token/revoke"))
            .query(&[("token", refresh_token)])
            .send()
            .await
            .map_err(crm_transport)?;
        super::revocation_result(response.status())
    }

    async fn identify(&self, grant: &TokenGrant) -> Result<CrmIdentity, CrmError> {
        ZohoApi::new(
            self.http.clone(),
            &grant.api_domain,
            Arc::new(FreshToken(grant.access_token.clone())),
        )
        .identify()
        .await
    }
}

/// The CRM API of one connection.
pub struct ZohoApi {
    http: reqwest::Client,
    api_domain: String,
    tokens: Arc<dyn AccessTokens>,
    meter: Arc<dyn UsageMeter>,
}

/// What Zoho charges a call against the org's credits: Convert Lead 5,
/// every other call we make 1 (reference: Zoho "API limits"). Refusals
/// for the token, the throttle or Zoho's own failures are not counted.
fn credits(path: &str, status: StatusCode) -> u32 {
    if matches!(status.as_u16(), 401 | 429) || status.is_server_error() {
        0
    } else if path.ends_with("/actions/convert") {
        5
    } else {
        1
    }
}

impl ZohoApi {
    pub fn new(http: reqwest::Client, api_domain: &str, tokens: Arc<dyn AccessTokens>) -> Self {
        Self {
            http,
            api_domain: api_domain.trim_end_matches('/').to_owned(),
            tokens,
            meter: Arc::new(NoMeter),
        }
    }

    /// The same, reporting each call's credits to `meter`.
    pub fn with_meter(self, meter: Arc<dyn UsageMeter>) -> Self {
        Self { meter, ..self }
    }

    /// Sends a request with the current access token; on a token rejection,
    /// refreshes once and sends it once more. Returns the status and the JSON
    /// body (`None` for 204).
    async fn call(
        &self,
        method: Method,
        path: &str,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<(StatusCode, Option<Value>), CrmError> {
        let url = format!("{}/crm/v8/{path}", self.api_domain);
        let mut token = self.tokens.current().await?;
        let (mut refreshed, mut retried) = (false, false);
        loop {
            let request = self
                .http
                .request(method.clone(), &url)
                .header("Authorization", format!("Zoho-oauthtoken {token}"));
            let response = build(request)
                .timeout(crm_call_timeout()?)
                .send()
                .await
                .map_err(crm_transport)?;
            let status = response.status();
            self.meter.spent(credits(path, status)).await;
            let quick_wait = (!retried)
                .then(|| {
                    super::quick_retry_wait(&method, status, response.headers().get("retry-after"))
                })
                .flatten();
            if let Some(wait) = quick_wait {
                tracing::info!(
                    path,
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "Zoho call failed; trying once more"
                );
                tokio::time::sleep(wait).await;
                retried = true;
                continue;
            }
            let text = response.text().await.map_err(crm_transport)?;
            let body: Option<Value> = if text.trim().is_empty() {
                None
            } else {
                Some(
                    serde_json::from_str(&text)
                        .map_err(|e| CrmError::Decode(format!("{path}: {e}")))?,
                )
            };
            match status {
                StatusCode::UNAUTHORIZED if !refreshed && is_token_rejection(body.as_ref()) => {
                    tracing::info!(path, "Zoho refused the access token; refreshing once");
                    token = self.tokens.refresh_after_rejection(&token).await?;
                    refreshed = true;
                }
                StatusCode::UNAUTHORIZED => return Err(CrmError::Unauthorized),
                StatusCode::TOO_MANY_REQUESTS => return Err(CrmError::RateLimited),
                s if s.is_server_error() => return Err(CrmError::Unavailable(s.as_u16())),
                s if s.is_client_error() => return Err(rejection(s, body.as_ref())),
                s => return Ok((s, body)),
            }
        }
    }

    /// The record's `fields` (all of them when `None`), or `None` when the
    /// user may not see it: 204 for an unknown or deleted id, 403 for what
    /// their profile or sharing rules hide, 400 for a module the org lacks.
    async fn visible_record(
        &self,
        record: &RecordRef,
        fields: Option<&str>,
    ) -> Result<Option<Value>, CrmError> {
        let answer = self
            .call(
                Method::GET,
                &format!("{}/{}", record.module, record.id),
                |r| match fields {
                    Some(fields) => r.query(&[("fields", fields)]),
                    None => r,
                },
            )
            .await;
        let body = match answer {
            Ok((_, body)) => body,
            Err(e) if hides_record(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(body.and_then(|b| b["data"].get(0).cloned()))
    }

    pub async fn identify(&self) -> Result<CrmIdentity, CrmError> {
        let (_, users) = self
            .call(Method::GET, "users", |r| {
                r.query(&[("type", "CurrentUser")])
            })
            .await?;
        let user = users
            .as_ref()
            .and_then(|b| b["users"].get(0))
            .ok_or_else(|| CrmError::Decode("no current user".into()))?;
        let (_, org) = self.call(Method::GET, "org", |r| r).await?;
        let org_id = org
            .as_ref()
            .and_then(|b| b["org"][0]["id"].as_str())
            .ok_or_else(|| CrmError::Decode("no org id".into()))?;
        Ok(CrmIdentity {
            user_id: str_field(user, "id")?,
            email: str_field(user, "email")?,
            org_id: org_id.to_owned(),
            name: user["full_name"]
                .as_str()
                .filter(|n| !n.trim().is_empty())
                .map(str::to_owned),
        })
    }
}

/// A refusal that means the user may not see the record: their profile
/// or sharing rules (403 `NO_PERMISSION`), or a module the org does not
/// have (a forged record names any module).
fn hides_record(e: &CrmError) -> bool {
    match e {
        CrmError::Rejected { status: 403, .. } => true,
        CrmError::Rejected {
            status: 400,
            code,
            field,
            ..
        } => code == "INVALID_MODULE" || field.as_deref() == Some("module"),
        _ => false,
    }
}

/// A field's value as text: strings, numbers, `true`/`false`, a lookup's
/// or owner's name; nothing for empty values, lists and other objects.
fn field_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(o) => o.get("name")?.as_str()?.to_owned(),
        _ => return None,
    };
    (!text.trim().is_empty()).then_some(text)
}

fn is_token_rejection(body: Option<&Value>) -> bool {
    body.and_then(|b| b["code"].as_str())
        .is_some_and(|code| TOKEN_REJECTED_CODES.contains(&code))
}

fn rejection(status: StatusCode, body: Option<&Value>) -> CrmError {
    let entry = body.map(|b| b.get("data").and_then(|d| d.get(0)).unwrap_or(b));
    if let Some(e) = entry
        && e["code"] == "DUPLICATE_DATA"
        && let (Some(id), Some(module)) = (
            e["details"]["duplicate_record"]["id"].as_str(),
            e["details"]["duplicate_record"]["module"]["api_name"].as_str(),
        )
    {
        return CrmError::Duplicate {
            record: RecordRef {
                crm: CrmKind::Zoho,
                module: module.to_owned(),
                id: id.to_owned(),
            },
            field: e["details"]["api_name"].as_str().map(str::to_owned),
        };
    }
    CrmError::Rejected {
        status: status.as_u16(),
        code: entry
            .and_then(|e| e["code"].as_str())
            .unwrap_or("UNKNOWN")
            .to_owned(),
        message: entry
            .and_then(|e| e["message"].as_str())
            .unwrap_or("")
            .to_owned(),
        field: entry
            .and_then(|e| e["details"]["api_name"].as_str())
            .map(str::to_owned),
    }
}

/// The modules a Zoho Lead converts into, and the lookup naming each.
pub const CONVERSION_TARGETS: [(&str, &str); 3] = [
    ("Contacts", "Converted_Contact"),
    ("Accounts", "Converted_Account"),
    ("Deals", "Converted_Deal"),
];

fn conversion_lookup(module: &str) -> Option<&'static str> {
    CONVERSION_TARGETS
        .iter()
        .find(|(m, _)| *m == module)
        .map(|(_, lookup)| *lookup)
}

/// `((F:equals:a)or(F:equals:b))`, with the characters Zoho's criteria
/// syntax reserves escaped.
fn phone_criteria(field: &str, forms: &[String]) -> String {
    let terms: Vec<String> = forms
        .iter()
        .map(|form| {
            let escaped = form
                .replace('\\', "\\\\")
                .replace('(', "\\(")
                .replace(')', "\\)")
                .replace(',', "\\,");
            format!("({field}:equals:{escaped})")
        })
        .collect();
    match terms.as_slice() {
        [one] => one.clone(),
        _ => format!("({})", terms.join("or")),
    }
}

/// The records of a list or search answer, with the phone `field` (none
/// for a 204).
fn found_records(
    module: &str,
    field: &str,
    body: Option<&Value>,
) -> Result<Vec<FoundRecord>, CrmError> {
    body.and_then(|b| b["data"].as_array())
        .into_iter()
        .flatten()
        .map(|r| {
            Ok(FoundRecord {
                record: RecordRef {
                    crm: CrmKind::Zoho,
                    module: module.to_owned(),
                    id: str_field(r, "id")?,
                },
                phones: r[field].as_str().map(str::to_owned).into_iter().collect(),
                modified_time: r["Modified_Time"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

fn str_field(value: &Value, key: &str) -> Result<String, CrmError> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CrmError::Decode(format!("missing `{key}`")))
}

/// The one entry of a single-record write: Zoho answers 2xx even when the
/// entry itself failed, so the entry decides.
fn single_write_result(status: StatusCode, body: Option<Value>) -> Result<Value, CrmError> {
    let entry = body
        .as_ref()
        .and_then(|b| b["data"].get(0))
        .cloned()
        .ok_or_else(|| CrmError::Decode("write response without data[0]".into()))?;
    if entry["status"] == "success" {
        Ok(entry)
    } else {
        Err(rejection(status, Some(&entry)))
    }
}

#[async_trait]
impl Crm for ZohoApi {
    async fn find_by_phone(
        &self,
        module: &str,
        field: &str,
        number: &E164,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        let forms = searchable_forms(number);
        let mut found = Vec::new();
        // Zoho takes at most 10 criteria per search.
        for chunk in forms.chunks(SEARCH_CRITERIA_MAX) {
            let criteria = phone_criteria(field, chunk);
            let fields = format!("{field},Modified_Time");
            let (_, body) = self
                .call(Method::GET, &format!("{module}/search"), |r| {
                    // reqwest encodes `+` as %2B; a literal `+` would become a space.
                    r.query(&[("criteria", criteria.as_str()), ("fields", fields.as_str())])
                })
                .await?;
            found.extend(found_records(module, field, body.as_ref())?);
        }
        Ok(found)
    }

    async fn create_record(&self, record: &NewRecord) -> Result<RecordRef, CrmError> {
        let mut data = Value::Object(record.fields.clone());
        if let Some(owner) = &record.owner_id {
            data["Owner"] = json!({ "id": owner });
        }
        let (status, body) = self
            .call(Method::POST, &record.module, |r| {
                r.json(&json!({ "data": [data] }))
            })
            .await?;
        let entry = single_write_result(status, body)?;
        Ok(RecordRef {
            crm: CrmKind::Zoho,
            module: record.module.clone(),
            id: str_field(&entry["details"], "id")?,
        })
    }

    async fn record_exists(&self, record: &RecordRef) -> Result<bool, CrmError> {
        // 204 (no body) when the id is unknown or deleted.
        let (_, body) = self
            .call(
                Method::GET,
                &format!("{}/{}", record.module, record.id),
                |r| r.query(&[("fields", "id")]),
            )
            .await?;
        Ok(body.is_some_and(|b| b["data"].get(0).is_some()))
    }

    async fn recently_created(
        &self,
        module: &str,
        field: &str,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        // Get Records reads the records themselves, not the search index,
        // so a record made seconds ago is there.
        let fields = format!("{field},Modified_Time");
        let (_, body) = self
            .call(Method::GET, module, |r| {
                r.query(&[
                    ("fields", fields.as_str()),
                    ("sort_by", "Created_Time"),
                    ("sort_order", "desc"),
                    ("per_page", "200"),
                ])
            })
            .await?;
        found_records(module, field, body.as_ref())
    }

    async fn update_field(
        &self,
        record: &RecordRef,
        field: &str,
        value: &str,
    ) -> Result<(), CrmError> {
        let payload = json!({ "data": [{ field: value }] });
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("{}/{}", record.module, record.id),
                |r| r.json(&payload),
            )
            .await?;
        single_write_result(status, body).map(|_| ())
    }

    async fn conversion(
        &self,
        record: &RecordRef,
        into_module: &str,
        _person: Option<&RecordRef>,
    ) -> Result<Conversion, CrmError> {
        // Zoho keeps a converted lead readable, with read-only lookups to
        // what it became (reference §10); they must be asked for by name.
        let Some(lookup) = conversion_lookup(into_module) else {
            return Err(CrmError::Rejected {
                status: 400,
                code: "NOT_A_CONVERSION_TARGET".into(),
                message: format!("a converted Lead never becomes a record of {into_module}"),
                field: None,
            });
        };
        let fields = format!("Converted__s,{lookup}");
        let (_, body) = self
            .call(
                Method::GET,
                &format!("{}/{}", record.module, record.id),
                |r| r.query(&[("fields", fields.as_str())]),
            )
            .await?;
        let Some(data) = body.as_ref().and_then(|b| b["data"].get(0)) else {
            return Err(CrmError::Rejected {
                status: 204,
                code: "RECORD_NOT_FOUND".into(),
                message: format!("{}/{} no longer exists", record.module, record.id),
                field: None,
            });
        };
        if data["Converted__s"] != true {
            return Ok(Conversion::NotConverted);
        }
        Ok(Conversion::Converted {
            into: data[lookup]["id"].as_str().map(|id| RecordRef {
                crm: CrmKind::Zoho,
                module: into_module.to_owned(),
                id: id.to_owned(),
            }),
        })
    }

    async fn attach_file(
        &self,
        parent: &RecordRef,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, CrmError> {
        self.upload_attachment(parent, file_name, mime_type, bytes)
            .await
    }

    async fn find_attachment(
        &self,
        parent: &RecordRef,
        file_name: &str,
        size: u64,
        since: i64,
    ) -> Result<Option<String>, CrmError> {
        self.attachment_named(parent, file_name, size, since).await
    }

    async fn modules(&self) -> Result<Vec<ModuleMeta>, CrmError> {
        let (_, body) = self.call(Method::GET, "settings/modules", |r| r).await?;
        Ok(body
            .as_ref()
            .and_then(|b| b["modules"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|m| {
                Some(ModuleMeta {
                    api_name: m["api_name"].as_str()?.to_owned(),
                    label: m["plural_label"].as_str().unwrap_or_default().to_owned(),
                    api_supported: m["api_supported"] == true,
                    creatable: m["creatable"] == true,
                    generated_type: m["generated_type"].as_str().unwrap_or_default().to_owned(),
                    convertable: m["convertable"] == true,
                    converts_into: if m["convertable"] == true {
                        CONVERSION_TARGETS
                            .iter()
                            .map(|(m, _)| (*m).to_owned())
                            .collect()
                    } else {
                        Vec::new()
                    },
                })
            })
            .collect())
    }

    async fn fields(&self, module: &str) -> Result<Vec<FieldMeta>, CrmError> {
        let (_, body) = self
            .call(Method::GET, "settings/fields", |r| {
                r.query(&[("module", module)])
            })
            .await?;
        Ok(body
            .as_ref()
            .and_then(|b| b["fields"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|f| {
                Some(FieldMeta {
                    api_name: f["api_name"].as_str()?.to_owned(),
                    label: f["display_label"].as_str().unwrap_or_default().to_owned(),
                    data_type: f["data_type"].as_str().unwrap_or_default().to_owned(),
                    json_type: f["json_type"].as_str().unwrap_or_default().to_owned(),
                    length: f["length"].as_u64().and_then(|l| u32::try_from(l).ok()),
                    read_only: f["read_only"] == true || f["field_read_only"] == true,
                    virtual_field: f["virtual_field"] == true,
                    // Absent means allowed: older orgs do not send it.
                    api_create: f["operation_type"]["api_create"] != false,
                    picklist_values: f["pick_list_values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v["actual_value"].as_str().map(str::to_owned))
                        .collect(),
                })
            })
            .collect())
    }

    async fn create_follow_up(&self, _follow_up: &NewFollowUp) -> Result<RecordRef, CrmError> {
        Err(not_in_zoho("leads or deals beside a record"))
    }

    async fn find_follow_up(
        &self,
        _person: &RecordRef,
        _title: &str,
    ) -> Result<Option<RecordRef>, CrmError> {
        Ok(None)
    }

    async fn latest_open_deal(
        &self,
        _person: &RecordRef,
        _pipeline_id: Option<&str>,
    ) -> Result<Option<RecordRef>, CrmError> {
        // A Zoho note belongs to one record.
        Ok(None)
    }

    async fn record_phones(&self, record: &RecordRef) -> Result<Option<Vec<String>>, CrmError> {
        // Every phone field of the module, as the user's metadata lists it.
        let fields = match self.fields(&record.module).await {
            Ok(fields) => fields,
            Err(e) if hides_record(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let phone_fields: Vec<String> = fields
            .into_iter()
            .filter(|f| f.data_type == "phone")
            .map(|f| f.api_name)
            .collect();
        // The record is read even without phone fields: whether the user
        // may see it decides between "no numbers" and "not visible".
        let wanted = if phone_fields.is_empty() {
            "id".to_owned()
        } else {
            phone_fields.join(",")
        };
        let Some(data) = self.visible_record(record, Some(&wanted)).await? else {
            return Ok(None);
        };
        Ok(Some(
            phone_fields
                .iter()
                .filter_map(|f| data[f].as_str().map(str::to_owned))
                .collect(),
        ))
    }

    async fn record_fields(
        &self,
        record: &RecordRef,
    ) -> Result<Option<BTreeMap<String, String>>, CrmError> {
        // A single record's read answers all its fields the user may see.
        let Some(data) = self.visible_record(record, None).await? else {
            return Ok(None);
        };
        Ok(Some(
            data.as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| !name.starts_with('$'))
                .filter_map(|(name, value)| Some((name.clone(), field_text(value)?)))
                .collect(),
        ))
    }

    async fn pipelines(&self) -> Result<Vec<Pipeline>, CrmError> {
        Ok(Vec::new())
    }

    async fn lead_labels(&self) -> Result<Vec<Choice>, CrmError> {
        Ok(Vec::new())
    }

    fn render_note(&self, note: &NoteDraft<'_>) -> String {
        // The title is a field of its own; the content is plain text.
        let mut content = format!("{}\n", note.header);
        for line in note.lines {
            content.push('\n');
            content.push_str(line);
        }
        content
    }

    fn note_size(&self, content: &str) -> usize {
        content.chars().count()
    }

    fn note_limit(&self) -> usize {
        NOTE_CONTENT_MAX
    }

    async fn create_note(
        &self,
        parent: &RecordRef,
        _also: Option<&RecordRef>,
        title: &str,
        content: &str,
    ) -> Result<String, CrmError> {
        let payload = json!({ "data": [{
            "Note_Title": title,
            "Note_Content": content,
            "Parent_Id": { "module": { "api_name": parent.module }, "id": parent.id },
        }]});
        let (status, body) = self
            .call(Method::POST, "Notes", |r| r.json(&payload))
            .await?;
        let entry = single_write_result(status, body)?;
        str_field(&entry["details"], "id")
    }

    async fn update_note(&self, note_id: &str, title: &str, content: &str) -> Result<(), CrmError> {
        let payload = json!({ "data": [{ "Note_Title": title, "Note_Content": content }] });
        let (status, body) = self
            .call(Method::PUT, &format!("Notes/{note_id}"), |r| {
                r.json(&payload)
            })
            .await?;
        single_write_result(status, body).map(|_| ())
    }

    async fn find_note(
        &self,
        parent: &RecordRef,
        note: &NoteDraft<'_>,
    ) -> Result<Option<String>, CrmError> {
        let (title, header) = (note.title, note.header);
        let mut page = 1;
        loop {
            let (_, body) = self
                .call(
                    Method::GET,
                    &format!("{}/{}/Notes", parent.module, parent.id),
                    |r| {
                        r.query(&[
                            ("fields", "Note_Title,Note_Content"),
                            ("page", &page.to_string()),
                            ("per_page", "200"),
                        ])
                    },
                )
                .await?;
            let Some(body) = body else { return Ok(None) };
            let found = body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|n| {
                    n["Note_Title"] == title
                        && n["Note_Content"]
                            .as_str()
                            .is_some_and(|c| c.starts_with(header))
                })
                .and_then(|n| n["id"].as_str().map(str::to_owned));
            if found.is_some() || body["info"]["more_records"] != true {
                return Ok(found);
            }
            page += 1;
        }
    }

    async fn active_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        let mut users = Vec::new();
        let mut page = 1;
        loop {
            let (_, body) = self
                .call(Method::GET, "users", |r| {
                    r.query(&[
                        ("type", "ActiveConfirmedUsers"),
                        ("page", &page.to_string()),
                        ("per_page", "200"),
                    ])
                })
                .await?;
            let Some(body) = body else { return Ok(users) };
            for user in body["users"].as_array().into_iter().flatten() {
                if let (Some(id), Some(email)) = (user["id"].as_str(), user["email"].as_str()) {
                    users.push(CrmUser {
                        id: id.to_owned(),
                        email: email.to_owned(),
                    });
                }
            }
            if body["info"]["more_records"] != true {
                return Ok(users);
            }
            page += 1;
        }
    }
}

pub mod attachments;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_shows_no_token_when_debugged() {
        let grant = TokenGrant {
            access_token: "1000.access-secret".into(),
            refresh_token: Some("1000.refresh-secret".into()),
            api_domain: "https://www.zohoapis.eu".into(),
            expires_in_secs: 3600,
        };
        let shown = format!("{grant:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("https://www.zohoapis.eu"), "{shown}");
        assert!(shown.contains("has_refresh_token: true"), "{shown}");
    }

    #[test]
    fn every_form_of_a_number_goes_in_one_criteria_with_reserved_characters_escaped() {
        let forms = vec!["+447700900123".to_owned(), "00447700900123".to_owned()];
        assert_eq!(
            phone_criteria("Mobile", &forms),
            "((Mobile:equals:+447700900123)or(Mobile:equals:00447700900123))"
        );
        assert_eq!(
            phone_criteria("Phone", &["+1 (555), x".to_owned()]),
            "(Phone:equals:+1 \\(555\\)\\, x)"
        );
    }

    #[test]
    fn a_duplicate_refusal_names_the_record_that_exists() {
        let body = json!({ "data": [{
            "code": "DUPLICATE_DATA", "status": "error", "message": "duplicate data",
            "details": { "api_name": "Mobile", "duplicate_record": {
                "id": "4876876000000999001", "module": { "api_name": "Leads", "id": "1" } } }
        }]});
        let error = rejection(StatusCode::BAD_REQUEST, Some(&body));
        assert!(
            matches!(&error, CrmError::Duplicate { record, field } if record.id == "4876876000000999001" && record.module == "Leads" && field.as_deref() == Some("Mobile")),
            "{error:?}"
        );
        let other = json!({ "data": [{ "code": "INVALID_DATA", "status": "error", "message": "bad",
            "details": { "api_name": "Mobile" } }] });
        assert!(matches!(
            rejection(StatusCode::BAD_REQUEST, Some(&other)),
            CrmError::Rejected { field: Some(f), .. } if f == "Mobile"
        ));
    }
}
