//! The phone normaliser: whatever it accepts is E.164 and reads back as
//! itself; equivalent forms are symmetric; redaction hides the number.

use proptest::prelude::*;
use shared::phone::E164;

use super::{Checked, ensure};

/// `+`, then 7 to 15 digits, the first not 0. (The shortest numbers in
/// use have 7: Niue's `+683 4002`.)
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (7..=15).contains(&digits.len())
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Strings of every kind: any Unicode, digits with separators and
/// prefixes, and the national shapes the equivalents handle.
pub fn raw_number() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => any::<String>(),
        2 => "[+0]{0,3}[0-9 ()./-]{0,22}",
        2 => "(\\+|00)?[1-9][0-9]{0,16}",
        1 => "\\+?(55[1-9][0-9]9?[6-9][0-9]{7}|55[1-9][0-9]9[0-5][0-9]{7})",
        1 => "\\+?52(1)?[1-9][0-9]{9}",
        1 => "\\+?54(9)?[1-9][0-9]{9}",
        1 => "\\+?[1-9][0-9]{0,3} ?\\(0\\) ?[0-9 -]{4,14}",
        1 => "[+0-9\u{ff10}-\u{ff19}\u{0660}-\u{0669}]{1,16}",
    ]
}

pub fn check(raw: &str) -> Checked {
    let parsers: [(&str, Option<E164>); 3] = [
        ("from_wa_id", E164::from_wa_id(raw).ok()),
        ("parse_stored", E164::parse_stored(raw)),
        (
            "parse_business_number",
            E164::parse_business_number(raw).ok(),
        ),
    ];
    for (parser, parsed) in parsers {
        let Some(number) = parsed else { continue };
        check_number(&number).map_err(|e| {
            super::Violation::Property(format!("{parser}({raw:?}) = {number}: {e}"))
        })?;
    }
    Ok(())
}

/// What must hold of every number the normaliser produced.
pub fn check_number(number: &E164) -> Checked {
    let text = number.to_string();
    ensure(is_e164(&text), || format!("{text} is not E.164"))?;
    // Read back from each form it is written in.
    ensure(E164::from_wa_id(&text).as_ref() == Ok(number), || {
        format!("from_wa_id({text}) is not itself")
    })?;
    ensure(
        E164::from_wa_id(number.digits()).as_ref() == Ok(number),
        || format!("from_wa_id of its digits is not {text}"),
    )?;
    ensure(
        E164::parse_business_number(&text).as_ref() == Ok(number),
        || format!("parse_business_number({text}) is not itself"),
    )?;
    let json =
        serde_json::to_string(number).map_err(|e| super::Violation::Property(e.to_string()))?;
    ensure(
        serde_json::from_str::<E164>(&json).ok().as_ref() == Some(number),
        || format!("{text} does not survive JSON"),
    )?;
    for form in number.written_forms() {
        ensure(E164::parse_stored(&form).as_ref() == Some(number), || {
            format!(
                "its written form {form:?} reads as {:?}",
                E164::parse_stored(&form)
            )
        })?;
    }
    let equivalents = number.equivalents();
    ensure(!equivalents.contains(number), || {
        format!("{text} is among its own equivalents")
    })?;
    for other in &equivalents {
        ensure(is_e164(other.as_str()), || {
            format!("equivalent {other} of {text} is not E.164")
        })?;
        ensure(other.equivalents().contains(number), || {
            format!("{other} is equivalent to {text}, but not the other way")
        })?;
        ensure(number.same_line(other) && other.same_line(number), || {
            format!("same_line({text}, {other}) is not symmetric")
        })?;
    }
    // Logs show the country code and the last two digits, no more.
    let redacted = number.redacted().to_string();
    let shown = redacted.bytes().filter(u8::is_ascii_digit).count();
    ensure(
        shown <= 4 && redacted.ends_with(&text[text.len() - 2..]),
        || format!("{text} is redacted as {redacted}"),
    )
}
