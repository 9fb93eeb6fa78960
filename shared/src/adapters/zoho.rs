//! Zoho CRM v8 over HTTPS: the accounts server (OAuth) and the CRM API.
//! Shapes and status codes follow the reference and Zoho's OpenAPI files.
//! This file holds the API client's calls and what they share; the port's
//! operations are in `crm`, the accounts server in `oauth`.

pub mod attachments;
pub(crate) mod crm;
mod oauth;

pub use oauth::ZohoOAuth;

use std::sync::Arc;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;

use super::{crm_call_timeout, crm_transport};
use crate::crm::{CrmError, CrmIdentity, FoundRecord, NoMeter, UsageMeter};
use crate::model::{CrmKind, RecordRef};
use crate::phone::E164;
use crate::tokens::AccessTokens;

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crm::TokenGrant;

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
