//! A record's phone numbers as the CRM showed them to a user, for a short
//! while, so that the page's poll every 1.5 s does not read the record from
//! the CRM each time: each read costs a Zoho credit or a Pipedrive token
//! against the organization's daily budget (one open panel polling all day
//! would spend about 19,000). The answer carries a signed pass; the poll
//! sends it back (`X-Live-Record-Pass`), and while it is valid — for the
//! same user, CRM and record, for [`RECORD_PASS_SECS`] — the CRM is not
//! asked again. A user who loses sight of the record in the CRM loses it
//! here within that time; one who loses their connection, at once (the
//! connection is read on every poll).

use serde::{Deserialize, Serialize};

use super::LiveSession;
use super::session::{open_signed, seal_signed};
use crate::crypto::KeyRing;
use crate::model::{CrmKind, RecordRef};

/// How long the CRM's answer about a record is taken as still true.
pub const RECORD_PASS_SECS: i64 = 120;

const PURPOSE: &str = "live-record-pass";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPass {
    workspace_id: String,
    user_id: String,
    crm: CrmKind,
    /// `<module>/<id>`.
    record: String,
    /// The record's phone fields as the CRM gave them.
    pub phones: Vec<String>,
    expires_at: i64,
}

fn record_key(record: &RecordRef) -> String {
    format!("{}/{}", record.module, record.id)
}

impl RecordPass {
    /// A pass for what `session`'s user was just shown of `record`.
    pub fn new(session: &LiveSession, record: &RecordRef, phones: Vec<String>, now: i64) -> Self {
        Self {
            workspace_id: session.workspace_id.clone(),
            user_id: session.user_id.clone(),
            crm: session.crm,
            record: record_key(record),
            phones,
            expires_at: now + RECORD_PASS_SECS,
        }
    }

    pub fn seal(&self, keys: &KeyRing) -> String {
        seal_signed(PURPOSE, self, keys)
    }

    /// The pass `sealed` holds if it is ours, unexpired, and for this
    /// session's user and this record.
    pub fn open(
        sealed: &str,
        keys: &KeyRing,
        session: &LiveSession,
        record: &RecordRef,
        now: i64,
    ) -> Option<Self> {
        open_signed::<Self>(PURPOSE, sealed, keys).filter(|pass| {
            pass.expires_at > now
                && pass.workspace_id == session.workspace_id
                && pass.user_id == session.user_id
                && pass.crm == session.crm
                && pass.record == record_key(record)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(user: &str) -> LiveSession {
        LiveSession {
            workspace_id: "ws".into(),
            user_id: user.into(),
            crm: CrmKind::Pipedrive,
            expires_at: 2_000,
        }
    }

    #[test]
    fn a_pass_holds_for_its_user_and_record_until_it_expires() {
        let keys = KeyRing::from_master(b"0123456789abcdef0123456789abcdef");
        let ana = session("ana");
        let record = RecordRef::new(CrmKind::Pipedrive, "persons", "42");
        let sealed =
            RecordPass::new(&ana, &record, vec!["+447700900123".into()], 1_000).seal(&keys);
        let opened = RecordPass::open(&sealed, &keys, &ana, &record, 1_119).expect("valid");
        assert_eq!(opened.phones, ["+447700900123"]);
        assert!(
            RecordPass::open(&sealed, &keys, &ana, &record, 1_120).is_none(),
            "expired"
        );
        assert!(RecordPass::open(&sealed, &keys, &session("bruno"), &record, 1_001).is_none());
        let other = RecordRef::new(CrmKind::Pipedrive, "persons", "43");
        assert!(RecordPass::open(&sealed, &keys, &ana, &other, 1_001).is_none());
        let forged = sealed.replacen('e', "f", 1);
        assert!(RecordPass::open(&forged, &keys, &ana, &record, 1_001).is_none());
        let session_token = ana.seal(&keys);
        assert!(
            RecordPass::open(&session_token, &keys, &ana, &record, 1_001).is_none(),
            "a session is no pass"
        );
    }
}
