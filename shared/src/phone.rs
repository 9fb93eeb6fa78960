//! Phone numbers in E.164, and their redaction for logs.

use std::fmt;

use phonenumber::Mode;
use serde::{Deserialize, Serialize};

/// A phone number in E.164 form (`+` and up to 15 digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// The fewest digits of a number in use, country code included (Niue's
/// `+683 4002`): fewer is a fragment, never a line.
const MIN_DIGITS: usize = 7;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a phone number in international form")]
pub struct NotE164;

impl E164 {
    /// A WhatsApp id (`wa_id`, `from`): digits without `+`. WhatsApp has proven
    /// the number exists, so it is not checked against phone metadata (new
    /// ranges appear before the metadata knows them); only its shape is:
    /// 7 to 15 digits, the first not 0.
    pub fn from_wa_id(wa_id: &str) -> Result<Self, NotE164> {
        let digits = wa_id.trim().trim_start_matches('+');
        if digits.len() < MIN_DIGITS
            || digits.len() > 15
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(NotE164);
        }
        Ok(Self(format!("+{digits}")))
    }

    /// A number as a person typed it into a CRM: spaces, dashes, brackets,
    /// `(0)`, a leading `00`. Only numbers with a country code match: without
    /// one, the country is a guess, and a wrong guess links the wrong person.
    pub fn parse_stored(raw: &str) -> Option<Self> {
        // `(0)` marks the national trunk prefix, dropped in international form.
        let without_trunk = raw.replace("(0)", "");
        let trimmed = without_trunk.trim();
        let international = if let Some(rest) = trimmed.strip_prefix("00") {
            format!("+{rest}")
        } else if trimmed.starts_with('+') {
            trimmed.to_owned()
        } else {
            return None;
        };
        match phonenumber::parse(None, &international) {
            Ok(number) => Self::from_wa_id(&number.format().mode(Mode::E164).to_string()).ok(),
            // Numbers the metadata does not know yet still have a shape we can
            // read: keep the digits if that is all they are.
            Err(_) => {
                let digits: String = international
                    .chars()
                    .filter(|c| c.is_ascii_digit())
                    .collect();
                let only_separators = international
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-().".contains(c));
                only_separators
                    .then(|| Self::from_wa_id(&digits).ok())
                    .flatten()
            }
        }
    }

    /// A business number as Meta writes it: digits without `+` in webhooks
    /// (`447700900100`), or spaced and with `+` as WhatsApp Manager and the
    /// Graph API show it (`+44 7700 900100`, `+1 555-025-3483`). Meta always
    /// writes it with its country code, so digits without `+` are read as
    /// international too.
    pub fn parse_business_number(raw: &str) -> Result<Self, NotE164> {
        if let Ok(number) = Self::from_wa_id(raw) {
            return Ok(number);
        }
        let trimmed = raw.trim();
        // Digits and separators only: the phone metadata would read letters
        // as a keypad's (`O` as 6).
        if !trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
        {
            return Err(NotE164);
        }
        let international = if trimmed.starts_with('+') || trimmed.starts_with("00") {
            trimmed.to_owned()
        } else {
            format!("+{trimmed}")
        };
        Self::parse_stored(&international).ok_or(NotE164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number as people commonly write it with its country code, if
    /// the phone metadata knows its shape: `+44 7700 900123` and
    /// `+44-7700-900123`.
    pub fn written_forms(&self) -> Vec<String> {
        let Ok(number) = phonenumber::parse(None, &self.0) else {
            return Vec::new();
        };
        let spaced = number.format().mode(Mode::International).to_string();
        let dashed = number
            .format()
            .mode(Mode::Rfc3966)
            .to_string()
            .trim_start_matches("tel:")
            .to_owned();
        // The metadata drops digits it reads as a trunk prefix (`+961 0001`
        // comes out `+961 01`): such a form is another number, and a search
        // by it could find another person's record.
        let same_digits = |form: &String| {
            form.chars()
                .filter(char::is_ascii_digit)
                .eq(self.digits().chars())
        };
        [spaced, dashed]
            .into_iter()
            .filter(|f| f != &self.0 && same_digits(f))
            .collect()
    }

    /// Digits without `+`, the form WhatsApp and wa.me links use.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// Other forms of the same line that a national numbering quirk makes
    /// people (and WhatsApp) write: Brazil's mobile numbers with and without
    /// the ninth digit, Mexico's mobiles with and without the `1` after
    /// `+52`, Argentina's with and without the `9` after `+54`. Treating them
    /// as one number is what keeps a chat from creating a duplicate record.
    pub fn equivalents(&self) -> Vec<E164> {
        let d = self.digits();
        let mut forms = Vec::new();
        let with = |prefix: &str, insert: &str, rest: &str| format!("{prefix}{insert}{rest}");
        match (d.get(..2), d.len()) {
            // +55 AA 9XXXX XXXX ↔ +55 AA XXXX XXXX (mobiles start 6–9, so
            // only a ninth digit before 6–9 was added: `9 1234 5678` never
            // had an eight-digit form, and `1234 5678` is a landline).
            (Some("55"), 13)
                if d.as_bytes()[4] == b'9' && matches!(d.as_bytes()[5], b'6'..=b'9') =>
            {
                forms.push(format!("{}{}", &d[..4], &d[5..]));
            }
            (Some("55"), 12) if matches!(d.as_bytes()[4], b'6'..=b'9') => {
                forms.push(with(&d[..4], "9", &d[4..]));
            }
            // +52 1 XX XXXX XXXX ↔ +52 XX XXXX XXXX
            (Some("52"), 13) if d.as_bytes()[2] == b'1' => forms.push(format!("52{}", &d[3..])),
            (Some("52"), 12) => forms.push(with("52", "1", &d[2..])),
            // +54 9 XX XXXX XXXX ↔ +54 XX XXXX XXXX
            (Some("54"), 13) if d.as_bytes()[2] == b'9' => forms.push(format!("54{}", &d[3..])),
            (Some("54"), 12) => forms.push(with("54", "9", &d[2..])),
            _ => {}
        }
        forms
            .into_iter()
            .filter_map(|digits| Self::from_wa_id(&digits).ok())
            .collect()
    }

    /// Whether `other` is this number or one of its equivalent forms.
    pub fn same_line(&self, other: &E164) -> bool {
        self == other || self.equivalents().contains(other)
    }

    /// A form that is safe to log: country code and last two digits only.
    pub fn redacted(&self) -> Redacted<'_> {
        Redacted(&self.0)
    }
}

