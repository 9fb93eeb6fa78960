//! Pipedrive's part of the sync settings: what a new chat creates besides
//! the person (nothing, a lead, or a deal in a pipeline and stage), and
//! whether day notes also go on the person's open deal. Checked against the
//! pipelines, stages and lead labels the CRM has now.

use serde_json::Value;

use super::SettingError;
use crate::crm::{Choice, Pipeline};
use crate::model::{DEFAULT_FOLLOW_UP_TITLE, FollowUpRule, PipedriveSettings};

/// The settings keys of Pipedrive's part.
pub const KEYS: &[&str] = &["follow_up", "note_on_open_deal", "open_deal_pipeline_id"];

/// The settings keys only Zoho has.
pub const ZOHO_KEYS: &[&str] = &[
    "lead_source_field",
    "lead_source_value",
    "on_converted",
    "converted_module",
    "converted_number_field",
];

/// An id as people send it: `"3"` or `3`.
fn id_text(key: &str, value: &Value) -> Result<Option<String>, SettingError> {
    match value {
        Value::Null => Ok(None),
        Value::Number(n) if n.is_u64() => Ok(Some(n.to_string())),
        Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        _ => Err(SettingError::new(
            key,
            "must be an id (a number or a string) or null",
        )),
    }
}

/// Sets one key of Pipedrive's part from a settings patch.
pub fn apply(
    settings: &mut PipedriveSettings,
    key: &str,
    value: &Value,
) -> Result<(), SettingError> {
    match key {
        "follow_up" => settings.follow_up = follow_up_rule(value)?,
        "note_on_open_deal" => {
            settings.note_on_open_deal = value
                .as_bool()
                .ok_or_else(|| SettingError::new(key, "must be true or false"))?;
        }
        "open_deal_pipeline_id" => settings.open_deal_pipeline_id = id_text(key, value)?,
        other => return Err(SettingError::new(other, "is not a sync setting")),
    }
    Ok(())
}

/// `{"kind": "none" | "lead" | "deal", …}` (or null: none).
fn follow_up_rule(value: &Value) -> Result<FollowUpRule, SettingError> {
    const KEY: &str = "follow_up";
    let object = match value {
        Value::Null => return Ok(FollowUpRule::None),
        Value::Object(object) => object,
        _ => {
            return Err(SettingError::new(
                KEY,
                "must be an object with `kind`: none, lead or deal",
            ));
        }
    };
    for key in object.keys() {
        if ![
            "kind",
            "title_template",
            "label_id",
            "pipeline_id",
            "stage_id",
        ]
        .contains(&key.as_str())
        {
            return Err(SettingError::new(
                KEY,
                format!(
                    "`{key}` is not part of a follow-up (kind, title_template, label_id, pipeline_id, stage_id)"
                ),
            ));
        }
    }
    let title_template = match object.get("title_template") {
        None | Some(Value::Null) => DEFAULT_FOLLOW_UP_TITLE.to_owned(),
        Some(Value::String(t)) if !t.trim().is_empty() && t.chars().count() <= 200 => {
            t.trim().to_owned()
        }
        Some(_) => {
            return Err(SettingError::new(
                KEY,
                "title_template must be a non-empty text of at most 200 characters",
            ));
        }
    };
    let field = |name: &str| id_text(KEY, object.get(name).unwrap_or(&Value::Null));
    match object.get("kind").and_then(Value::as_str) {
        Some("none") => Ok(FollowUpRule::None),
        Some("lead") => Ok(FollowUpRule::Lead {
            title_template,
            label_id: field("label_id")?,
        }),
        Some("deal") => Ok(FollowUpRule::Deal {
            title_template,
            pipeline_id: field("pipeline_id")?.ok_or_else(|| {
                SettingError::new(
                    KEY,
                    "a deal needs `pipeline_id` (GET /api/settings/pipedrive/pipelines lists them)",
                )
            })?,
            stage_id: field("stage_id")?,
        }),
        _ => Err(SettingError::new(KEY, "`kind` must be none, lead or deal")),
    }
}

/// Whether checking the part needs the CRM's pipelines, and its labels.
pub fn needs(settings: &PipedriveSettings) -> (bool, bool) {
    let pipelines = matches!(settings.follow_up, FollowUpRule::Deal { .. })
        || settings.open_deal_pipeline_id.is_some();
    let labels = matches!(
        settings.follow_up,
        FollowUpRule::Lead {
            label_id: Some(_),
            ..
        }
    );
    (pipelines, labels)
}

