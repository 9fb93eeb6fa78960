//! Sync settings (owner or admin): the choices the CRM offers right now,
//! editing while inactive, activation with a test record, deactivation.

use std::sync::Arc;

use lambda_http::Request;
use serde_json::{Map, Value, json};

use super::http::{ApiError, HttpResponse, caller, json_response, no_route, query_params};
use crate::crm::{Crm, CrmError, FieldMeta, ModuleMeta, NewRecord};
use crate::deps::Deps;
use crate::error::WorkError;
use crate::model::{ChatPatch, Connection, CrmKind, OnConverted, SyncSettings, User};
use crate::phone::E164;
use crate::settings::{
    FieldSetting, SettingError, candidate_module, check_field, check_lead_source_value,
    check_module, eligible_fields, eligible_module, missing_setting, pipedrive,
};
use crate::sync::{chat_link, organization_crm, record_fields};
use crate::synclog::{self, SyncEvent};

/// The test record's number: in the range reserved for fiction (NANP
/// 555-01xx), so no real chat ever matches it.
const TEST_RECORD_NUMBER: &str = "15555550100";
const TEST_RECORD_NAME: &str = "WhatsApp sync test record";

/// `/api/settings/{crm}/…` routes.
pub async fn route(
    deps: &Deps,
    req: &Request,
    crm: &str,
    rest: &[&str],
) -> Result<HttpResponse, ApiError> {
    let crm =
        CrmKind::parse(crm).ok_or_else(|| ApiError::NotFound(format!("no CRM called `{crm}`")))?;
    let me = caller(deps, req).await?;
    match (req.method().as_str(), rest) {
        ("GET", []) => show(deps, &me, crm).await,
        ("PUT" | "PATCH", []) => edit(deps, req, &me, crm).await,
        ("GET", ["modules"]) => modules(deps, &me, crm).await,
        ("GET", ["fields"]) => fields(deps, req, &me, crm).await,
        ("GET", ["pipelines"]) => pipelines(deps, &me, crm).await,
        ("POST", ["activate"]) => activate(deps, &me, crm).await,
        ("POST", ["deactivate"]) => deactivate(deps, &me, crm).await,
        (_, []) => Err(ApiError::MethodNotAllowed("GET, PUT, PATCH")),
        (_, ["modules" | "fields" | "pipelines"]) => Err(ApiError::MethodNotAllowed("GET")),
        (_, ["activate" | "deactivate"]) => Err(ApiError::MethodNotAllowed("POST")),
        _ => Err(no_route(req)),
    }
}

fn require_manager(me: &User) -> Result<(), ApiError> {
    if me.role.manages_workspace() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only the workspace owner or an admin can manage sync settings".into(),
        ))
    }
}

async fn stored_or_new(deps: &Deps, me: &User, crm: CrmKind) -> Result<SyncSettings, ApiError> {
    Ok(deps
        .store
        .sync_settings(&me.workspace_id, crm)
        .await?
        .unwrap_or_else(|| SyncSettings::new(&me.workspace_id, crm, deps.clock.now())))
}

async fn settings_response(
    deps: &Deps,
    me: &User,
    settings: &SyncSettings,
    status: u16,
    extra: Value,
) -> Result<HttpResponse, ApiError> {
    let time_zone = deps
        .store
        .workspace(&me.workspace_id)
        .await?
        .map(|w| w.time_zone);
    let mut body = json!({ "settings": settings, "time_zone": time_zone });
    if let (Some(object), Value::Object(more)) = (body.as_object_mut(), extra) {
        object.extend(more);
    }
    Ok(json_response(status, &body))
}

async fn show(deps: &Deps, me: &User, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    let settings = stored_or_new(deps, me, crm).await?;
    settings_response(deps, me, &settings, 200, json!({})).await
}

