//! Workspaces, their users (with the global API-token lookups) and WhatsApp
//! numbers (with the global number lookups), and a new retention applied to
//! the stored items (`WORKSPACE`, `USER#`, `WANUMBER#`, `TOKEN#`; keys in the
//! module's table).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};

use crate::error::StoreError;
use crate::model::{User, WhatsAppNumber, Workspace};
use crate::retention::{LEGACY_RETENTION_SECS, Retention, day_note_anchor};
use crate::store::{Swept, WorkspaceStore};
use crate::time_zone::TimeZone;

use super::{
    DynamoStore, Item, RETAINED_FROM, condition_outcome, delete_in_transaction,
    delete_token_lookup, from_item, n, request_error, s, to_item, token_lookup_item, user_item,
    ws_pk,
};

/// How often a token rotation is tried against concurrent rotations.
const ROTATION_ATTEMPTS: usize = 5;

#[async_trait]
impl WorkspaceStore for DynamoStore {
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &User,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        let created = self
            .put_if(
                to_item(ws_pk(&workspace.id), "WORKSPACE".into(), workspace, None)?,
                "attribute_not_exists(pk)",
                None,
            )
            .await?;
        if !created {
            return Err(StoreError::Request(format!(
                "workspace {} exists already",
                workspace.id
            )));
        }
        self.user_with_token(owner, token_hash).await
    }

    async fn workspace(&self, id: &str) -> Result<Option<Workspace>, StoreError> {
        self.get(ws_pk(id), "WORKSPACE".into()).await
    }

    async fn add_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        self.user_with_token(user, token_hash).await
    }

    async fn user(&self, workspace_id: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        self.get(ws_pk(workspace_id), format!("USER#{user_id}"))
            .await
    }

    async fn remove_user(&self, workspace_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let Some(item) = self
            .get_raw(ws_pk(workspace_id), format!("USER#{user_id}"))
            .await?
        else {
            return Ok(false);
        };
        let mut transaction =
            self.client
                .transact_write_items()
                .transact_items(delete_in_transaction(
                    &self.table,
                    ws_pk(workspace_id),
                    format!("USER#{user_id}"),
                )?);
        if let Some(hash) = item.get("token_hash").and_then(|v| v.as_s().ok()) {
            transaction = transaction.transact_items(delete_token_lookup(&self.table, hash)?);
        }
        transaction.send().await.map_err(request_error)?;
        Ok(true)
    }

    async fn replace_token(&self, user: &User, new_hash: &str) -> Result<(), StoreError> {
        // The user is written only if the token it held is still the one
        // whose lookup this transaction deletes: two rotations at once would
        // otherwise leave the loser's lookup behind, a token that still
        // authenticates. The loser reads again and rotates after the winner.
        for _ in 0..ROTATION_ATTEMPTS {
            let Some(stored) = self
                .get_raw(ws_pk(&user.workspace_id), format!("USER#{}", user.id))
                .await?
            else {
                return Err(StoreError::Corrupt(format!(
                    "user {} is not stored",
                    user.id
                )));
            };
            let old = stored
                .get("token_hash")
                .and_then(|v| v.as_s().ok())
                .cloned();
            let mut user_put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(user_item(user, new_hash)?));
            user_put = match &old {
                Some(old) => user_put
                    .condition_expression("token_hash = :old")
                    .expression_attribute_values(":old", s(old.as_str())),
                None => user_put.condition_expression(
                    "attribute_exists(pk) AND attribute_not_exists(token_hash)",
                ),
            };
            let user_put = user_put
                .build()
                .map_err(|e| StoreError::Request(e.to_string()))?;
            let mut transaction = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(user_put).build())
                .transact_items(self.put_in_transaction(token_lookup_item(user, new_hash)?)?);
            if let Some(old) = &old {
                transaction = transaction.transact_items(delete_token_lookup(&self.table, old)?);
            }
            match transaction.send().await {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_transaction_canceled_exception()) =>
                {
                    continue;
                }
                Err(e) => return Err(request_error(e)),
            }
        }
        Err(StoreError::Request(
            "the token kept changing while it was being replaced".into(),
        ))
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let Some(item) = self
            .get_raw(format!("TOKEN#{token_hash}"), "TOKEN".into())
            .await?
        else {
            return Ok(None);
        };
        let field = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let (Some(ws), Some(user_id)) = (field("workspace_id"), field("user_id")) else {
            return Err(StoreError::Corrupt("token lookup without its user".into()));
        };
        let Some(user) = self.get_raw(ws_pk(&ws), format!("USER#{user_id}")).await? else {
            return Ok(None);
        };
        // Only the user's current token: a lookup left over from a rotation
        // must not authenticate.
        let current = user.get("token_hash").and_then(|v| v.as_s().ok());
        if current.map(String::as_str) != Some(token_hash) {
            return Ok(None);
        }
        // Nor a token of a workspace being deleted: they all stop at once,
        // however long removing their lookups takes.
        let workspace: Option<Workspace> = self.get(ws_pk(&ws), "WORKSPACE".into()).await?;
        if !workspace.as_ref().is_some_and(Workspace::accepts_work) {
            return Ok(None);
        }
        from_item(user).map(Some)
    }

    async fn put_whatsapp_number(&self, number: &WhatsAppNumber) -> Result<(), StoreError> {
        // The lookup is written first and only if the number id is free, so
        // one business number can never route to two workspaces.
        let lookup = to_item(
            format!("WANUMBER#{}", number.phone_number_id),
            "WANUMBER".into(),
            number,
            None,
        )?;
        let values = HashMap::from([(":ws".to_owned(), s(&number.workspace_id))]);
        if !self
            .put_if(
                lookup,
                "attribute_not_exists(pk) OR workspace_id = :ws",
                Some(values),
            )
            .await?
        {
            return Err(StoreError::Request(
                "this WhatsApp number belongs to another workspace".into(),
            ));
        }
        self.put(to_item(
            ws_pk(&number.workspace_id),
            format!("WANUMBER#{}", number.phone_number_id),
            number,
            None,
        )?)
        .await
    }

    async fn whatsapp_number(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<WhatsAppNumber>, StoreError> {
        self.get(format!("WANUMBER#{phone_number_id}"), "WANUMBER".into())
            .await
    }

    async fn whatsapp_numbers(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WhatsAppNumber>, StoreError> {
        self.items_with_prefix(workspace_id, "WANUMBER#", None)
            .await
    }

    async fn set_retention(
        &self,
        workspace_id: &str,
        retention: Retention,
    ) -> Result<bool, StoreError> {
        let result = self
            .update_in(workspace_id, "WORKSPACE".into())
            .update_expression("SET retention_days = :days")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(deleting_since)")
            .expression_attribute_values(":days", n(retention.days()))
            .send()
            .await;
        condition_outcome(result)
    }

    async fn reapply_retention_page(
        &self,
        workspace_id: &str,
        after: Option<&str>,
        limit: usize,
        retention: Retention,
        tz: &TimeZone,
    ) -> Result<Swept, StoreError> {
        let (items, next) = self
            .partition_page(
                workspace_id,
                after,
                limit,
                (
                    "sk, #ttl, retained_from, #at, #day",
                    &[("#ttl", "ttl"), ("#at", "at"), ("#day", "day")],
                ),
            )
            .await?;
        let mut count = 0;
        for item in &items {
            let Some(start) = retention_start(item, tz) else {
                continue;
            };
            let expiry = retention.counted_from(start.anchor);
            let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).cloned();
            if number("ttl") == Some(expiry.expires_at.to_string())
                && number(RETAINED_FROM).is_some()
            {
                continue; // already so
            }
            let mut update = self
                .update_in(workspace_id, start.sk.to_owned())
                .update_expression("SET #ttl = :ttl, retained_from = :anchor")
                .condition_expression(start.unchanged)
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":ttl", n(expiry.expires_at))
                .expression_attribute_values(":anchor", n(start.anchor));
            if let Some(old) = start.old_ttl {
                update = update.expression_attribute_values(":old", n(old));
            }
            if condition_outcome(update.send().await)? {
                count += 1;
            }
        }
        Ok(Swept { count, next })
    }
}

