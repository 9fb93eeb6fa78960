//! A CRM held in memory: records found by phone, notes created, updated and
//! found again, and the calls made, in order, so that a test can say "one
//! note write" exactly. Records made through the API stay out of the phone
//! search (Zoho's search index lags by up to minutes, and the tests' clock
//! stands still), while reads by id and of the newest records see them;
//! seeded records are indexed. Notes render with Zoho's own renderer
//! (`adapters::zoho::crm::plain_text_note`) and are counted in characters against
//! `note_limit`. A failure can be queued for the next calls, or a write's
//! answer lost after it was made. Follow-ups, attachments and metadata are
//! not held: those calls are refused.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::crm::{
    Choice, Conversion, Crm, CrmError, CrmOAuth, CrmProvider, FieldMeta, FoundRecord, ModuleMeta,
    NewFollowUp, NewRecord, NoteDraft, Pipeline, UsageMeter,
};
use crate::error::SecretsError;
use crate::model::{CrmKind, CrmUser, RecordRef};
use crate::phone::E164;
use crate::tokens::AccessTokens;

/// A note as the CRM holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryNote {
    pub id: String,
    pub parent: RecordRef,
    pub also: Option<RecordRef>,
    pub title: String,
    pub content: String,
}

#[derive(Default)]
struct CrmState {
    /// Records with the phone values they hold, oldest first.
    records: Vec<(RecordRef, Vec<String>)>,
    /// Records made through the API: not in the search index yet.
    unindexed: Vec<RecordRef>,
    /// What each create asked for, in order.
    created: Vec<NewRecord>,
    notes: BTreeMap<String, MemoryNote>,
    calls: Vec<&'static str>,
    failures: VecDeque<CrmError>,
    /// Note writes still to do whose answer is then lost.
    lost_answers: usize,
    next_id: u64,
}

pub struct MemoryCrm {
    kind: CrmKind,
    note_limit: usize,
    users: Vec<CrmUser>,
    state: Mutex<CrmState>,
}

impl MemoryCrm {
    /// A CRM of `kind` whose notes hold `note_limit` characters.
    pub fn new(kind: CrmKind, note_limit: usize) -> Self {
        Self {
            kind,
            note_limit,
            users: Vec::new(),
            state: Mutex::default(),
        }
    }

    /// The CRM's active users.
    pub fn with_users(mut self, users: Vec<CrmUser>) -> Self {
        self.users = users;
        self
    }

    fn state(&self) -> MutexGuard<'_, CrmState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A record of `module` holding `phones`.
    pub fn seed_record(&self, module: &str, phones: &[&str]) -> RecordRef {
        let mut state = self.state();
        state.next_id += 1;
        let record = RecordRef {
            crm: self.kind,
            module: module.to_owned(),
            id: format!("r{}", state.next_id),
        };
        let phones = phones.iter().map(|p| (*p).to_owned()).collect();
        state.records.push((record.clone(), phones));
        record
    }

    /// The next calls fail with these errors, one each, in order.
    pub fn fail_next(&self, errors: impl IntoIterator<Item = CrmError>) {
        self.state().failures.extend(errors);
    }

    /// The next `count` writes (records and notes) are made, but their
    /// answer is lost (a time-out after the CRM did the work).
    pub fn lose_next_answers(&self, count: usize) {
        self.state().lost_answers += count;
    }

    /// What each record create asked for, in order.
    pub fn created_records(&self) -> Vec<NewRecord> {
        self.state().created.clone()
    }