/// The organization connection's CRM client, for reading metadata.
async fn connected_crm(
    deps: &Deps,
    me: &User,
    crm: CrmKind,
) -> Result<(Connection, Arc<dyn Crm>), ApiError> {
    match organization_crm(deps, &me.workspace_id, crm).await {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(ApiError::Conflict(
            "connect the organization to the CRM first".into(),
        )),
        Err(WorkError::Crm(CrmError::ConnectionBroken(_))) => Err(ApiError::Conflict(
            "the CRM connection is broken; reconnect the organization first".into(),
        )),
        Err(WorkError::NotActive) => Err(ApiError::NotImplemented(format!(
            "this deployment cannot sync to {}",
            crm.display_name()
        ))),
        Err(e) => Err(ApiError::Internal(e.to_string())),
    }
}

fn crm_failure(e: CrmError) -> ApiError {
    match e {
        CrmError::ConnectionBroken(_) => ApiError::Conflict(
            "the CRM connection is broken; reconnect the organization first".into(),
        ),
        other => ApiError::BadGateway(format!("the CRM could not answer: {other}")),
    }
}

/// Destination modules: creatable through the API, with a phone field.
async fn modules(deps: &Deps, me: &User, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    require_manager(me)?;
    let (_, client) = connected_crm(deps, me, crm).await?;
    let mut eligible = Vec::new();
    for module in client
        .modules()
        .await
        .map_err(crm_failure)?
        .into_iter()
        .filter(candidate_module)
    {
        let fields = client.fields(&module.api_name).await.map_err(crm_failure)?;
        if eligible_module(&module, &fields) {
            let number_fields: Vec<&str> = eligible_fields(FieldSetting::Number, &fields)
                .iter()
                .map(|f| f.api_name.as_str())
                .collect();
            eligible.push(json!({
                "api_name": module.api_name,
                "label": module.label,
                "convertable": module.convertable,
                "number_fields": number_fields,
            }));
        }
    }
    Ok(json_response(200, &json!({ "modules": eligible })))
}

/// The fields each setting may use in `?module=`, read live.
async fn fields(
    deps: &Deps,
    req: &Request,
    me: &User,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
    require_manager(me)?;
    let module = query_params(req)
        .remove("module")
        .ok_or_else(|| ApiError::BadRequest("`module` is required".into()))?;
    let (_, client) = connected_crm(deps, me, crm).await?;
    let modules = client.modules().await.map_err(crm_failure)?;
    check_module("module", &modules, &module)?;
    let all = client.fields(&module).await.map_err(crm_failure)?;
    let mut choices = Map::new();
    for setting in [
        FieldSetting::Number,
        FieldSetting::Name,
        FieldSetting::ChatLink,
        FieldSetting::LeadSource,
    ] {
        let offered: Vec<Value> = eligible_fields(setting, &all)
            .into_iter()
            .map(|f| {
                let mut choice =
                    json!({ "api_name": f.api_name, "label": f.label, "data_type": f.data_type });
                if setting == FieldSetting::LeadSource && f.data_type == "picklist" {
                    choice["values"] = json!(f.picklist_values);
                }
                choice
            })
            .collect();
        choices.insert(setting.name().to_owned(), Value::Array(offered));
    }
    Ok(json_response(
        200,
        &json!({ "module": module, "fields": choices }),
    ))
}

/// The pipelines (with stages) and lead labels a follow-up may use, read
/// live (Pipedrive; empty for a CRM whose sync makes no deals or leads).
async fn pipelines(deps: &Deps, me: &User, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    require_manager(me)?;
    let (_, client) = connected_crm(deps, me, crm).await?;
    let pipelines = client.pipelines().await.map_err(crm_failure)?;
    let labels = client.lead_labels().await.map_err(crm_failure)?;
    Ok(json_response(
        200,
        &json!({ "pipelines": pipelines, "lead_labels": labels }),
    ))
}