/// Checks the part against the CRM's pipelines and lead labels.
pub fn check(
    settings: &PipedriveSettings,
    pipelines: &[Pipeline],
    labels: &[Choice],
) -> Result<(), SettingError> {
    let pipeline = |key: &str, id: &str| {
        pipelines.iter().find(|p| p.id == id).ok_or_else(|| {
            let known: Vec<String> = pipelines
                .iter()
                .map(|p| format!("{} ({})", p.id, p.name))
                .collect();
            SettingError::new(
                key,
                format!("there is no pipeline {id}; pipelines: {}", known.join(", ")),
            )
        })
    };
    match &settings.follow_up {
        FollowUpRule::None => {}
        FollowUpRule::Lead { label_id, .. } => {
            if let Some(label) = label_id
                && !labels.iter().any(|l| &l.id == label)
            {
                let known: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
                return Err(SettingError::new(
                    "follow_up",
                    format!(
                        "there is no lead label {label}; labels: {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        FollowUpRule::Deal {
            pipeline_id,
            stage_id,
            ..
        } => {
            let chosen = pipeline("follow_up", pipeline_id)?;
            if let Some(stage) = stage_id
                && !chosen.stages.iter().any(|s| &s.id == stage)
            {
                return Err(SettingError::new(
                    "follow_up",
                    format!(
                        "stage {stage} is not a stage of pipeline {} ({})",
                        chosen.id, chosen.name
                    ),
                ));
            }
        }
    }
    if let Some(id) = &settings.open_deal_pipeline_id {
        pipeline("open_deal_pipeline_id", id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pipelines() -> Vec<Pipeline> {
        vec![Pipeline {
            id: "1".into(),
            name: "Sales".into(),
            stages: vec![Choice {
                id: "11".into(),
                name: "Qualified".into(),
            }],
        }]
    }

    #[test]
    fn a_deal_follow_up_takes_a_pipeline_and_a_stage_of_it() {
        let mut part = PipedriveSettings::default();
        apply(
            &mut part,
            "follow_up",
            &json!({"kind": "deal", "pipeline_id": 1, "stage_id": "11"}),
        )
        .expect("valid");
        assert_eq!(
            part.follow_up,
            FollowUpRule::Deal {
                title_template: DEFAULT_FOLLOW_UP_TITLE.into(),
                pipeline_id: "1".into(),
                stage_id: Some("11".into()),
            }
        );
        assert_eq!(needs(&part), (true, false));
        assert!(check(&part, &pipelines(), &[]).is_ok());
        apply(
            &mut part,
            "follow_up",
            &json!({"kind": "deal", "pipeline_id": "1", "stage_id": "12"}),
        )
        .expect("parses");
        let refused = check(&part, &pipelines(), &[]).expect_err("not its stage");
        assert_eq!(
            refused.to_string(),
            "follow_up: stage 12 is not a stage of pipeline 1 (Sales)"
        );
    }

    #[test]
    fn unknown_pipelines_labels_kinds_and_keys_are_refused_by_name() {
        let mut part = PipedriveSettings::default();
        let no_pipeline = apply(&mut part, "follow_up", &json!({"kind": "deal"}))
            .expect_err("a deal needs a pipeline");
        assert!(no_pipeline.message.contains("pipeline_id"), "{no_pipeline}");
        assert!(apply(&mut part, "follow_up", &json!({"kind": "task"})).is_err());
        assert!(apply(&mut part, "follow_up", &json!({"kind": "lead", "owner": 1})).is_err());
        assert!(apply(&mut part, "note_on_open_deal", &json!("yes")).is_err());
        apply(&mut part, "open_deal_pipeline_id", &json!(9)).expect("parses");
        let refused = check(&part, &pipelines(), &[]).expect_err("no pipeline 9");
        assert_eq!(refused.setting, "open_deal_pipeline_id");
        part.open_deal_pipeline_id = None;
        apply(
            &mut part,
            "follow_up",
            &json!({"kind": "lead", "label_id": "x", "title_template": "Chat: {name}"}),
        )
        .expect("parses");
        assert_eq!(needs(&part), (false, true));
        let refused = check(&part, &[], &[]).expect_err("no such label");
        assert!(refused.message.contains("no lead label x"), "{refused}");
    }
}
