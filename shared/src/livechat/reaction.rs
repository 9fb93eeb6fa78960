//! Reactions from the live chat: an emoji on a message the contact sent
//! (live-chat reference §3.3). WhatsApp applies reactions only to received
//! messages of the last 30 days, and tells of a wrong target at most in a
//! status webhook, so the target is checked here, against the chat's own
//! messages, before anything is sent.

use serde::Deserialize;

use super::send::SendRefusal;
use crate::deps::Deps;
use crate::whatsapp::Direction;

/// How old a message may be to be reacted to (Meta does not deliver a
/// reaction to an older one).
pub const TARGET_MAX_AGE_SECS: i64 = 30 * 24 * 3600;
/// The most code points one emoji takes: a family or a flag of a region
/// joins up to 7; a few more leave room for skin tones and selectors.
const EMOJI_MAX_CHARS: usize = 12;
/// How much of the message reacted to its line quotes.
const QUOTE_MAX_CHARS: usize = 40;

#[derive(Debug, Deserialize)]
pub struct ReactionRequest {
    /// The contact's message (its WhatsApp id).
    pub message_id: String,
    /// One emoji; `""` takes our reaction back.
    pub emoji: String,
}

/// Whether `emoji` is one emoji or `""` (what WhatsApp shows is not
/// checked further: new emoji appear every year).
pub fn check_emoji(emoji: &str) -> Result<(), SendRefusal> {
    let one = emoji.is_empty()
        || (emoji.chars().count() <= EMOJI_MAX_CHARS
            && !emoji.is_ascii()
            && !emoji.chars().any(|c| c.is_whitespace() || c.is_control()));
    if one {
        Ok(())
    } else {
        Err(SendRefusal::Invalid(
            "emoji must be one emoji, or \"\" to take the reaction back".into(),
        ))
    }
}

/// Checks that `asked` is on a message the contact sent in `chat_key`
/// within the last 30 days; the reaction's line for the chat and the day
/// note, quoting that message as inbound reactions are shown
/// (`[Reacted 👍 to "…"]`).
pub async fn target_line(
    deps: &Deps,
    workspace_id: &str,
    chat_key: &str,
    asked: &ReactionRequest,
    now: i64,
) -> Result<String, SendRefusal> {
    let target = deps
        .store
        .message(workspace_id, asked.message_id.trim())
        .await?
        // A message of another chat is as unknown here as none at all.
        .filter(|m| m.chat_key == chat_key)
        .ok_or(SendRefusal::UnknownTarget)?;
    if target.direction != Direction::Inbound || target.kind == "reaction" {
        return Err(SendRefusal::Invalid(
            "WhatsApp takes reactions only to messages the contact sent".into(),
        ));
    }
    if target.timestamp + TARGET_MAX_AGE_SECS < now {
        return Err(SendRefusal::Invalid(
            "the message is more than 30 days old: WhatsApp no longer takes reactions to it".into(),
        ));
    }
    let mut quote: String = target.text.chars().take(QUOTE_MAX_CHARS).collect();
    if target.text.chars().count() > QUOTE_MAX_CHARS {
        quote.push('…');
    }
    Ok(if asked.emoji.is_empty() {
        format!("[Removed a reaction to \"{quote}\"]")
    } else {
        format!("[Reacted {} to \"{quote}\"]", asked.emoji)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emoji_or_nothing() {
        for fine in ["👍", "❤️", "👨‍👩‍👧‍👦", "🇬🇧", "1️⃣", "🧑🏽‍🤝‍🧑🏻", ""]
        {
            assert!(check_emoji(fine).is_ok(), "{fine}");
        }
        for wrong in ["ok", ":)", "👍 👍", "👍\n", &"😀".repeat(13)] {
            assert!(check_emoji(wrong).is_err(), "{wrong}");
        }
    }
}
