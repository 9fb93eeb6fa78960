//! The approved templates a chat's business number may send (when the
//! 24-hour window is closed, they are all the composer offers), read from
//! the number's WhatsApp Business Account and kept for a few minutes per
//! function instance: the picker opens often, templates change rarely.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use super::LiveSession;
use super::send::{SendRefusal, chat_and_number, number_token};
use crate::business_numbers::Template;
use crate::deps::Deps;

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
    let token = number_token(deps, &number).await?;
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
