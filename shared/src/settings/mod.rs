//! Sync settings against the CRM's live metadata: which modules and fields
//! may be chosen, and why a choice is refused. Nothing here is cached: a
//! custom field made in the CRM a minute ago is offered on the next read.

use crate::crm::{FieldMeta, ModuleMeta};
use crate::model::{OnConverted, SyncSettings};

pub mod pipedrive;

/// A setting that refers to a field of the destination (or converted) module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldSetting {
    Number,
    Name,
    ChatLink,
    LeadSource,
    ConvertedNumber,
}

impl FieldSetting {
    pub const ALL: [Self; 5] = [
        Self::Number,
        Self::Name,
        Self::ChatLink,
        Self::LeadSource,
        Self::ConvertedNumber,
    ];

    /// The setting's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Number => "number_field",
            Self::Name => "name_field",
            Self::ChatLink => "chat_link_field",
            Self::LeadSource => "lead_source_field",
            Self::ConvertedNumber => "converted_number_field",
        }
    }

    /// The CRM data types the setting accepts (Zoho's and Pipedrive's
    /// names: Pipedrive's single-line text is `varchar`).
    pub fn data_types(self) -> &'static [&'static str] {
        match self {
            Self::Number | Self::ConvertedNumber => &["phone"],
            Self::Name => &["text", "varchar", "varchar_auto"],
            Self::ChatLink => &["website", "text", "varchar", "varchar_auto"],
            Self::LeadSource => &["picklist", "text"],
        }
    }

    pub fn value(self, settings: &SyncSettings) -> Option<&str> {
        match self {
            Self::Number => settings.number_field.as_deref(),
            Self::Name => settings.name_field.as_deref(),
            Self::ChatLink => settings.chat_link_field.as_deref(),
            Self::LeadSource => settings.zoho.lead_source_field.as_deref(),
            Self::ConvertedNumber => settings.zoho.converted_number_field.as_deref(),
        }
    }
}

/// Field types that hold several values (or files): never offered, and
/// refused by name when chosen.
const MULTI_VALUE_TYPES: &[&str] = &[
    // Pipedrive's multiple-option field.
    "set",
    "multiselectpicklist",
    "multiselectlookup",
    "multiuserlookup",
    "multi_module_lookup",
    "imageupload",
    "fileupload",
    "profileimage",
    "subform",
];

/// A setting that cannot be used, and why, naming the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct SettingError {
    pub setting: String,
    pub message: String,
}

impl SettingError {
    pub fn new(setting: &str, message: impl Into<String>) -> Self {
        Self {
            setting: setting.to_owned(),
            message: message.into(),
        }
    }
}

fn multi_value(field: &FieldMeta) -> bool {
    field.json_type == "jsonarray" || MULTI_VALUE_TYPES.contains(&field.data_type.as_str())
}

fn writable(field: &FieldMeta) -> bool {
    !field.read_only && !field.virtual_field && field.api_create
}

/// Fields the setting may use: single-value, writable, of an accepted type.
pub fn eligible_fields(setting: FieldSetting, fields: &[FieldMeta]) -> Vec<&FieldMeta> {
    fields
        .iter()
        .filter(|f| check(setting, f).is_ok())
        .collect()
}

/// Whether a module can be a destination (or the converted destination):
/// reachable and creatable through the API, a real module (not a linking
/// or subform one), with at least one usable phone field.
pub fn eligible_module(module: &ModuleMeta, fields: &[FieldMeta]) -> bool {
    module.api_supported
        && module.creatable
        && matches!(module.generated_type.as_str(), "default" | "custom")
        && !eligible_fields(FieldSetting::Number, fields).is_empty()
}

/// Modules worth reading fields of, before the phone-field check.
pub fn candidate_module(module: &ModuleMeta) -> bool {
    module.api_supported
        && module.creatable
        && matches!(module.generated_type.as_str(), "default" | "custom")
}

fn check(setting: FieldSetting, field: &FieldMeta) -> Result<(), SettingError> {
    let name = setting.name();
    if multi_value(field) {
        return Err(SettingError::new(
            name,
            format!(
                "`{}` is a {} field, which holds several values or files; {name} takes a single-value {} field",
                field.api_name,
                field.data_type,
                setting.data_types().join(" or ")
            ),
        ));
    }
    if !setting.data_types().contains(&field.data_type.as_str()) {
        return Err(SettingError::new(
            name,
            format!(
                "`{}` is a {} field; {name} takes a {} field",
                field.api_name,
                field.data_type,
                setting.data_types().join(" or ")
            ),
        ));
    }
    if !writable(field) {
        return Err(SettingError::new(
            name,
            format!(
                "`{}` cannot be written through the API (read-only)",
                field.api_name
            ),
        ));
    }
    Ok(())
}

/// The field `api_name` of the module, if the setting may use it.
pub fn check_field<'a>(
    setting: FieldSetting,
    module: &str,
    fields: &'a [FieldMeta],
    api_name: &str,
) -> Result<&'a FieldMeta, SettingError> {
    let field = fields
        .iter()
        .find(|f| f.api_name == api_name)
        .ok_or_else(|| {
            SettingError::new(
                setting.name(),
                format!("module {module} has no field `{api_name}`"),
            )
        })?;
    check(setting, field)?;
    Ok(field)
}

/// The destination module, if it is one the settings may use.
pub fn check_module<'a>(
    setting: &str,
    modules: &'a [ModuleMeta],
    api_name: &str,
) -> Result<&'a ModuleMeta, SettingError> {
    let module = modules
        .iter()
        .find(|m| m.api_name == api_name)
        .ok_or_else(|| SettingError::new(setting, format!("there is no module `{api_name}`")))?;
    if !candidate_module(module) {
        return Err(SettingError::new(
            setting,
            format!("records of `{api_name}` cannot be created through the API"),
        ));
    }
    Ok(module)
}

