//! The approved templates a chat's business number may send (when the
//! 24-hour window is closed, they are all the composer offers), read from
//! the number's WhatsApp Business Account and kept for a few minutes per
//! function instance: the picker opens often, templates change rarely.
//! For a record, `parameters` lists each placeholder with a value from the
//! record's field of that name (read with the user's own CRM token; case,
//! separators and a few synonyms aside: a template's `name` is Zoho's
//! `Full_Name`, its `company` Pipedrive's organization) instead of their
//! count; positional ones stay empty.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};

use super::LiveSession;
use super::send::{SendRefusal, chat_and_number, number_token};
use super::view::ViewError;
use crate::business_numbers::Template;
use crate::crm::CrmError;
use crate::deps::Deps;
use crate::model::{RecordRef, WhatsAppNumber};

/// How long an instance reuses a business account's templates.
const CACHE_SECS: i64 = 600;

type Cache = Mutex<HashMap<String, (i64, Vec<Template>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The approved templates of the business account of `chat_key`'s number.
pub async fn chat_templates(
    deps: &Deps,
    session: &LiveSession,
    chat_key: &str,
) -> Result<Vec<Template>, SendRefusal> {
    let workspace_id = session.workspace_id.as_str();
    let (_, number) = chat_and_number(deps, workspace_id, chat_key).await?;
    templates_of(deps, &number).await
}

/// The approved templates of the business account of the workspace's
/// number `phone_number_id` (what a new chat may start with); `None` when
/// the workspace has no such number.
pub async fn number_templates(
    deps: &Deps,
    session: &LiveSession,
    phone_number_id: &str,
) -> Result<Option<Vec<Template>>, SendRefusal> {
    let Some(number) = deps
        .store
        .whatsapp_number(phone_number_id)
        .await?
        .filter(|n| n.workspace_id == session.workspace_id)
    else {
        return Ok(None);
    };
    templates_of(deps, &number).await.map(Some)
}

async fn templates_of(deps: &Deps, number: &WhatsAppNumber) -> Result<Vec<Template>, SendRefusal> {
    let Some(waba_id) = number.waba_id.clone() else {
        return Err(SendRefusal::Invalid(
            "the business number was registered without its WhatsApp Business Account id (waba_id): register it again with it to use templates".into(),
        ));
    };
    let now = deps.clock.now();
    if let Ok(cached) = cache().lock()
        && let Some((at, templates)) = cached.get(&waba_id)
        && now - at < CACHE_SECS
    {
        return Ok(templates.clone());
    }
    let token = number_token(deps, number).await?;
    let templates = deps
        .business_numbers
        .approved_templates(&token, &waba_id)
        .await
        .map_err(SendRefusal::WhatsApp)?;
    if let Ok(mut cached) = cache().lock() {
        cached.insert(waba_id, (now, templates.clone()));
    }
    Ok(templates)
}

/// A template as [`Template`] shows it, but with its body's parameters
/// named and valued where the record has a field of that name (what the
/// page's picker fills its inputs with).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PrefilledTemplate {
    pub name: String,
    pub language: String,
    pub category: String,
    pub body: String,
    /// One per placeholder of the body, in order.
    pub parameters: Vec<ParameterValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ParameterValue {
    /// The placeholder's name: `first_name`, or `1` for positional ones.
    pub name: String,
    /// The record's value for it; none for a positional placeholder or a
    /// name the record has no field for.
    pub value: Option<String>,
}

/// `templates` with their parameters prefilled from `record`'s fields, read
/// with the session user's own CRM token (a record they may not see is
/// [`ViewError::NotVisible`], as in the chat view).
pub async fn prefilled(
    deps: &Deps,
    session: &LiveSession,
    record: &RecordRef,
    templates: Vec<Template>,
) -> Result<Vec<PrefilledTemplate>, ViewError> {
    let crm = session.personal_crm(deps).await?;
    let fields = match crm.record_fields(record).await {
        Ok(Some(fields)) => fields,
        // A module the CRM refuses (a forged record) shows nothing either.
        Ok(None) | Err(CrmError::Rejected { .. }) => return Err(ViewError::NotVisible),
        Err(e) => return Err(e.into()),
    };
    Ok(templates
        .into_iter()
        .map(|template| PrefilledTemplate {
            parameters: placeholders(&template.body)
                .into_iter()
                .map(|name| ParameterValue {
                    value: field_for(&name, &fields).map(str::to_owned),
                    name,
                })
                .collect(),
            name: template.name,
            language: template.language,
            category: template.category,
            body: template.body,
        })
        .collect())
}

/// The distinct placeholders of a template body, in order: `{{1}}` → `1`,
/// `{{first_name}}` → `first_name`.
pub fn placeholders(body: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim().to_owned();
        if !name.is_empty() && !found.contains(&name) {
            found.push(name);
        }
        rest = &after[end + 2..];
    }
    found
}

