//! Direct access for tests and the sandbox's admin endpoints.

use serde_json::Value;

use crate::SandboxError;

use super::Store;

use super::notes::note_parent;

impl Store {
    pub fn records_json(&self, module: &str) -> Vec<Value> {
        self.records
            .get(module)
            .map(|rs| rs.iter().map(|r| self.render(module, r, None)).collect())
            .unwrap_or_default()
    }

    pub fn record_json(&self, module: &str, id: &str) -> Option<Value> {
        self.find(module, id).map(|r| self.render(module, r, None))
    }

    pub fn notes_of(&self, module: &str, id: &str) -> Vec<Value> {
        self.records
            .get("Notes")
            .map(|rs| {
                rs.iter()
                    .filter(|r| note_parent(&r.data) == Some((module, id)))
                    .map(|r| self.render("Notes", r, None))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Inserts a record directly (seeding), bypassing HTTP but not validation.
    pub fn seed_record(&mut self, module: &str, data: Value) -> Result<String, SandboxError> {
        if !self.api_module(module) || module == "Notes" {
            return Err(SandboxError::UnknownModule(module.to_string()));
        }
        let caller = self.authorizing_user.clone();
        let valid = self
            .validate_item(module, 0, &data, true, None)
            .map_err(|e| SandboxError::Rejected(e.to_string()))?;
        let stored = self.insert(module, valid, &caller);
        Ok(stored
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// A person deletes a record in Zoho: it goes, with its notes and
    /// attachments (Zoho moves them to the recycle bin together).
    pub fn delete_record(&mut self, module: &str, id: &str) -> bool {
        let Some(records) = self.records.get_mut(module) else {
            return false;
        };
        let before = records.len();
        records.retain(|r| r.data.get("id").and_then(Value::as_str) != Some(id));
        let deleted = records.len() < before;
        if let Some(notes) = self.records.get_mut("Notes") {
            notes.retain(|n| {
                n.data
                    .get("Parent_Id")
                    .and_then(|p| p.get("id"))
                    .and_then(Value::as_str)
                    != Some(id)
            });
        }
        self.attachments
            .retain(|a| a.pointer("/Parent_Id/id").and_then(Value::as_str) != Some(id));
        deleted
    }

    pub fn convert_lead_helper(&mut self, id: &str) -> Result<String, SandboxError> {
        let caller = self.authorizing_user.clone();
        let r = self.convert_lead(id, None, &caller);
        if r.status != 200 {
            return Err(SandboxError::Rejected(
                r.body.map(|b| b.to_string()).unwrap_or_default(),
            ));
        }
        r.body
            .as_ref()
            .and_then(|b| b.pointer("/data/0/details/Contacts/id"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| SandboxError::Rejected("no contact id".into()))
    }
}