/// A patch of the settings: keys present are set (`null` clears).
async fn edit(
    deps: &Deps,
    req: &Request,
    me: &User,
    crm: CrmKind,
) -> Result<HttpResponse, ApiError> {
    require_manager(me)?;
    let patch: Map<String, Value> = serde_json::from_slice(req.body().as_ref())
        .map_err(|e| ApiError::BadRequest(format!("request body is not a JSON object: {e}")))?;
    let mut settings = stored_or_new(deps, me, crm).await?;
    if settings.active {
        return Err(ApiError::Conflict(
            "sync settings are active and cannot be edited; deactivate them first".into(),
        ));
    }
    let time_zone = apply_patch(&mut settings, &patch)?;
    let (_, client) = connected_crm(deps, me, crm).await?;
    let checked = validate(client.as_ref(), &settings).await?;
    settings.name_max_length = checked.name_max_length;
    settings.zoho.destination_convertable = checked.destination_convertable;
    save(deps, &mut settings).await?;
    if let Some(zone) = &time_zone {
        deps.store.set_time_zone(&me.workspace_id, zone).await?;
    }
    tracing::info!(workspace_id = %me.workspace_id, crm = crm.as_str(), "sync settings saved");
    settings_response(deps, me, &settings, 200, json!({})).await
}

