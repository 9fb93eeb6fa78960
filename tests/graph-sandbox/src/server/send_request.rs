//! The parameters of a message send, checked as Graph checks them (code 100
//! for anything missing or malformed): recipient, type and the object of
//! that type, `context`, `biz_opaque_callback_data`.

use serde_json::{Map, Value};

use crate::SeedPhoneNumber;
use crate::chat::digits;
use crate::errors::{CloudError, code_info};
use crate::media_rules::MediaKind;

/// Longest text body Meta takes.
const TEXT_MAX_CHARS: usize = 4096;
/// Longest media caption.
const CAPTION_MAX_CHARS: usize = 1024;
const MESSAGE_TYPES: [&str; 11] = [
    "audio",
    "contacts",
    "document",
    "image",
    "interactive",
    "location",
    "reaction",
    "sticker",
    "template",
    "text",
    "video",
];

/// The content of a message send, once its parameters are valid.
pub(super) enum Content {
    Text,
    Media {
        kind: MediaKind,
        id: Option<String>,
    },
    Reaction,
    Template {
        name: String,
        language: String,
        components: Vec<Value>,
    },
    /// `interactive`, `location`, `contacts`: taken as given.
    Other,
}

pub(super) struct MessageRequest {
    pub to: String,
    pub wa_id: String,
    pub content: Content,
    pub biz_opaque_callback_data: Option<String>,
}

pub(super) fn parse_message(
    obj: &Map<String, Value>,
    number: &SeedPhoneNumber,
) -> Result<MessageRequest, CloudError> {
    match obj.get("recipient_type").map(|v| v.as_str()) {
        None | Some(Some("individual")) => {}
        Some(Some("group")) => {
            return Err(CloudError::invalid_parameter(
                "Group sends are not supported by the Graph sandbox.",
            ));
        }
        Some(_) => {
            return Err(CloudError::invalid_parameter(
                "Param recipient_type must be one of {INDIVIDUAL, GROUP}.",
            ));
        }
    }
    let to = required_str(obj, "to", "to")?.to_owned();
    let wa_id = resolve_wa_id(&to, number.country_code()).ok_or_else(|| {
        CloudError::invalid_parameter(format!("Param to ({to}) is not a valid phone number."))
    })?;
    if wa_id == number.display_digits() {
        return Err(CloudError::new(131021, code_info(131021).default_details));
    }
    let message_type = match obj.get("type") {
        None => "text",
        Some(v) => v.as_str().unwrap_or(""),
    };
    if !MESSAGE_TYPES.contains(&message_type) {
        return Err(CloudError::invalid_parameter(format!(
            "Param type must be one of {{{}}} - got \"{message_type}\".",
            MESSAGE_TYPES.join(", ").to_ascii_uppercase()
        )));
    }
    let payload = obj
        .get(message_type)
        .and_then(Value::as_object)
        .ok_or_else(|| {
            CloudError::invalid_parameter(format!("The parameter {message_type} is required."))
        })?;
    if let Some(context) = obj.get("context")
        && !context["message_id"].is_string()
    {
        return Err(CloudError::invalid_parameter(
            "The parameter context['message_id'] is required.",
        ));
    }
    let biz_opaque_callback_data = match obj.get("biz_opaque_callback_data") {
        None => None,
        Some(Value::String(s)) if s.chars().count() <= 512 => Some(s.clone()),
        Some(_) => {
            return Err(CloudError::invalid_parameter(
                "Param biz_opaque_callback_data must be a string of at most 512 characters.",
            ));
        }
    };
    let content = match MediaKind::from_type(message_type) {
        Some(kind) => parse_media(kind, payload)?,
        None => parse_other(message_type, payload)?,
    };
    Ok(MessageRequest {
        to,
        wa_id,
        content,
        biz_opaque_callback_data,
    })
}

