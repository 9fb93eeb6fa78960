//! Workspaces, users and their removal.

use crate::error::StoreError;
use crate::model::{User, WhatsAppNumber, Workspace};
use crate::retention::Retention;
use crate::store::{Swept, WorkspaceRemovalStore, WorkspaceStore};
use async_trait::async_trait;

use super::MemoryStore;

#[async_trait]
impl WorkspaceStore for MemoryStore {
    async fn create_workspace(
        &self,
        workspace: &Workspace,
        owner: &User,
        token_hash: &str,
    ) -> Result<(), StoreError> {
        self.write("create_workspace");
        self.state()
            .workspaces
            .insert(workspace.id.clone(), workspace.clone());
        let mut state = self.state();
        state.tokens.insert(
            token_hash.to_owned(),
            (owner.workspace_id.clone(), owner.id.clone()),
        );
        state.users.insert(
            (owner.workspace_id.clone(), owner.id.clone()),
            owner.clone(),
        );
        Ok(())
    }

    async fn workspace(&self, id: &str) -> Result<Option<Workspace>, StoreError> {
        self.read();
        Ok(self.state().workspaces.get(id).cloned())
    }

    async fn add_user(&self, user: &User, token_hash: &str) -> Result<(), StoreError> {
        self.write("add_user");
        let mut state = self.state();
        state.tokens.insert(
            token_hash.to_owned(),
            (user.workspace_id.clone(), user.id.clone()),
        );
        state
            .users
            .insert((user.workspace_id.clone(), user.id.clone()), user.clone());
        Ok(())
    }

    async fn user(&self, workspace_id: &str, user_id: &str) -> Result<Option<User>, StoreError> {
        self.read();
        Ok(self
            .state()
            .users
            .get(&(workspace_id.to_owned(), user_id.to_owned()))
            .cloned())
    }

    async fn user_for_token(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        self.read();
        let state = self.state();
        let Some(key) = state.tokens.get(token_hash) else {
            return Ok(None);
        };
        let deleting = state
            .workspaces
            .get(&key.0)
            .is_none_or(|w| !w.accepts_work());
        Ok(if deleting {
            None
        } else {
            state.users.get(key).cloned()
        })
    }

    async fn remove_user(&self, workspace_id: &str, user_id: &str) -> Result<bool, StoreError> {
        self.write("remove_user");
        let mut state = self.state();
        let key = (workspace_id.to_owned(), user_id.to_owned());
        state.tokens.retain(|_, k| *k != key);
        Ok(state.users.remove(&key).is_some())
    }

    async fn replace_token(&self, user: &User, new_hash: &str) -> Result<(), StoreError> {
        self.write("replace_token");
        let mut state = self.state();
        let key = (user.workspace_id.clone(), user.id.clone());
        state.tokens.retain(|_, k| *k != key);
        state.tokens.insert(new_hash.to_owned(), key);
        Ok(())
    }

    async fn put_whatsapp_number(&self, number: &WhatsAppNumber) -> Result<(), StoreError> {
        self.write("put_whatsapp_number");
        self.state()
            .numbers
            .insert(number.phone_number_id.clone(), number.clone());
        Ok(())
    }

    async fn whatsapp_number(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<WhatsAppNumber>, StoreError> {
        self.read();
        Ok(self.state().numbers.get(phone_number_id).cloned())
    }

    async fn whatsapp_numbers(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<WhatsAppNumber>, StoreError> {
        self.read();
        Ok(self
            .state()
            .numbers
            .values()
            .filter(|n| n.workspace_id == workspace_id)
            .cloned()
            .collect())
    }

    async fn set_retention(
        &self,
        workspace_id: &str,
        retention: Retention,
    ) -> Result<bool, StoreError> {
        self.write("set_retention");
        Ok(match self.state().workspaces.get_mut(workspace_id) {
            Some(w) if w.accepts_work() => {
                w.retention = retention;
                true
            }
            _ => false,
        })
    }

    async fn reapply_retention_page(
        &self,
        _workspace_id: &str,
        _after: Option<&str>,
        _limit: usize,
        _retention: Retention,
        _tz: &crate::time_zone::TimeZone,
    ) -> Result<Swept, StoreError> {
        self.write("reapply_retention_page");
        Ok(Swept {
            count: 0,
            next: None,
        })
    }
}

#[async_trait]
impl WorkspaceRemovalStore for MemoryStore {
    async fn mark_workspace_deleting(
        &self,
        workspace_id: &str,
        at: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write("mark_workspace_deleting");
        Ok(self
            .state()
            .workspaces
            .get_mut(workspace_id)
            .map(|w| *w.deleting_since.get_or_insert(at)))
    }

    async fn remove_number_lookups(&self, workspace_id: &str) -> Result<usize, StoreError> {
        self.write("remove_number_lookups");
        let mut state = self.state();
        let before = state.numbers.len();
        state.numbers.retain(|_, n| n.workspace_id != workspace_id);
        Ok(before - state.numbers.len())
    }

    async fn purge_workspace_page(
        &self,
        _workspace_id: &str,
        _after: Option<&str>,
        _limit: usize,
    ) -> Result<Swept, StoreError> {
        self.write("purge_workspace_page");
        Ok(Swept {
            count: 0,
            next: None,
        })
    }

    async fn workspace_leftovers(&self, _workspace_id: &str) -> Result<Vec<String>, StoreError> {
        self.read();
        Ok(Vec::new())
    }

    async fn remove_workspace_item(&self, workspace_id: &str) -> Result<(), StoreError> {
        self.write("remove_workspace_item");
        self.state().workspaces.remove(workspace_id);
        Ok(())
    }
}