/// Applies a patch; returns the new time zone if it sets one. A new
/// destination clears the fields that belonged to the old one.
fn apply_patch(
    settings: &mut SyncSettings,
    patch: &Map<String, Value>,
) -> Result<Option<String>, SettingError> {
    let text = |key: &str, value: &Value| -> Result<Option<String>, SettingError> {
        match value {
            Value::Null => Ok(None),
            Value::String(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
            _ => Err(SettingError::new(key, "must be a non-empty string or null")),
        }
    };
    let mut time_zone = None;
    // The destination first: changing it clears its fields before any
    // new ones in the same patch are set.
    if let Some(value) = patch.get("destination_module") {
        let module = text("destination_module", value)?;
        if module != settings.destination_module {
            settings.destination_module = module;
            settings.number_field = None;
            settings.name_field = None;
            settings.name_max_length = None;
            settings.chat_link_field = None;
            settings.zoho.lead_source_field = None;
            settings.zoho.destination_convertable = false;
        }
    }
    if let Some(value) = patch.get("converted_module") {
        let module = text("converted_module", value)?;
        if module != settings.zoho.converted_module {
            settings.zoho.converted_module = module;
            settings.zoho.converted_number_field = None;
        }
    }
    for (key, value) in patch {
        let key_crm = if pipedrive::KEYS.contains(&key.as_str()) {
            Some(CrmKind::Pipedrive)
        } else if pipedrive::ZOHO_KEYS.contains(&key.as_str()) {
            Some(CrmKind::Zoho)
        } else {
            None
        };
        if let Some(owner) = key_crm.filter(|owner| *owner != settings.crm) {
            return Err(SettingError::new(
                key,
                format!(
                    "is a {} setting; these are {}'s",
                    owner.display_name(),
                    settings.crm.display_name()
                ),
            ));
        }
        if key_crm == Some(CrmKind::Pipedrive) {
            pipedrive::apply(&mut settings.pipedrive, key, value)?;
            continue;
        }
        match key.as_str() {
            "destination_module" | "converted_module" => {}
            "number_field" => settings.number_field = text(key, value)?,
            "name_field" => settings.name_field = text(key, value)?,
            "chat_link_field" => settings.chat_link_field = text(key, value)?,
            "lead_source_field" => settings.zoho.lead_source_field = text(key, value)?,
            "converted_number_field" => settings.zoho.converted_number_field = text(key, value)?,
            "lead_source_value" => {
                settings.zoho.lead_source_value =
                    text(key, value)?.ok_or_else(|| SettingError::new(key, "cannot be empty"))?;
            }
            "on_converted" => {
                settings.zoho.on_converted =
                    serde_json::from_value::<OnConverted>(value.clone())
                        .map_err(|_| SettingError::new(key, "must be `continue` or `stop`"))?;
            }
            "time_zone" => {
                let zone =
                    text(key, value)?.ok_or_else(|| SettingError::new(key, "cannot be empty"))?;
                if !crate::time_zone::is_known(&zone) {
                    return Err(SettingError::new(
                        key,
                        format!("`{zone}` is not an IANA time zone"),
                    ));
                }
                time_zone = Some(zone);
            }
            other => {
                return Err(SettingError::new(other, "is not a sync setting"));
            }
        }
    }
    Ok(time_zone)
}

/// What validation learnt from the metadata.
struct Checked {
    name_max_length: Option<u32>,
    destination_convertable: bool,
    destination_fields: Vec<FieldMeta>,
    /// The CRM's modules, as read for the check (empty without a destination).
    modules: Vec<ModuleMeta>,
}

/// Checks every setting that is set against the CRM's metadata now.
async fn validate(crm: &dyn Crm, settings: &SyncSettings) -> Result<Checked, ApiError> {
    let mut checked = Checked {
        name_max_length: None,
        destination_convertable: false,
        destination_fields: Vec::new(),
        modules: Vec::new(),
    };
    let (needs_pipelines, needs_labels) = pipedrive::needs(&settings.pipedrive);
    if needs_pipelines || needs_labels {
        let pipelines = if needs_pipelines {
            crm.pipelines().await.map_err(crm_failure)?
        } else {
            Vec::new()
        };
        let labels = if needs_labels {
            crm.lead_labels().await.map_err(crm_failure)?
        } else {
            Vec::new()
        };
        pipedrive::check(&settings.pipedrive, &pipelines, &labels)?;
    }
    let Some(destination) = &settings.destination_module else {
        return Ok(checked);
    };
    let modules: Vec<ModuleMeta> = crm.modules().await.map_err(crm_failure)?;
    let module = check_module("destination_module", &modules, destination)?;
    checked.destination_convertable = module.convertable;
    let fields: Vec<FieldMeta> = crm.fields(destination).await.map_err(crm_failure)?;
    if !eligible_module(module, &fields) {
        return Err(SettingError::new(
            "destination_module",
            format!("`{destination}` has no phone field to hold the contact's number"),
        )
        .into());
    }
    for setting in [
        FieldSetting::Number,
        FieldSetting::Name,
        FieldSetting::ChatLink,
        FieldSetting::LeadSource,
    ] {
        let Some(api_name) = setting.value(settings) else {
            continue;
        };
        let field = check_field(setting, destination, &fields, api_name)?;
        match setting {
            FieldSetting::Name => checked.name_max_length = field.length,
            FieldSetting::LeadSource => {
                check_lead_source_value(field, &settings.zoho.lead_source_value)?;
            }
            _ => {}
        }
    }
    // Converted records only exist for a convertible destination (Leads).
    if let Some(converted) = settings
        .zoho
        .converted_module
        .as_ref()
        .filter(|_| module.convertable)
    {
        check_module("converted_module", &modules, converted)?;
        if !module.converts_into.iter().any(|m| m == converted) {
            return Err(SettingError::new(
                "converted_module",
                format!(
                    "a converted {} never becomes a record of `{converted}`; choose one of {}",
                    module.api_name,
                    module.converts_into.join(", ")
                ),
            )
            .into());
        }
        if converted == destination {
            return Err(SettingError::new(
                "converted_module",
                "must differ from the destination module",
            )
            .into());
        }
        if let Some(api_name) = &settings.zoho.converted_number_field {
            let converted_fields = crm.fields(converted).await.map_err(crm_failure)?;
            check_field(
                FieldSetting::ConvertedNumber,
                converted,
                &converted_fields,
                api_name,
            )?;
        }
    }
    checked.destination_fields = fields;
    checked.modules = modules;
    Ok(checked)
}

/// Where converted Leads go when nobody chose: a converted Lead becomes a
/// Contact.
const DEFAULT_CONVERTED_MODULE: &str = "Contacts";

/// The converted destination a first activation takes when the settings
/// leave it open: Leads with `continue` and no converted module follow
/// converted Leads into Contacts, searched by the Contacts phone field of the
/// same name as the Leads number field (else its first phone field) in the
/// live metadata, or the converted number field if one was chosen without
/// its module and Contacts has it. `None` when there is nothing to default or Contacts
/// cannot serve (then the activation says `converted_module: is not set`).
async fn default_converted_destination(
    crm: &dyn Crm,
    settings: &SyncSettings,
    checked: &Checked,
) -> Result<Option<(String, String)>, ApiError> {
    if !checked.destination_convertable
        || settings.zoho.on_converted != OnConverted::Continue
        || settings.zoho.converted_module.is_some()
        || check_module(
            "converted_module",
            &checked.modules,
            DEFAULT_CONVERTED_MODULE,
        )
        .is_err()
    {
        return Ok(None);
    }
    let fields = crm
        .fields(DEFAULT_CONVERTED_MODULE)
        .await
        .map_err(crm_failure)?;
    let phone_fields = eligible_fields(FieldSetting::ConvertedNumber, &fields);
    // A number field chosen without its module is kept if Contacts has it;
    // else the field of the destination's number field's name (Zoho's
    // conversion copies a Lead's Mobile into the Contact's Mobile, so that
    // is where a converted contact's number is); else the first phone field.
    let by_name =
        |name: Option<&str>| name.and_then(|name| phone_fields.iter().find(|f| f.api_name == name));
    let chosen = by_name(settings.zoho.converted_number_field.as_deref())
        .or_else(|| by_name(settings.number_field.as_deref()))
        .or(phone_fields.first());
    Ok(chosen.map(|field| (DEFAULT_CONVERTED_MODULE.to_owned(), field.api_name.clone())))
}

async fn save(deps: &Deps, settings: &mut SyncSettings) -> Result<(), ApiError> {
    settings.version += 1;
    settings.updated_at = deps.clock.now();
    if deps.store.save_sync_settings(settings).await? {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "the settings changed meanwhile; read them again".into(),
        ))
    }
}

