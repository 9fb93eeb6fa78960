//! Message templates as a WhatsApp Business Account holds them (live-chat
//! reference §3.1): the seeded set, their Graph JSON shape, and the checks a
//! template send goes through (unknown name or language or not APPROVED →
//! 132001, PAUSED → 132015, DISABLED → 132016, wrong parameter count →
//! 132000).

use serde_json::{Value, json};

use crate::errors::CloudError;

/// A template of one language (Meta keeps one template per name and
/// language).
#[derive(Debug, Clone, PartialEq)]
pub struct SeedTemplate {
    pub id: String,
    /// `None`: the sandbox's WABA ([`crate::GraphSandboxConfig::waba_id`]).
    pub waba_id: Option<String>,
    pub name: String,
    /// `en_US`, `pt_BR`, …: sends must name it exactly.
    pub language: String,
    /// `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, …
    pub status: String,
    /// `MARKETING`, `UTILITY` or `AUTHENTICATION`.
    pub category: String,
    /// `POSITIONAL` (`{{1}}`) or `NAMED` (`{{first_name}}`).
    pub parameter_format: String,
    /// In Graph's shape: `{"type":"HEADER"|"BODY"|"FOOTER"|"BUTTONS",…}`.
    pub components: Vec<Value>,
}

impl SeedTemplate {
    /// A positional template without components; `id` is derived from the
    /// name and language (stable across runs).
    pub fn new(name: &str, language: &str, status: &str, category: &str) -> Self {
        Self {
            id: derived_id(name, language),
            waba_id: None,
            name: name.to_owned(),
            language: language.to_owned(),
            status: status.to_owned(),
            category: category.to_owned(),
            parameter_format: "POSITIONAL".to_owned(),
            components: Vec::new(),
        }
    }

    pub fn with_id(mut self, id: &str) -> Self {
        self.id = id.to_owned();
        self
    }

    pub fn in_waba(mut self, waba_id: &str) -> Self {
        self.waba_id = Some(waba_id.to_owned());
        self
    }

    /// Placeholders are `{{name}}` rather than `{{1}}`.
    pub fn named(mut self) -> Self {
        self.parameter_format = "NAMED".to_owned();
        self
    }

    /// A TEXT header (`{{1}}` in it needs a header parameter at send time).
    pub fn with_header_text(mut self, text: &str) -> Self {
        self.components
            .push(json!({"type": "HEADER", "format": "TEXT", "text": text}));
        self
    }

    /// An IMAGE, VIDEO or DOCUMENT header: one media parameter at send time.
    pub fn with_header_media(mut self, format: &str) -> Self {
        self.components.push(json!({
            "type": "HEADER", "format": format,
            "example": {"header_handle": ["https://scontent.whatsapp.net/example"]},
        }));
        self
    }

    /// The BODY, with example values for its placeholders (Meta requires
    /// them when the body has variables).
    pub fn with_body(mut self, text: &str, example: &[&str]) -> Self {
        let mut body = json!({"type": "BODY", "text": text});
        if !example.is_empty() {
            body["example"] = if self.parameter_format == "NAMED" {
                let named: Vec<Value> = placeholders(text)
                    .iter()
                    .zip(example)
                    .map(|(name, value)| json!({"param_name": name, "example": value}))
                    .collect();
                json!({ "body_text_named_params": named })
            } else {
                json!({ "body_text": [example] })
            };
        }
        self.components.push(body);
        self
    }

    pub fn with_footer(mut self, text: &str) -> Self {
        self.components
            .push(json!({"type": "FOOTER", "text": text}));
        self
    }

    /// QUICK_REPLY buttons.
    pub fn with_quick_replies(mut self, labels: &[&str]) -> Self {
        let buttons: Vec<Value> = labels
            .iter()
            .map(|text| json!({"type": "QUICK_REPLY", "text": text}))
            .collect();
        self.components
            .push(json!({"type": "BUTTONS", "buttons": buttons}));
        self
    }

    /// The template as `GET /{waba}/message_templates` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "language": self.language,
            "status": self.status,
            "category": self.category,
            "id": self.id,
        })
    }

    fn component(&self, kind: &str) -> Option<&Value> {
        self.components.iter().find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
    }

    /// Parameters a send must give for a component (`header` or `body`).
    fn expected_parameters(&self, kind: &str) -> Vec<String> {
        let Some(component) = self.component(kind) else {
            return Vec::new();
        };
        match component["format"].as_str() {
            Some("IMAGE" | "VIDEO" | "DOCUMENT" | "LOCATION") => vec!["media".to_owned()],
            _ => placeholders(component["text"].as_str().unwrap_or("")),
        }
    }
}