impl TryFrom<String> for E164 {
    type Error = NotE164;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::from_wa_id(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Displays `+44*******23`: enough to tell numbers apart in a log, not enough
/// to call anyone.
pub struct Redacted<'a>(&'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        if n <= 5 {
            return f.write_str("***");
        }
        write!(
            f,
            "{}{}{}",
            &self.0[..3],
            "*".repeat(n - 5),
            &self.0[n - 2..]
        )
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_also_searched_as_people_write_it() {
        let uk = E164::from_wa_id("447700900123").expect("valid");
        assert_eq!(uk.written_forms(), ["+44 7700 900123", "+44-7700-900123"]);
        let br = E164::from_wa_id("5511987654321").expect("valid");
        assert_eq!(
            br.written_forms(),
            ["+55 11 98765-4321", "+55-11-98765-4321"]
        );
        // A range the metadata does not know: only the digits forms.
        let unknown = E164::from_wa_id("999123456789").expect("shape is fine");
        assert!(unknown.written_forms().is_empty());
    }

    #[test]
    fn wa_ids_become_e164_without_metadata_validation() {
        // +44 7700 900xxx is a fiction range that phone metadata calls invalid.
        assert_eq!(
            E164::from_wa_id("447700900123").map(|n| n.to_string()),
            Ok("+447700900123".to_owned())
        );
        assert_eq!(
            E164::from_wa_id("+16505551234").map(|n| n.to_string()),
            Ok("+16505551234".to_owned())
        );
        for bad in ["", "abc", "44 7700", "1234567890123456", "0447700900123"] {
            assert_eq!(E164::from_wa_id(bad), Err(NotE164), "{bad}");
        }
    }

    #[test]
    fn stored_numbers_in_common_formats_normalise() {
        for raw in [
            "+447700900123",
            "+44 7700 900123",
            "+44 (0)7700 900123",
            "0044 7700 900123",
            "+44-7700-900-123",
            " +44.7700.900.123 ",
        ] {
            assert_eq!(
                E164::parse_stored(raw).map(|n| n.to_string()),
                Some("+447700900123".to_owned()),
                "{raw}"
            );
        }
    }

    #[test]
    fn business_numbers_read_as_webhooks_and_whatsapp_manager_write_them() {
        for raw in [
            "447700900100",
            "+447700900100",
            "+44 7700 900100",
            " 44 7700 900100 ",
            "+44-7700-900100",
            "0044 7700 900100",
        ] {
            assert_eq!(
                E164::parse_business_number(raw).map(|n| n.to_string()),
                Ok("+447700900100".to_owned()),
                "{raw}"
            );
        }
        assert_eq!(
            E164::parse_business_number("+1 555-025-3483").map(|n| n.to_string()),
            Ok("+15550253483".to_owned())
        );
        for bad in ["", "call us", "+44 7700 9001OO"] {
            assert_eq!(E164::parse_business_number(bad), Err(NotE164), "{bad}");
        }
    }

    #[test]
    fn stored_numbers_without_country_code_do_not_match() {
        assert_eq!(E164::parse_stored("07700 900123"), None);
        assert_eq!(E164::parse_stored("7700900123"), None);
        assert_eq!(E164::parse_stored("call me"), None);
    }

    fn e164(digits: &str) -> E164 {
        E164::from_wa_id(digits).expect("valid")
    }

    #[test]
    fn national_quirks_are_one_line() {
        // Brazil: the ninth digit of mobiles, both ways.
        assert_eq!(e164("5511987654321").equivalents(), [e164("551187654321")]);
        assert_eq!(e164("551187654321").equivalents(), [e164("5511987654321")]);
        assert!(e164("5511987654321").same_line(&e164("551187654321")));
        // A Brazilian landline (starts 2–5) has no ninth-digit form.
        assert!(e164("551134567890").equivalents().is_empty());
        // Mexico: +52 1.
        assert_eq!(e164("5215512345678").equivalents(), [e164("525512345678")]);
        assert_eq!(e164("525512345678").equivalents(), [e164("5215512345678")]);
        // Argentina: +54 9.
        assert_eq!(e164("5491123456789").equivalents(), [e164("541123456789")]);
        assert_eq!(e164("541123456789").equivalents(), [e164("5491123456789")]);
        // Elsewhere, a number is only itself.
        assert!(e164("447700900123").equivalents().is_empty());
        assert!(!e164("447700900123").same_line(&e164("447700900124")));
    }

    #[test]
    fn redaction_hides_the_middle() {
        let n = E164::from_wa_id("447700900123").expect("valid");
        assert_eq!(n.redacted().to_string(), "+44********23");
        assert!(!n.redacted().to_string().contains("900123"));
    }
}