fn parse_media(kind: MediaKind, payload: &Map<String, Value>) -> Result<Content, CloudError> {
    let t = kind.as_str();
    let id = payload.get("id").map(|v| v.as_str().unwrap_or(""));
    let link = payload.get("link").map(|v| v.as_str().unwrap_or(""));
    let id = match (id, link) {
        (Some(_), Some(_)) => {
            return Err(CloudError::invalid_parameter(format!(
                "Param {t} must contain either 'id' or 'link', not both."
            )));
        }
        (None, None) => {
            return Err(CloudError::invalid_parameter(format!(
                "The parameter {t}['id'] or {t}['link'] is required."
            )));
        }
        (Some(id), None) if !id.is_empty() => Some(id.to_owned()),
        (None, Some(link)) if is_http_url(link) => None,
        (None, Some(_)) => {
            return Err(CloudError::invalid_parameter(format!(
                "Param {t}['link'] must be a valid http(s) URL."
            )));
        }
        (Some(_), None) => {
            return Err(CloudError::invalid_parameter(format!(
                "Param {t}['id'] must be a non-empty string."
            )));
        }
    };
    if let Some(caption) = payload.get("caption") {
        if matches!(kind, MediaKind::Audio | MediaKind::Sticker) {
            return Err(CloudError::invalid_parameter(format!(
                "Param {t}['caption'] is not supported for {t} messages."
            )));
        }
        if caption
            .as_str()
            .is_none_or(|c| c.chars().count() > CAPTION_MAX_CHARS)
        {
            return Err(CloudError::invalid_parameter(format!(
                "Param {t}['caption'] must be a string of at most {CAPTION_MAX_CHARS} characters."
            )));
        }
    }
    if payload.contains_key("filename") && kind != MediaKind::Document {
        return Err(CloudError::invalid_parameter(format!(
            "Param {t}['filename'] is only supported for document messages."
        )));
    }
    Ok(Content::Media { kind, id })
}

fn parse_other(message_type: &str, payload: &Map<String, Value>) -> Result<Content, CloudError> {
    Ok(match message_type {
        "text" => {
            let body = required_str(payload, "body", "text['body']")?;
            if body.chars().count() > TEXT_MAX_CHARS {
                return Err(CloudError::invalid_parameter(format!(
                    "Param text['body'] must be at most {TEXT_MAX_CHARS} characters long."
                )));
            }
            if payload.get("preview_url").is_some_and(|v| !v.is_boolean()) {
                return Err(CloudError::invalid_parameter(
                    "Param text['preview_url'] must be a boolean.",
                ));
            }
            Content::Text
        }
        "reaction" => {
            required_str(payload, "message_id", "reaction['message_id']")?;
            // An empty emoji removes the reaction.
            if !payload.get("emoji").is_some_and(Value::is_string) {
                return Err(CloudError::invalid_parameter(
                    "The parameter reaction['emoji'] is required.",
                ));
            }
            Content::Reaction
        }
        "template" => {
            let name = required_str(payload, "name", "template['name']")?.to_owned();
            let language = payload
                .get("language")
                .and_then(Value::as_object)
                .map(|l| required_str(l, "code", "template['language']['code']"))
                .unwrap_or_else(|| {
                    Err(CloudError::invalid_parameter(
                        "The parameter template['language'] is required.",
                    ))
                })?
                .to_owned();
            let components = match payload.get("components") {
                None => Vec::new(),
                Some(Value::Array(list)) if list.iter().all(Value::is_object) => list.clone(),
                Some(_) => {
                    return Err(CloudError::invalid_parameter(
                        "Param template['components'] must be an array of objects.",
                    ));
                }
            };
            Content::Template {
                name,
                language,
                components,
            }
        }
        _ => Content::Other,
    })
}

pub(super) fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    shown: &str,
) -> Result<&'a str, CloudError> {
    match obj.get(key).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(CloudError::invalid_parameter(format!(
            "The parameter {shown} is required."
        ))),
    }
}

fn is_http_url(link: &str) -> bool {
    url::Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// `to` as WhatsApp reads it: with `+`, the digits; without, Meta prefixes
/// the business number's country code (reference §8: a UK business sending
/// `7700900123` reaches `+447700900123`). `None` when it cannot be a number.
fn resolve_wa_id(to: &str, country_code: Option<&str>) -> Option<String> {
    let to = to.trim();
    if to
        .chars()
        .any(|c| !(c.is_ascii_digit() || " +-().".contains(c)))
    {
        return None;
    }
    let wa_id = match (to.strip_prefix('+'), country_code) {
        (Some(rest), _) => digits(rest),
        (None, Some(cc)) => format!("{cc}{}", digits(to)),
        (None, None) => digits(to),
    };
    (7..=15).contains(&wa_id.len()).then_some(wa_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_follows_meta_rules() {
        assert_eq!(
            resolve_wa_id("+44 7700-900123", Some("44")).as_deref(),
            Some("447700900123")
        );
        assert_eq!(
            resolve_wa_id("7700900123", Some("44")).as_deref(),
            Some("447700900123")
        );
        // A wa_id without `+` gets the business's code again (reference §8).
        assert_eq!(
            resolve_wa_id("447700900123", Some("44")).as_deref(),
            Some("44447700900123")
        );
        assert_eq!(resolve_wa_id("abc", Some("44")), None);
        assert_eq!(resolve_wa_id("+12", None), None);
    }
}