/// The lead-source value must be one of a picklist's values.
pub fn check_lead_source_value(field: &FieldMeta, value: &str) -> Result<(), SettingError> {
    if field.data_type == "picklist" && !field.picklist_values.iter().any(|v| v == value) {
        return Err(SettingError::new(
            "lead_source_value",
            format!(
                "`{value}` is not a value of the picklist `{}` (values: {})",
                field.api_name,
                field.picklist_values.join(", ")
            ),
        ));
    }
    if value.trim().is_empty() {
        return Err(SettingError::new(
            "lead_source_value",
            "the lead source value is empty",
        ));
    }
    Ok(())
}

/// Settings that must be set before activation, in the order a person
/// fills them in.
pub fn missing_setting(
    settings: &SyncSettings,
    destination_convertable: bool,
) -> Option<&'static str> {
    if settings.destination_module.is_none() {
        return Some("destination_module");
    }
    if settings.number_field.is_none() {
        return Some("number_field");
    }
    if settings.name_field.is_none() {
        return Some("name_field");
    }
    if destination_convertable && settings.zoho.on_converted == OnConverted::Continue {
        if settings.zoho.converted_module.is_none() {
            return Some("converted_module");
        }
        if settings.zoho.converted_number_field.is_none() {
            return Some("converted_number_field");
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(api_name: &str, data_type: &str, json_type: &str) -> FieldMeta {
        FieldMeta {
            api_name: api_name.into(),
            label: api_name.into(),
            data_type: data_type.into(),
            json_type: json_type.into(),
            length: Some(80),
            read_only: false,
            virtual_field: false,
            api_create: true,
            picklist_values: vec!["WhatsApp".into(), "Web".into()],
        }
    }

    fn fields() -> Vec<FieldMeta> {
        vec![
            field("Last_Name", "text", "string"),
            field("Mobile", "phone", "string"),
            field("Lead_Source", "picklist", "string"),
            field("Product_Interest", "multiselectpicklist", "jsonarray"),
            field("Tag", "text", "jsonarray"),
            field("Website", "website", "string"),
            FieldMeta {
                read_only: true,
                ..field("Full_Name", "text", "string")
            },
        ]
    }

    fn names(list: Vec<&FieldMeta>) -> Vec<&str> {
        list.iter().map(|f| f.api_name.as_str()).collect()
    }

    #[test]
    fn each_setting_is_offered_single_value_writable_fields_of_its_kind() {
        let all = fields();
        assert_eq!(
            names(eligible_fields(FieldSetting::Number, &all)),
            ["Mobile"]
        );
        assert_eq!(
            names(eligible_fields(FieldSetting::Name, &all)),
            ["Last_Name"]
        );
        assert_eq!(
            names(eligible_fields(FieldSetting::ChatLink, &all)),
            ["Last_Name", "Website"]
        );
        assert_eq!(
            names(eligible_fields(FieldSetting::LeadSource, &all)),
            ["Last_Name", "Lead_Source"]
        );
    }

    #[test]
    fn a_multi_value_field_is_refused_naming_the_field_and_its_type() {
        let all = fields();
        let error = check_field(FieldSetting::LeadSource, "Leads", &all, "Product_Interest")
            .expect_err("multi-value");
        assert_eq!(error.setting, "lead_source_field");
        assert!(
            error
                .message
                .contains("`Product_Interest` is a multiselectpicklist field"),
            "{error}"
        );
        // Tag is `text` by data type but an array by JSON type.
        let error = check_field(FieldSetting::Name, "Leads", &all, "Tag").expect_err("array");
        assert!(error.message.contains("several values"), "{error}");
    }

    #[test]
    fn wrong_type_read_only_and_unknown_fields_are_refused() {
        let all = fields();
        let wrong =
            check_field(FieldSetting::Number, "Leads", &all, "Last_Name").expect_err("text");
        assert_eq!(
            wrong.to_string(),
            "number_field: `Last_Name` is a text field; number_field takes a phone field"
        );
        let ro = check_field(FieldSetting::Name, "Leads", &all, "Full_Name").expect_err("ro");
        assert!(ro.message.contains("read-only"), "{ro}");
        let unknown = check_field(FieldSetting::Name, "Leads", &all, "Nope").expect_err("unknown");
        assert_eq!(unknown.message, "module Leads has no field `Nope`");
    }

    #[test]
    fn lead_source_value_must_be_a_picklist_value() {
        let picklist = field("Lead_Source", "picklist", "string");
        assert!(check_lead_source_value(&picklist, "WhatsApp").is_ok());
        let error = check_lead_source_value(&picklist, "Fax").expect_err("not a value");
        assert_eq!(error.setting, "lead_source_value");
        assert!(check_lead_source_value(&field("Src", "text", "string"), "Fax").is_ok());
    }

    #[test]
    fn modules_need_api_creation_and_a_phone_field() {
        let module = |name: &str, kind: &str, api: bool| ModuleMeta {
            api_name: name.into(),
            label: name.into(),
            api_supported: api,
            creatable: true,
            generated_type: kind.into(),
            convertable: false,
            converts_into: Vec::new(),
        };
        let all = fields();
        assert!(eligible_module(&module("Leads", "default", true), &all));
        assert!(!eligible_module(&module("Visits", "web", false), &all));
        assert!(!eligible_module(
            &module("Contacts_X_Deals", "linking", true),
            &all
        ));
        let no_phone = vec![field("Last_Name", "text", "string")];
        assert!(!eligible_module(
            &module("Accounts", "default", true),
            &no_phone
        ));
    }
}