/// The distinct placeholders of a text, in order: `{{1}}` → `"1"`.
pub fn placeholders(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut rest = text;
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

fn derived_id(name: &str, language: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{name}/{language}").as_bytes());
    let n = digest
        .iter()
        .take(7)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    // Graph ids are long decimal numbers.
    format!("{}", 1_000_000_000_000_000 + n % 1_000_000_000_000_000)
}

/// The templates every sandbox starts with.
pub fn default_templates() -> Vec<SeedTemplate> {
    vec![
        SeedTemplate::new("hello_world", "en_US", "APPROVED", "UTILITY")
            .with_header_text("Hello World")
            .with_body(
                "Welcome and congratulations!! This message demonstrates your ability to send a WhatsApp message notification from the Cloud API, hosted by Meta. Thank you for taking the time to test with us.",
                &[],
            )
            .with_footer("WhatsApp Business Platform sample message"),
        SeedTemplate::new("order_update", "en", "APPROVED", "UTILITY")
            .with_body(
                "Hi {{1}}, your order {{2}} has been updated.",
                &["Alice", "#1042"],
            )
            .with_footer("Reply STOP to opt out")
            .with_quick_replies(&["Track order"]),
        SeedTemplate::new("order_update", "pt_BR", "APPROVED", "UTILITY")
            .with_body(
                "Olá {{1}}, o seu pedido {{2}} foi atualizado.",
                &["Alice", "#1042"],
            )
            .with_footer("Responda SAIR para cancelar")
            .with_quick_replies(&["Acompanhar pedido"]),
        SeedTemplate::new("spring_sale", "en_US", "REJECTED", "MARKETING")
            .with_body("Our spring sale starts now: {{1}} off everything!", &["20%"]),
        SeedTemplate::new("viewing_reminder", "en_GB", "PENDING", "UTILITY")
            .with_body(
                "Hi {{1}}, a reminder of your viewing on {{2}}.",
                &["Alice", "Thursday 10:00"],
            ),
    ]
}

/// The components of a send's `template` object with the given `type`
/// (`header`, `body`; Meta takes them in lower case).
fn sent_parameters<'a>(components: &'a [Value], kind: &str) -> Option<&'a Vec<Value>> {
    components
        .iter()
        .find(|c| {
            c["type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case(kind))
        })
        .map(|c| c["parameters"].as_array())
        .map(|p| p.unwrap_or(&EMPTY))
}

static EMPTY: Vec<Value> = Vec::new();

/// Checks a template send against the WABA's templates; answers the
/// template that will be sent.
pub fn check_send<'a>(
    templates: impl Iterator<Item = &'a SeedTemplate> + Clone,
    name: &str,
    language: &str,
    components: &[Value],
) -> Result<&'a SeedTemplate, CloudError> {
    let missing = || {
        CloudError::new(
            132001,
            format!("template name ({name}) does not exist in {language}"),
        )
    };
    let template = templates
        .clone()
        .find(|t| t.name == name && t.language == language)
        .ok_or_else(missing)?;
    match template.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => {
            return Err(CloudError::new(
                132015,
                format!("template ({name}) is paused"),
            ));
        }
        "DISABLED" => {
            return Err(CloudError::new(
                132016,
                format!("template ({name}) is disabled"),
            ));
        }
        _ => return Err(missing()),
    }
    for kind in ["header", "body"] {
        let expected = template.expected_parameters(kind);
        let given = sent_parameters(components, kind).map_or(0, Vec::len);
        if given != expected.len() {
            return Err(CloudError::new(
                132000,
                format!(
                    "{kind}: number of localizable_params ({given}) does not match the expected number of params ({})",
                    expected.len()
                ),
            ));
        }
        if template.parameter_format == "NAMED" && kind == "body" {
            check_named(&expected, sent_parameters(components, kind))?;
        }
    }
    Ok(template)
}

/// Named templates: every body parameter names one of the placeholders.
fn check_named(expected: &[String], given: Option<&Vec<Value>>) -> Result<(), CloudError> {
    for parameter in given.into_iter().flatten() {
        let name = parameter["parameter_name"].as_str().unwrap_or("");
        if !expected.iter().any(|e| e == name) {
            return Err(CloudError::new(
                132000,
                format!("body: parameter_name ({name}) is not a parameter of the template"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_distinct_and_ordered() {
        assert_eq!(placeholders("Hi {{1}}, {{2}} and {{1}}"), vec!["1", "2"]);
        assert_eq!(placeholders("{{ name }} {{x"), vec!["name"]);
        assert!(placeholders("no params").is_empty());
    }

    #[test]
    fn the_default_set_checks_sends() {
        let set = default_templates();
        let body = |n: usize| {
            let params: Vec<Value> = (0..n)
                .map(|i| json!({"type": "text", "text": i.to_string()}))
                .collect();
            vec![json!({"type": "body", "parameters": params})]
        };
        assert!(check_send(set.iter(), "hello_world", "en_US", &[]).is_ok());
        assert!(check_send(set.iter(), "order_update", "pt_BR", &body(2)).is_ok());
        let code = |r: Result<&SeedTemplate, CloudError>| r.map(|_| ()).unwrap_err().code;
        assert_eq!(
            code(check_send(set.iter(), "order_update", "en", &body(1))),
            132000
        );
        assert_eq!(
            code(check_send(set.iter(), "order_update", "de", &body(2))),
            132001
        );
        assert_eq!(code(check_send(set.iter(), "nope", "en", &[])), 132001);
        assert_eq!(
            code(check_send(set.iter(), "spring_sale", "en_US", &body(1))),
            132001
        );
    }
}
