//! Field metadata (`GET /api/v2/personFields`, `/api/v2/dealFields`;
//! reference §9) as [`FieldMeta`], and which keys of a record body are
//! custom fields.

use serde_json::Value;

use crate::crm::FieldMeta;

/// Standard person fields the v2 API takes on create and update (the
/// OpenAPI body of `POST /api/v2/persons`; `phone` and `email` go in the
/// `phones`/`emails` arrays). `first_name`/`last_name` are not among them:
/// v2 derives them from `name`.
const PERSON_WRITABLE: &[&str] = &[
    "name",
    "phone",
    "email",
    "owner_id",
    "org_id",
    "label_ids",
    "visible_to",
];

/// Standard deal fields of the `POST /api/v2/deals` body.
const DEAL_WRITABLE: &[&str] = &[
    "title",
    "value",
    "currency",
    "owner_id",
    "person_id",
    "org_id",
    "pipeline_id",
    "stage_id",
    "status",
    "probability",
    "lost_reason",
    "expected_close_date",
    "visible_to",
    "label_ids",
];

/// A custom field's key: a 40-character hash, different per company.
pub(super) fn is_custom_key(key: &str) -> bool {
    key.len() == 40 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The longest value of a text-like field type (reference §9).
fn length_of(field_type: &str) -> Option<u32> {
    match field_type {
        "varchar" | "varchar_auto" | "phone" => Some(255),
        "text" => Some(65_000),
        _ => None,
    }
}

/// One v2 field object as [`FieldMeta`]; `None` without a `field_code`.
/// `deals`: whether it is a deal (or lead) field.
pub(super) fn field_meta(field: &Value, deals: bool) -> Option<FieldMeta> {
    let code = field["field_code"].as_str()?;
    let field_type = field["field_type"].as_str().unwrap_or_default();
    let standard = if deals {
        DEAL_WRITABLE
    } else {
        PERSON_WRITABLE
    };
    let writable = field["is_custom_field"] == true || standard.contains(&code);
    Some(FieldMeta {
        api_name: code.to_owned(),
        label: field["field_name"].as_str().unwrap_or(code).to_owned(),
        data_type: field_type.to_owned(),
        json_type: if field_type == "set" {
            "jsonarray"
        } else {
            "string"
        }
        .to_owned(),
        length: length_of(field_type),
        read_only: !writable,
        virtual_field: false,
        api_create: writable,
        picklist_values: field["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o["label"].as_str().map(str::to_owned))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn system_fields_are_read_only_and_custom_ones_writable() {
        let id = field_meta(
            &json!({"field_code": "add_time", "field_name": "Person created", "field_type": "date", "is_custom_field": false}),
            false,
        )
        .expect("a field");
        assert!(id.read_only && !id.api_create);
        let phone = field_meta(
            &json!({"field_code": "phone", "field_name": "Phone", "field_type": "phone", "is_custom_field": false}),
            false,
        )
        .expect("a field");
        assert!(!phone.read_only && phone.api_create);
        assert_eq!(phone.length, Some(255));
        let set = field_meta(
            &json!({"field_code": "a".repeat(40), "field_name": "Interests", "field_type": "set",
                "is_custom_field": true, "options": [{"id": 1, "label": "A"}, {"id": 2, "label": "B"}]}),
            false,
        )
        .expect("a field");
        assert_eq!(set.json_type, "jsonarray");
        assert_eq!(set.picklist_values, vec!["A", "B"]);
        assert!(!set.read_only);
        assert!(is_custom_key(&set.api_name));
        assert!(!is_custom_key("phone"));
    }
}