/// A name without case or separators: `First_Name`, `first-name` and
/// `firstName` are all `firstname`.
fn folded(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Names that mean the same field across CRMs and templates (folded): a
/// template's `name` is Zoho's `Full_Name`, its `company` Pipedrive's
/// `org_name` or a Zoho contact's `Account_Name`.
const SAME_MEANING: &[&[&str]] = &[
    &["name", "fullname", "contactname", "customername"],
    &["firstname", "givenname"],
    &["lastname", "surname", "familyname"],
    &[
        "company",
        "companyname",
        "organization",
        "organisation",
        "orgname",
        "accountname",
    ],
    &["email", "emailaddress"],
    &["phone", "phonenumber", "mobile"],
];

/// The value the record's `fields` hold for a template parameter named
/// `parameter`: its own name first (case and separators aside), then the
/// names that mean the same. A positional parameter (`1`) has none.
pub fn field_for<'a>(parameter: &str, fields: &'a BTreeMap<String, String>) -> Option<&'a str> {
    let wanted = folded(parameter);
    if wanted.is_empty() || wanted.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let by_name = |name: &str| {
        fields
            .iter()
            .find(|(field, _)| folded(field) == name)
            .map(|(_, value)| value.as_str())
    };
    by_name(&wanted).or_else(|| {
        SAME_MEANING
            .iter()
            .find(|group| group.contains(&wanted.as_str()))
            .and_then(|group| group.iter().find_map(|name| by_name(name)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn named_parameters_find_zoho_fields_whatever_their_case_and_separators() {
        let lead = fields(&[
            ("First_Name", "Maria"),
            ("Full_Name", "Maria Souza"),
            ("Company", "Casa Souza"),
            ("Email", "maria@casa.example"),
            ("Mobile", "+447700900123"),
        ]);
        assert_eq!(field_for("first_name", &lead), Some("Maria"));
        assert_eq!(field_for("FirstName", &lead), Some("Maria"));
        assert_eq!(field_for("first-name", &lead), Some("Maria"));
        assert_eq!(field_for("name", &lead), Some("Maria Souza"));
        assert_eq!(field_for("company", &lead), Some("Casa Souza"));
        assert_eq!(field_for("email", &lead), Some("maria@casa.example"));
        assert_eq!(field_for("phone", &lead), Some("+447700900123"));
        assert_eq!(field_for("order_number", &lead), None);
    }

    #[test]
    fn named_parameters_find_pipedrive_fields_and_an_own_name_comes_first() {
        let person = fields(&[
            ("name", "Maria Souza"),
            ("first_name", "Maria"),
            ("org_name", "Casa Souza"),
            ("email", "maria@casa.example"),
        ]);
        assert_eq!(field_for("name", &person), Some("Maria Souza"));
        assert_eq!(field_for("Company", &person), Some("Casa Souza"));
        assert_eq!(field_for("organization", &person), Some("Casa Souza"));
        // A record with a field named as the parameter uses it, not a synonym.
        let both = fields(&[("Full_Name", "Maria Souza"), ("Name", "Sofa deal")]);
        assert_eq!(field_for("name", &both), Some("Sofa deal"));
    }

    #[test]
    fn positional_parameters_stay_empty() {
        let record = fields(&[("1", "odd"), ("First_Name", "Maria")]);
        assert_eq!(field_for("1", &record), None);
        assert_eq!(field_for("{{2}}", &record), None);
        assert_eq!(field_for("", &record), None);
    }

    #[test]
    fn placeholders_are_distinct_and_in_order() {
        assert_eq!(
            placeholders("Hi {{first_name}}, {{ company }} and {{first_name}} {{1}}"),
            ["first_name", "company", "1"]
        );
        assert!(placeholders("no parameters {{").is_empty());
    }
}