/// Validates everything, creates a test record, then activates and queues
/// the messages that waited for activation.
async fn activate(deps: &Deps, me: &User, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    require_manager(me)?;
    let mut settings = stored_or_new(deps, me, crm).await?;
    if settings.active {
        // Activating again re-queues whatever still waits (say, after a
        // re-queue that failed half-way): it is harmless when nothing does.
        let (resumed, requeued) = after_activation(deps, &me.workspace_id).await;
        return settings_response(
            deps,
            me,
            &settings,
            200,
            json!({ "already_active": true, "requeue_requested": requeued, "resumed_chats": resumed }),
        )
        .await;
    }
    // One CRM at a time: two active ones would each make a record per chat.
    for other in CrmKind::ALL.into_iter().filter(|other| *other != crm) {
        if deps
            .store
            .sync_settings(&me.workspace_id, other)
            .await?
            .is_some_and(|s| s.active)
        {
            return Err(ApiError::Conflict(format!(
                "the workspace syncs to {} now: deactivate those settings first (POST /api/settings/{}/deactivate)",
                other.display_name(),
                other.as_str()
            )));
        }
    }
    let (connection, client) = connected_crm(deps, me, crm).await?;
    let checked = validate(client.as_ref(), &settings).await?;
    settings.name_max_length = checked.name_max_length;
    settings.zoho.destination_convertable = checked.destination_convertable;
    let defaulted = default_converted_destination(client.as_ref(), &settings, &checked).await?;
    if let Some((module, field)) = &defaulted {
        settings.zoho.converted_module = Some(module.clone());
        settings.zoho.converted_number_field = Some(field.clone());
    }
    let defaults_applied = defaulted.map(
        |(module, field)| json!({ "converted_module": module, "converted_number_field": field }),
    );
    if let Some(missing) = missing_setting(&settings, checked.destination_convertable) {
        return Err(SettingError::new(missing, "is not set").into());
    }
    let test_record = create_test_record(
        client.as_ref(),
        &settings,
        &checked.destination_fields,
        &connection,
    )
    .await?;
    settings.active = true;
    settings.activated_at = Some(deps.clock.now());
    save(deps, &mut settings).await?;
    synclog::workspace_event(deps, &me.workspace_id, SyncEvent::SettingsActivated, json!({ "by_user": me.id, "test_record": test_record, "destination": settings.destination_module, "defaults_applied": defaults_applied })).await;
    tracing::info!(workspace_id = %me.workspace_id, crm = crm.as_str(), defaulted = defaults_applied.is_some(), "sync settings activated");
    let (resumed, requeued) = after_activation(deps, &me.workspace_id).await;
    settings_response(
        deps,
        me,
        &settings,
        200,
        json!({ "test_record": test_record, "requeue_requested": requeued, "resumed_chats": resumed, "defaults_applied": defaults_applied }),
    )
    .await
}

