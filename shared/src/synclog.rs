//! The sync log: every decision the sync takes, as the workspace reads it.
//! Entries never hold tokens or message text, but may name contacts and
//! files: they expire after the workspace's retention (`crate::retention`).

use rand::RngCore;
use serde_json::Value;

use crate::deps::Deps;
use crate::store::{LogEntry, Store};

/// Writes one entry, which expires after the workspace's retention; nothing
/// for a workspace being deleted (or gone). A failure to log never fails
/// the sync: it is reported in the function's own logs instead.
pub async fn record(
    store: &dyn Store,
    now: i64,
    workspace_id: &str,
    event: &str,
    chat_key: Option<&str>,
    message_id: Option<&str>,
    detail: Value,
) {
    let mut suffix = [0u8; 4];
    rand::rng().fill_bytes(&mut suffix);
    // Microseconds, so that entries one worker writes in a row keep their
    // order (milliseconds tied, and the random suffix then shuffled them).
    // The first 15 digits are the millisecond ids older entries carry, so
    // both sort together.
    let at_us = chrono::Utc::now().timestamp_micros();
    let entry = LogEntry {
        id: format!("{at_us:018}-{}", hex::encode(suffix)),
        workspace_id: workspace_id.to_owned(),
        at: now,
        event: event.to_owned(),
        chat_key: chat_key.map(str::to_owned),
        message_id: message_id.map(str::to_owned),
        detail,
    };
    let written = match store.workspace(workspace_id).await {
        Ok(Some(workspace)) if workspace.accepts_work() => {
            store
                .append_log(&entry, workspace.retention.counted_from(now).expires_at)
                .await
        }
        Ok(_) => {
            tracing::info!(
                workspace_id,
                event,
                "not logged: the workspace is deleted or being deleted"
            );
            Ok(())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        tracing::warn!(workspace_id, event, error = %e, "could not write the sync log");
    }
}

/// An entry about the workspace as a whole (settings, connections), now.
pub async fn workspace_event(deps: &Deps, workspace_id: &str, event: &str, detail: Value) {
    record(
        deps.store.as_ref(),
        deps.clock.now(),
        workspace_id,
        event,
        None,
        None,
        detail,
    )
    .await;
}
