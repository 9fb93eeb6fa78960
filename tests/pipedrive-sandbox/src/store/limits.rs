//! Rate limits (reference §10): the company's daily token budget, charged
//! with each operation's `x-token-cost`, and the rolling burst windows per
//! access token (general and search).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};

use super::Store;
use crate::spec::Operation;

/// Values of the `x-ratelimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window frees a slot / resets.
    pub reset: u64,
}

/// Why a call was refused with 429.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The company's daily budget is spent; seconds until midnight UTC.
    Budget { retry_after: u64 },
    /// The token's burst window is full; seconds until a slot frees.
    Burst { retry_after: u64 },
}

#[derive(Debug)]
pub struct Limits {
    pub bursts_enabled: bool,
    used: HashMap<u64, u64>,
    day: NaiveDate,
    /// (access token, search?) → instants of admitted requests.
    windows: HashMap<(String, bool), VecDeque<Instant>>,
}

impl Limits {
    pub fn new(bursts_enabled: bool) -> Self {
        Self {
            bursts_enabled,
            used: HashMap::new(),
            day: Utc::now().date_naive(),
            windows: HashMap::new(),
        }
    }

    fn roll_day(&mut self) {
        let today = Utc::now().date_naive();
        if today != self.day {
            self.day = today;
            self.used.clear();
        }
    }

    pub fn used(&self, company_id: u64) -> u64 {
        self.used.get(&company_id).copied().unwrap_or(0)
    }

    /// A new day for every company (the test hook).
    pub fn reset_day(&mut self) {
        self.used.clear();
        self.day = Utc::now().date_naive();
    }
}

fn seconds_to_midnight() -> u64 {
    let now = Utc::now();
    let next = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    next.map_or(86_400, |n| (n - now).num_seconds().max(1) as u64)
}

fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs();
    if d.subsec_nanos() > 0 {
        s + 1
    } else {
        s.max(1)
    }
}

impl Store {
    pub fn burst_limit(&self, search: bool, company_id: u64) -> u32 {
        if search {
            return self.cfg.search_burst_limit;
        }
        self.cfg.burst_limit.unwrap_or_else(|| {
            self.company(company_id)
                .map_or(80, |c| c.seed.plan.oauth_burst())
        })
    }

    pub fn daily_budget(&self, company_id: u64) -> u64 {
        self.company(company_id).map_or(0, |c| c.daily_budget())
    }

    /// Admits (and charges) one API call, or says why not. The headers
    /// describe the token's burst window either way.
    pub fn admit(
        &mut self,
        token: &str,
        company_id: u64,
        op: &Operation,
    ) -> (RateHeaders, Result<(), Refusal>) {
        self.limits.roll_day();
        let search = op.is_search();
        let limit = self.burst_limit(search, company_id);
        let window = self.cfg.burst_window;
        let now = Instant::now();
        let key = (token.to_string(), search);
        let entries = self.limits.windows.entry(key).or_default();
        while entries
            .front()
            .is_some_and(|t| now.duration_since(*t) >= window)
        {
            entries.pop_front();
        }
        let count = entries.len() as u32;
        let reset = entries.front().map_or(ceil_secs(window), |t| {
            ceil_secs(window.saturating_sub(now.duration_since(*t)))
        });
        let headers = |count: u32| RateHeaders {
            limit,
            remaining: limit.saturating_sub(count),
            reset,
        };
        let budget = self.daily_budget(company_id);
        let used = self.limits.used(company_id);
        if used + op.token_cost > budget {
            return (
                headers(count),
                Err(Refusal::Budget {
                    retry_after: seconds_to_midnight(),
                }),
            );
        }
        if self.limits.bursts_enabled && count >= limit {
            return (headers(count), Err(Refusal::Burst { retry_after: reset }));
        }
        if let Some(entries) = self.limits.windows.get_mut(&(token.to_string(), search)) {
            entries.push_back(now);
        }
        *self.limits.used.entry(company_id).or_insert(0) += op.token_cost;
        (headers(count + 1), Ok(()))
    }

    /// Sets the home company's daily budget.
    pub fn set_daily_budget(&mut self, budget: u64) {
        let home = self.home_company();
        if let Some(c) = self.companies.iter_mut().find(|c| c.id() == home) {
            c.budget_override = Some(budget);
        }
    }
}