/// What activating does once the settings are active: chats whose sync
/// stopped (a converted lead with `stop`) get a new start under the new
/// settings — first, so that a waiting message of one is synced, not skipped
/// again — then the messages that waited are queued again (a job: see
/// `requeue`). The activation stands whatever fails here: activating again
/// does both again. The chats resumed, and whether the re-queue was asked.
async fn after_activation(deps: &Deps, workspace_id: &str) -> (usize, bool) {
    let resumed = resume_stopped_chats(deps, workspace_id)
        .await
        .unwrap_or_else(|e| {
            tracing::error!(workspace_id, error = %e, "could not resume the stopped chats");
            0
        });
    let requeued = match crate::requeue::request(deps, workspace_id).await {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(workspace_id, error = %e, "could not request the re-queue of the waiting messages");
            false
        }
    };
    (resumed, requeued)
}

/// Stopped chats are checked again on their next message. Their skipped
/// messages stay skipped.
async fn resume_stopped_chats(
    deps: &Deps,
    workspace_id: &str,
) -> Result<usize, crate::error::StoreError> {
    let mut resumed = 0;
    for chat in deps.store.chats(workspace_id).await? {
        if chat.sync_stopped.is_none() {
            continue;
        }
        let patch = ChatPatch {
            sync_stopped: Some(None),
            record_checked_at: Some(0),
            ..ChatPatch::default()
        };
        deps.store
            .patch_chat(workspace_id, &chat.key, &patch)
            .await?;
        resumed += 1;
    }
    Ok(resumed)
}

/// Creates a record the way a new chat would; a refusal names the setting
/// behind the field the CRM refused.
async fn create_test_record(
    crm: &dyn Crm,
    settings: &SyncSettings,
    fields: &[FieldMeta],
    connection: &Connection,
) -> Result<crate::model::RecordRef, ApiError> {
    let number = E164::from_wa_id(TEST_RECORD_NUMBER)
        .map_err(|e| ApiError::Internal(format!("the test number does not parse: {e}")))?;
    let module = settings
        .destination_module
        .clone()
        .ok_or_else(|| SettingError::new("destination_module", "is not set"))?;
    let created = crm
        .create_record(&NewRecord {
            module: module.clone(),
            fields: record_fields(settings, TEST_RECORD_NAME, &number, &chat_link(&number)),
            owner_id: Some(connection.crm_user_id.clone()),
        })
        .await;
    match created {
        Ok(record) => Ok(record),
        // The number is unique in this org and an earlier activation's test
        // record holds it: creating works, the check is made.
        Err(CrmError::Duplicate { record, field })
            if field.is_some() && field == settings.number_field =>
        {
            Ok(record)
        }
        Err(CrmError::Duplicate { field, .. }) => {
            let setting =
                setting_of_field(settings, field.as_deref()).unwrap_or("destination_module");
            Err(SettingError::new(
                setting,
                format!(
                    "{module} refused a test record as a duplicate on `{}`, a unique field",
                    field.as_deref().unwrap_or("?")
                ),
            )
            .into())
        }
        Err(CrmError::Rejected {
            code,
            message,
            field,
            ..
        }) => {
            let chosen = setting_of_field(settings, field.as_deref());
            // A mandatory text field the sync leaves empty is, in practice,
            // the name field chosen wrong (First_Name instead of Last_Name).
            let unfilled_text = code == "MANDATORY_NOT_FOUND"
                && fields
                    .iter()
                    .any(|f| Some(&f.api_name) == field.as_ref() && f.data_type == "text");
            let setting = match chosen {
                Some(setting) => setting,
                None if unfilled_text => "name_field",
                None => "destination_module",
            };
            let about = match &field {
                Some(f) if chosen.is_none() => format!(
                    "{module} refused a test record because field `{f}`, which the sync does not fill, is required"
                ),
                Some(f) => format!("{module} refused a test record because of field `{f}`"),
                None => format!("{module} refused a test record"),
            };
            Err(SettingError::new(setting, format!("{about}: {code} {message}")).into())
        }
        Err(other) => Err(crm_failure(other)),
    }
}

