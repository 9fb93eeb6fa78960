//! Hostile input, property by property (see `hostile/mod.rs`). The count
//! is proptest's: 256 cases a property unless `PROPTEST_CASES` says
//! otherwise; `cargo bench -p shared --bench hostile_input` runs ≥ 100,000.

mod hostile;

use hostile::{Checked, api, notes, oauth, phone, webhook};
use proptest::prelude::*;

/// A violation as a proptest failure, so it is shrunk and shown.
fn holds(checked: Checked) -> Result<(), TestCaseError> {
    checked.map_err(|v| TestCaseError::fail(v.to_string()))
}

proptest! {
    #[test]
    fn webhook_without_a_valid_signature_is_401_and_stores_nothing(input in webhook::unsigned()) {
        holds(webhook::check_unsigned(&input))?;
    }

    #[test]
    fn webhook_signed_garbage_is_a_clear_400_and_stores_nothing(body in webhook::signed_body()) {
        holds(webhook::check_signed(&body))?;
    }

    #[test]
    fn webhook_valid_deliveries_of_every_type_store_each_message_once(delivery in webhook::delivery()) {
        holds(webhook::check_delivery(&delivery))?;
    }

    #[test]
    fn phone_numbers_parse_to_e164_that_reads_back_with_symmetric_equivalents(raw in phone::raw_number()) {
        holds(phone::check(&raw))?;
    }

    #[test]
    fn pipedrive_notes_escape_every_character_of_the_input(draft in notes::draft()) {
        holds(notes::check_pipedrive_html(&draft))?;
    }

    #[test]
    fn day_notes_keep_within_the_limit_and_hold_each_message_once(day in notes::day()) {
        holds(notes::check_day(&day))?;
    }

    #[test]
    fn oauth_callbacks_store_nothing_without_the_flows_signed_state(callback in oauth::callback()) {
        holds(oauth::check(&callback))?;
    }

    #[test]
    fn api_json_bodies_are_answered_below_500(call in api::call()) {
        holds(api::check(&call))?;
    }
}
