//! Injected faults, lost answers and the API credit budget.

use serde_json::json;

use super::{ApiResponse, Fault, Store, default_message, error};

impl Store {
    pub fn set_fault(&mut self, n: u32, status: u16, code: &str) {
        self.fault = (n > 0).then(|| Fault {
            remaining: n,
            status,
            code: code.to_string(),
        });
    }

    pub fn lose_next_response(&mut self, method: &str, path: &str, status: u16) {
        self.lost_response = Some((method.to_owned(), path.to_owned(), status));
    }

    /// The answer that replaces a carried-out request's, if it is the one
    /// whose answer is to be lost.
    pub fn take_lost_response(&mut self, method: &str, path: &str) -> Option<ApiResponse> {
        let (m, p, status) = self.lost_response.as_ref()?;
        if m != method || p != path {
            return None;
        }
        let status = *status;
        self.lost_response = None;
        Some(error(
            status,
            "INTERNAL_ERROR",
            default_message("INTERNAL_ERROR"),
            json!({}),
        ))
    }

    pub fn take_fault(&mut self) -> Option<ApiResponse> {
        let f = self.fault.as_mut()?;
        f.remaining = f.remaining.saturating_sub(1);
        let resp = error(f.status, &f.code, default_message(&f.code), json!({}));
        if f.remaining == 0 {
            self.fault = None;
        }
        Some(resp)
    }

    /// Charges API credits; `Err` with the 429 answer once the limit is hit.
    pub fn charge(&mut self, cost: u64) -> Result<(), ApiResponse> {
        if let Some(limit) = self.credit_limit
            && self.credits_used + cost > limit
        {
            return Err(error(
                429,
                "TOO_MANY_REQUESTS",
                "You have reached the API credit limit for the day",
                json!({}),
            ));
        }
        self.credits_used += cost;
        Ok(())
    }
}