/// The setting that chose `field`, if one did.
fn setting_of_field(settings: &SyncSettings, field: Option<&str>) -> Option<&'static str> {
    let field = field?;
    FieldSetting::ALL
        .into_iter()
        .find(|s| s.value(settings) == Some(field))
        .map(|s| s.name())
}

async fn deactivate(deps: &Deps, me: &User, crm: CrmKind) -> Result<HttpResponse, ApiError> {
    require_manager(me)?;
    let mut settings = stored_or_new(deps, me, crm).await?;
    if settings.active {
        settings.active = false;
        save(deps, &mut settings).await?;
        synclog::workspace_event(
            deps,
            &me.workspace_id,
            SyncEvent::SettingsDeactivated,
            json!({ "by_user": me.id }),
        )
        .await;
    }
    settings_response(deps, me, &settings, 200, json!({})).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ZohoSettings;

    fn stored() -> SyncSettings {
        SyncSettings {
            destination_module: Some("Leads".into()),
            number_field: Some("Mobile".into()),
            name_field: Some("Last_Name".into()),
            name_max_length: Some(80),
            chat_link_field: Some("Website".into()),
            zoho: ZohoSettings {
                lead_source_field: Some("Lead_Source".into()),
                destination_convertable: true,
                converted_module: Some("Contacts".into()),
                converted_number_field: Some("Mobile".into()),
                ..SyncSettings::new("ws", CrmKind::Zoho, 0).zoho
            },
            ..SyncSettings::new("ws", CrmKind::Zoho, 0)
        }
    }

    fn patch(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn changing_the_destination_clears_the_fields_of_the_old_one() {
        let mut settings = stored();
        apply_patch(
            &mut settings,
            &patch(json!({ "destination_module": "Contacts", "name_field": "Last_Name" })),
        )
        .expect("valid patch");
        assert_eq!(settings.destination_module.as_deref(), Some("Contacts"));
        assert_eq!(settings.number_field, None);
        assert_eq!(settings.chat_link_field, None);
        assert_eq!(settings.zoho.lead_source_field, None);
        assert_eq!(
            settings.name_field.as_deref(),
            Some("Last_Name"),
            "set in the same patch"
        );
        // The converted destination is its own setting and stays.
        assert_eq!(
            settings.zoho.converted_number_field.as_deref(),
            Some("Mobile")
        );
    }

    #[test]
    fn the_same_destination_keeps_its_fields_and_null_clears_one() {
        let mut settings = stored();
        apply_patch(
            &mut settings,
            &patch(json!({ "destination_module": "Leads", "chat_link_field": null })),
        )
        .expect("valid patch");
        assert_eq!(settings.number_field.as_deref(), Some("Mobile"));
        assert_eq!(settings.chat_link_field, None);
    }

    #[test]
    fn unknown_keys_bad_rules_and_zones_are_refused_by_name() {
        let mut settings = stored();
        let unknown =
            apply_patch(&mut settings, &patch(json!({ "colour": "red" }))).expect_err("unknown");
        assert_eq!(unknown.setting, "colour");
        let rule = apply_patch(&mut settings, &patch(json!({ "on_converted": "maybe" })))
            .expect_err("rule");
        assert_eq!(rule.setting, "on_converted");
        let zone = apply_patch(
            &mut settings,
            &patch(json!({ "time_zone": "Mars/Olympus" })),
        )
        .expect_err("zone");
        assert_eq!(zone.setting, "time_zone");
        assert_eq!(
            apply_patch(
                &mut settings,
                &patch(json!({ "time_zone": "Europe/Berlin", "on_converted": "stop" }))
            )
            .expect("valid"),
            Some("Europe/Berlin".to_owned())
        );
        assert_eq!(settings.zoho.on_converted, OnConverted::Stop);
    }
}