/// Where a stored item's retention began, and what must still hold when
/// its new expiry is written (the item not changed meanwhile).
struct RetentionStart<'a> {
    sk: &'a str,
    anchor: i64,
    unchanged: &'static str,
    /// The expiry the condition expects (`:old`), if it names one.
    old_ttl: Option<i64>,
}

/// The retention start of an item that expires with its workspace's
/// retention; none for any other item (and for a message not finished).
fn retention_start<'a>(item: &'a Item, tz: &TimeZone) -> Option<RetentionStart<'a>> {
    let sk = item.get("sk")?.as_s().ok()?;
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
    };
    let start = |anchor, unchanged| {
        Some(RetentionStart {
            sk,
            anchor,
            unchanged,
            old_ttl: None,
        })
    };
    if sk.starts_with("LOG#") {
        return start(number("at")?, "attribute_exists(pk)");
    }
    let is_message = sk.starts_with("MSG#");
    if !is_message && !sk.starts_with("NOTE#") {
        return None;
    }
    if let Some(anchor) = number(RETAINED_FROM) {
        return start(anchor, "retained_from = :anchor");
    }
    if is_message {
        // Finished before anchors were stored: its 30 days ran from when it
        // finished. (Without an expiry it is not finished: it never expires.)
        let ttl = number("ttl")?;
        return Some(RetentionStart {
            sk,
            anchor: ttl - LEGACY_RETENTION_SECS,
            unchanged: "attribute_not_exists(retained_from) AND #ttl = :old",
            old_ttl: Some(ttl),
        });
    }
    // A day note from before day notes expired: from the end of its day.
    let day = item.get("day")?.as_s().ok()?;
    start(
        day_note_anchor(day, tz, 0),
        "attribute_exists(pk) AND attribute_not_exists(retained_from)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sk: &str, numbers: &[(&str, i64)], texts: &[(&str, &str)]) -> Item {
        let mut item = Item::from([("sk".to_owned(), s(sk))]);
        item.extend(numbers.iter().map(|(k, v)| ((*k).to_owned(), n(v))));
        item.extend(texts.iter().map(|(k, v)| ((*k).to_owned(), s(*v))));
        item
    }

    /// 2026-05-20 09:15 UTC.
    const MAY_20_0915: i64 = 1_779_268_500;

    fn anchor(item: &Item) -> Option<(i64, &'static str, Option<i64>)> {
        retention_start(item, &TimeZone::UTC).map(|s| (s.anchor, s.unchanged, s.old_ttl))
    }

    #[test]
    fn an_item_with_its_anchor_is_counted_from_it_if_still_the_same() {
        let message = item(
            "MSG#wamid.1",
            &[("ttl", MAY_20_0915 + 99), (RETAINED_FROM, MAY_20_0915)],
            &[],
        );
        assert_eq!(
            anchor(&message),
            Some((MAY_20_0915, "retained_from = :anchor", None))
        );
        let note = item(
            "NOTE#1#44#2026-05-20#9#1",
            &[(RETAINED_FROM, MAY_20_0915)],
            &[("day", "2026-05-20")],
        );
        assert_eq!(anchor(&note).map(|a| a.0), Some(MAY_20_0915));
    }

    #[test]
    fn items_stored_before_anchors_count_from_what_they_were_given() {
        // A message finished under the fixed 30 days.
        let ttl = MAY_20_0915 + LEGACY_RETENTION_SECS;
        let message = item("MSG#wamid.1", &[("ttl", ttl)], &[]);
        assert_eq!(
            anchor(&message),
            Some((
                MAY_20_0915,
                "attribute_not_exists(retained_from) AND #ttl = :old",
                Some(ttl)
            ))
        );
        // A day note that never expired: from the end of its day.
        let note = item("NOTE#1#44#2026-05-20#9#1", &[], &[("day", "2026-05-20")]);
        assert_eq!(anchor(&note).map(|a| a.0), Some(1_779_321_600));
        // A sync-log entry: from when it was written.
        let entry = item("LOG#000001779268500000000-ab", &[("at", MAY_20_0915)], &[]);
        assert_eq!(anchor(&entry).map(|a| a.0), Some(MAY_20_0915));
    }

    #[test]
    fn what_does_not_expire_with_the_retention_is_left_alone() {
        // A message not finished has no expiry: it keeps none.
        assert!(anchor(&item("MSG#wamid.1", &[], &[])).is_none());
        for sk in [
            "CHAT#1#44",
            "USER#u1",
            "WORKSPACE",
            "CONN#zoho#ORG",
            "OAUTHSTATE#n",
        ] {
            assert!(anchor(&item(sk, &[("ttl", 1)], &[])).is_none(), "{sk}");
        }
    }
}