    /// Every call made, by name, in order (failed ones included).
    pub fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    /// The note writes made: creates and updates.
    pub fn note_writes(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| matches!(**c, "create_note" | "update_note"))
            .count()
    }

    /// The notes on `parent`, oldest first.
    pub fn notes_on(&self, parent: &RecordRef) -> Vec<MemoryNote> {
        let mut notes: Vec<MemoryNote> = self
            .state()
            .notes
            .values()
            .filter(|n| &n.parent == parent)
            .cloned()
            .collect();
        notes.sort_by_key(|n| note_id_order(&n.id));
        notes
    }

    /// Counts the call, then fails it if a failure is queued.
    fn call(&self, name: &'static str) -> Result<(), CrmError> {
        let mut state = self.state();
        state.calls.push(name);
        match state.failures.pop_front() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// The answer of a write the CRM made, unless it is to be lost.
fn answered<T>(state: &mut CrmState, answer: T) -> Result<T, CrmError> {
    if state.lost_answers > 0 {
        state.lost_answers -= 1;
        return Err(CrmError::Transport("the answer was lost".into()));
    }
    Ok(answer)
}

fn not_held(what: &str) -> CrmError {
    CrmError::Rejected {
        status: 400,
        code: "NOT_SUPPORTED".into(),
        message: format!("the in-memory CRM holds no {what}"),
        field: None,
    }
}

fn note_id_order(id: &str) -> u64 {
    id.trim_start_matches('n').parse().unwrap_or(u64::MAX)
}

#[async_trait]
impl Crm for MemoryCrm {
    async fn find_by_phone(
        &self,
        module: &str,
        _field: &str,
        number: &E164,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        self.call("find_by_phone")?;
        let state = self.state();
        Ok(state
            .records
            .iter()
            .filter(|(r, phones)| {
                r.module == module
                    && !state.unindexed.contains(r)
                    && phones
                        .iter()
                        .any(|p| E164::parse_stored(p).is_some_and(|s| number.same_line(&s)))
            })
            .map(|(record, phones)| FoundRecord {
                record: record.clone(),
                phones: phones.clone(),
                modified_time: None,
            })
            .collect())
    }

    async fn create_record(&self, record: &NewRecord) -> Result<RecordRef, CrmError> {
        self.call("create_record")?;
        let mut state = self.state();
        state.next_id += 1;
        let made = RecordRef {
            crm: self.kind,
            module: record.module.clone(),
            id: format!("r{}", state.next_id),
        };
        let phones = record
            .fields
            .values()
            .filter_map(|v| v.as_str())
            .filter(|v| E164::parse_stored(v).is_some())
            .map(str::to_owned)
            .collect();
        state.records.push((made.clone(), phones));
        state.unindexed.push(made.clone());
        state.created.push(record.clone());
        answered(&mut state, made)
    }

    async fn record_exists(&self, record: &RecordRef) -> Result<bool, CrmError> {
        self.call("record_exists")?;
        let state = self.state();
        Ok(state.records.iter().any(|(r, _)| r == record))
    }

    async fn recently_created(
        &self,
        module: &str,
        _field: &str,
    ) -> Result<Vec<FoundRecord>, CrmError> {
        self.call("recently_created")?;
        let state = self.state();
        Ok(state
            .records
            .iter()
            .rev()
            .filter(|(r, _)| r.module == module)
            .map(|(record, phones)| FoundRecord {
                record: record.clone(),
                phones: phones.clone(),
                modified_time: None,
            })
            .collect())
    }

    async fn update_field(
        &self,
        _record: &RecordRef,
        _field: &str,
        _value: &str,
    ) -> Result<(), CrmError> {
        self.call("update_field")?;
        Ok(())
    }

    async fn conversion(
        &self,
        _record: &RecordRef,
        _into_module: &str,
        _person: Option<&RecordRef>,
    ) -> Result<Conversion, CrmError> {
        self.call("conversion")?;
        Ok(Conversion::NotConverted)
    }

    async fn create_follow_up(&self, _follow_up: &NewFollowUp) -> Result<RecordRef, CrmError> {
        self.call("create_follow_up")?;
        Err(not_held("leads or deals"))
    }

    async fn find_follow_up(
        &self,
        _person: &RecordRef,
        _title: &str,
    ) -> Result<Option<RecordRef>, CrmError> {
        self.call("find_follow_up")?;
        Ok(None)
    }

    async fn latest_open_deal(
        &self,
        _person: &RecordRef,
        _pipeline_id: Option<&str>,
    ) -> Result<Option<RecordRef>, CrmError> {
        self.call("latest_open_deal")?;
        Ok(None)
    }

    async fn attach_file(
        &self,
        _parent: &RecordRef,
        _file_name: &str,
        _mime_type: &str,
        _bytes: Vec<u8>,
    ) -> Result<String, CrmError> {
        self.call("attach_file")?;
        Err(not_held("attachments"))
    }

    async fn find_attachment(
        &self,
        _parent: &RecordRef,
        _file_name: &str,
        _size: u64,
        _since: i64,
    ) -> Result<Option<String>, CrmError> {
        self.call("find_attachment")?;
        Ok(None)
    }

    async fn modules(&self) -> Result<Vec<ModuleMeta>, CrmError> {
        self.call("modules")?;
        Err(not_held("metadata"))
    }

    async fn fields(&self, _module: &str) -> Result<Vec<FieldMeta>, CrmError> {
        self.call("fields")?;
        Err(not_held("metadata"))
    }

    fn render_note(&self, note: &NoteDraft<'_>) -> String {
        crate::adapters::zoho::crm::plain_text_note(note)
    }

    fn note_size(&self, content: &str) -> usize {
        content.chars().count()
    }

    fn note_limit(&self) -> usize {
        self.note_limit
    }

    async fn create_note(
        &self,
        parent: &RecordRef,
        also: Option<&RecordRef>,
        title: &str,
        content: &str,
    ) -> Result<String, CrmError> {
        self.call("create_note")?;
        let mut state = self.state();
        if !state.records.iter().any(|(r, _)| r == parent) {
            return Err(CrmError::Rejected {
                status: 400,
                code: "INVALID_DATA".into(),
                message: "the parent record does not exist".into(),
                field: Some("Parent_Id".into()),
            });
        }
        state.next_id += 1;
        let id = format!("n{}", state.next_id);
        state.notes.insert(
            id.clone(),
            MemoryNote {
                id: id.clone(),
                parent: parent.clone(),
                also: also.cloned(),
                title: title.to_owned(),
                content: content.to_owned(),
            },
        );
        answered(&mut state, id)
    }

    async fn update_note(&self, note_id: &str, title: &str, content: &str) -> Result<(), CrmError> {
        self.call("update_note")?;
        let mut state = self.state();
        let Some(note) = state.notes.get_mut(note_id) else {
            return Err(CrmError::Rejected {
                status: 404,
                code: "NOT_FOUND".into(),
                message: format!("no note {note_id}"),
                field: None,
            });
        };
        note.title = title.to_owned();
        note.content = content.to_owned();
        answered(&mut state, ())
    }

    async fn find_note(
        &self,
        parent: &RecordRef,
        note: &NoteDraft<'_>,
    ) -> Result<Option<String>, CrmError> {
        self.call("find_note")?;
        let state = self.state();
        let mut found: Vec<&MemoryNote> = state
            .notes
            .values()
            .filter(|n| {
                &n.parent == parent && n.title == note.title && n.content.starts_with(note.header)
            })
            .collect();
        found.sort_by_key(|n| note_id_order(&n.id));
        Ok(found.first().map(|n| n.id.clone()))
    }

    async fn active_users(&self) -> Result<Vec<CrmUser>, CrmError> {
        self.call("active_users")?;
        Ok(self.users.clone())
    }

    async fn record_phones(&self, record: &RecordRef) -> Result<Option<Vec<String>>, CrmError> {
        self.call("record_phones")?;
        let state = self.state();
        Ok(state
            .records
            .iter()
            .find(|(r, _)| r == record)
            .map(|(_, phones)| phones.clone()))
    }

    async fn record_fields(
        &self,
        _record: &RecordRef,
    ) -> Result<Option<BTreeMap<String, String>>, CrmError> {
        self.call("record_fields")?;
        Ok(None)
    }

    async fn pipelines(&self) -> Result<Vec<Pipeline>, CrmError> {
        self.call("pipelines")?;
        Ok(Vec::new())
    }

    async fn lead_labels(&self) -> Result<Vec<Choice>, CrmError> {
        self.call("lead_labels")?;
        Ok(Vec::new())
    }
}

/// Every CRM's API is the one in-memory CRM; OAuth is the real clients'
/// (an accounts server nothing under test reaches).
pub struct MemoryCrms {
    oauth: Arc<dyn CrmProvider>,
    crm: Arc<MemoryCrm>,
}

impl MemoryCrms {
    pub fn new(oauth: Arc<dyn CrmProvider>, crm: Arc<MemoryCrm>) -> Self {
        Self { oauth, crm }
    }
}

#[async_trait]
impl CrmProvider for MemoryCrms {
    async fn oauth(&self, crm: CrmKind) -> Result<Arc<dyn CrmOAuth>, SecretsError> {
        self.oauth.oauth(crm).await
    }

    fn api(
        &self,
        _crm: CrmKind,
        _api_domain: &str,
        _tokens: Arc<dyn AccessTokens>,
        _meter: Arc<dyn UsageMeter>,
    ) -> Option<Arc<dyn Crm>> {
        Some(self.crm.clone())
    }
}
