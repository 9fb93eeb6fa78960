//! Pacing a workspace's use of its CRM's daily API budget.
//!
//! Both CRMs price each call against a budget per organization per day:
//! Zoho in *credits* over a rolling 24 hours (by edition and licensed
//! users), Pipedrive in *tokens* per calendar day (by plan and seats). The
//! CRM clients count what each call costs (`crate::usage`); here the day's
//! use is compared with the budget the workspace's plan gives, and when the
//! forecast says the budget will run out the sync stops spending on work
//! that can wait — renaming records and checking leads for conversion —
//! and says so once a day in the sync log. Messages themselves are never
//! held back by the forecast: only a spent budget (the CRM's 429) does that.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::deps::Deps;
use crate::error::StoreError;
use crate::model::CrmKind;
use crate::synclog::SyncEvent;
use crate::usage::utc_day;

const DAY: i64 = 24 * 3600;

/// From this share of the budget on, forecast or spent, non-urgent work
/// waits: what is left is kept for the messages.
const CONSERVE_AT_PERCENT: u64 = 90;

/// Where a workspace's plan came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanSource {
    /// An owner or admin said so (`PUT /api/usage`).
    Set,
    /// Nobody did: the smallest paid plan is assumed.
    Default,
}

/// What a workspace pays its CRM for, as far as the API budget goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiPlan {
    pub crm: CrmKind,
    /// Zoho: `free`, `standard`, `professional`, `enterprise`, `ultimate`;
    /// Pipedrive: `lite`, `growth`, `premium`, `ultimate` (older names
    /// accepted: `essential`, `advanced`, `professional`, `power`,
    /// `enterprise`).
    pub edition: String,
    /// Zoho: licensed users; Pipedrive: seats.
    pub seats: u32,
    /// Bought add-on credits or top-up tokens, per day.
    #[serde(default)]
    pub extra_per_day: u64,
    /// A budget the CRM shows the admin, which wins over the computation.
    #[serde(default)]
    pub per_day: Option<u64>,
    pub source: PlanSource,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

impl ApiPlan {
    /// Assumed until someone says: the smallest paid plan, one seat.
    pub fn assumed(crm: CrmKind) -> Self {
        let edition = match crm {
            CrmKind::Zoho => "standard",
            CrmKind::Pipedrive => "lite",
        };
        Self {
            crm,
            edition: edition.to_owned(),
            seats: 1,
            extra_per_day: 0,
            per_day: None,
            source: PlanSource::Default,
        }
    }

    /// A plan as an owner or admin gives it; refused by name when the
    /// edition is not one of the CRM's.
    pub fn set(
        crm: CrmKind,
        edition: &str,
        seats: u32,
        extra_per_day: u64,
        per_day: Option<u64>,
    ) -> Result<Self, PlanError> {
        let edition = edition.trim().to_ascii_lowercase();
        let plan = Self {
            crm,
            edition,
            seats,
            extra_per_day,
            per_day,
            source: PlanSource::Set,
        };
        if plan.computed().is_none() {
            let known = match crm {
                CrmKind::Zoho => "free, standard, professional, enterprise, ultimate",
                CrmKind::Pipedrive => "lite, growth, premium, ultimate",
            };
            return Err(PlanError(format!(
                "`{}` is not a {} edition (one of: {known})",
                plan.edition,
                crm.display_name()
            )));
        }
        if seats == 0 || seats > 100_000 {
            return Err(PlanError("`seats` must be 1 to 100000".into()));
        }
        if per_day == Some(0) {
            return Err(PlanError("`per_day` must be more than 0".into()));
        }
        Ok(plan)
    }

    /// The day's budget: `per_day` if given, else the CRM's formula.
    pub fn per_day(&self) -> u64 {
        self.per_day.or_else(|| self.computed()).unwrap_or_default()
    }

    /// The CRM's own formula for the edition and seats (reference: Zoho
    /// "API limits", Pipedrive "Rate limiting").
    fn computed(&self) -> Option<u64> {
        let seats = u64::from(self.seats);
        match self.crm {
            CrmKind::Zoho => {
                // (base, per user, cap): credits in a rolling 24 hours.
                let (base, per_user, cap) = match self.edition.as_str() {
                    "free" => return Some(5_000),
                    "standard" | "starter" => (50_000, 250, Some(100_000)),
                    "professional" => (50_000, 500, Some(3_000_000)),
                    "enterprise" | "zoho_one" => (50_000, 1_000, Some(5_000_000)),
                    "ultimate" | "crm_plus" => (50_000, 2_000, None),
                    _ => return None,
                };
                let total = base + per_user * seats + self.extra_per_day;
                Some(cap.map_or(total, |cap: u64| total.min(cap)))
            }
            CrmKind::Pipedrive => {
                let multiplier = match self.edition.as_str() {
                    "lite" | "essential" => 1,
                    "growth" | "advanced" => 2,
                    "professional" => 3,
                    "premium" | "power" => 5,
                    "ultimate" | "enterprise" => 7,
                    _ => return None,
                };
                Some(30_000 * multiplier * seats + self.extra_per_day)
            }
        }
    }
}

/// How the sync spends the budget now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Everything as usual.
    Normal,
    /// The budget will run out at this rate: work that can wait, waits.
    Conserve,
}

/// The day's budget use and where it is heading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Forecast {
    pub budget: u64,
    /// Spent in the CRM's window: Pipedrive's calendar day (UTC), Zoho's
    /// last 24 hours (yesterday's part estimated as spread evenly).
    pub spent: u64,
    /// What the window will hold at today's rate: by midnight for
    /// Pipedrive, over a full rolling day for Zoho.
    pub projected: u64,
    pub pace: Pace,
}

/// The forecast at `now` from today's and yesterday's use (UTC days).
pub fn forecast(crm: CrmKind, budget: u64, today: u64, yesterday: u64, now: i64) -> Forecast {
    let into_day = now.rem_euclid(DAY);
    // At least an hour: a few calls just after midnight are no rate.
    let elapsed = into_day.max(3600) as u64;
    let left_today = (DAY - into_day) as u64;
    let (spent, projected) = match crm {
        CrmKind::Pipedrive => (today, today + today * left_today / elapsed),
        CrmKind::Zoho => {
            let spent = today + yesterday * left_today / DAY as u64;
            (spent, spent.max(today * DAY as u64 / elapsed))
        }
    };
    let threshold = budget * CONSERVE_AT_PERCENT / 100;
    let pace = if spent >= threshold || projected >= threshold {
        Pace::Conserve
    } else {
        Pace::Normal
    };
    Forecast {
        budget,
        spent,
        projected,
        pace,
    }
}

/// Work the sync may put off while the budget is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferrable {
    /// Renaming a record to the contact's new WhatsApp name.
    Rename,
    /// Checking whether a lead was converted.
    ConversionCheck,
}

impl Deferrable {
    fn as_str(self) -> &'static str {
        match self {
            Self::Rename => "rename",
            Self::ConversionCheck => "conversion_check",
        }
    }
}

/// The plan items (see the DynamoDB adapter).
#[async_trait]
pub trait PacingStore: Send + Sync {
    async fn api_plan(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Option<ApiPlan>, StoreError>;
    async fn save_api_plan(&self, workspace_id: &str, plan: &ApiPlan) -> Result<(), StoreError>;
    /// True the first time it is asked for the workspace, CRM and `day`:
    /// the sync log says "conserving" once a day, not once a message.
    async fn first_conserve_notice(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        day: &str,
    ) -> Result<bool, StoreError>;
}

/// The workspace's plan for `crm`: the one set, else the assumed one.
pub async fn plan(deps: &Deps, workspace_id: &str, crm: CrmKind) -> Result<ApiPlan, StoreError> {
    Ok(deps
        .store
        .api_plan(workspace_id, crm)
        .await?
        .unwrap_or_else(|| ApiPlan::assumed(crm)))
}

/// The workspace's plan and forecast for `crm` now.
pub async fn current(
    deps: &Deps,
    workspace_id: &str,
    crm: CrmKind,
) -> Result<(ApiPlan, Forecast), StoreError> {
    let plan = plan(deps, workspace_id, crm).await?;
    let now = deps.clock.now();
    let today = deps
        .store
        .crm_usage(workspace_id, crm, &utc_day(now))
        .await?;
    let yesterday = deps
        .store
        .crm_usage(workspace_id, crm, &utc_day(now - DAY))
        .await?;
    let forecast = forecast(crm, plan.per_day(), today.tokens, yesterday.tokens, now);
    Ok((plan, forecast))
}

/// Whether `work` may be done now; when not, the sync log says so (once a
/// day). A store failure lets the work go ahead: pacing is a saving, never
/// a reason to fail a message.
pub async fn may_spend_on(deps: &Deps, workspace_id: &str, crm: CrmKind, work: Deferrable) -> bool {
    let forecast = match current(deps, workspace_id, crm).await {
        Ok((_, forecast)) => forecast,
        Err(e) => {
            tracing::warn!(workspace_id, crm = crm.as_str(), error = %e, "could not read the API budget; not pacing");
            return true;
        }
    };
    if forecast.pace == Pace::Normal {
        return true;
    }
    tracing::info!(
        workspace_id,
        crm = crm.as_str(),
        work = work.as_str(),
        spent = forecast.spent,
        projected = forecast.projected,
        budget = forecast.budget,
        "API budget short: deferring"
    );
    let day = utc_day(deps.clock.now());
    if matches!(
        deps.store
            .first_conserve_notice(workspace_id, crm, &day)
            .await,
        Ok(true)
    ) {
        crate::synclog::workspace_event(
            deps,
            workspace_id,
            SyncEvent::BudgetConserving,
            json!({
                "crm": crm,
                "spent": forecast.spent,
                "projected": forecast.projected,
                "budget": forecast.budget,
                "deferred": ["rename", "conversion_check"],
                "message": format!(
                    "{}'s daily API budget will run out at this rate ({} of {} spent, {} forecast): renames and conversion checks wait; messages go on",
                    crm.display_name(), forecast.spent, forecast.budget, forecast.projected
                ),
            }),
        )
        .await;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03 at `hour`:00 UTC.
    fn at(hour: i64) -> i64 {
        1_796_256_000 + hour * 3600
    }

    #[test]
    fn budgets_follow_each_crms_formula() {
        let zoho = |edition: &str, seats| {
            ApiPlan::set(CrmKind::Zoho, edition, seats, 0, None)
                .expect("a Zoho edition")
                .per_day()
        };
        assert_eq!(zoho("free", 3), 5_000);
        assert_eq!(zoho("standard", 10), 52_500);
        assert_eq!(zoho("standard", 1_000), 100_000, "capped");
        assert_eq!(zoho("Enterprise", 10), 60_000);
        assert_eq!(zoho("ultimate", 10_000), 20_050_000, "no cap");
        let pipedrive = |edition: &str, seats| {
            ApiPlan::set(CrmKind::Pipedrive, edition, seats, 0, None)
                .expect("a Pipedrive plan")
                .per_day()
        };
        assert_eq!(pipedrive("lite", 1), 30_000);
        assert_eq!(pipedrive("growth", 3), 180_000);
        assert_eq!(pipedrive("power", 2), 300_000);
        assert_eq!(ApiPlan::assumed(CrmKind::Zoho).per_day(), 50_250);
        assert_eq!(ApiPlan::assumed(CrmKind::Pipedrive).per_day(), 30_000);
        let given = ApiPlan::set(CrmKind::Pipedrive, "lite", 1, 5_000, Some(77_000)).expect("ok");
        assert_eq!(given.per_day(), 77_000, "what the CRM shows wins");
        let topped = ApiPlan::set(CrmKind::Pipedrive, "lite", 1, 5_000, None).expect("ok");
        assert_eq!(topped.per_day(), 35_000);
    }

    #[test]
    fn unknown_editions_and_no_seats_are_refused_by_name() {
        let e = ApiPlan::set(CrmKind::Zoho, "lite", 1, 0, None).expect_err("Pipedrive's name");
        assert!(e.0.contains("`lite` is not a Zoho CRM edition"), "{e}");
        assert!(ApiPlan::set(CrmKind::Pipedrive, "growth", 0, 0, None).is_err());
        assert!(ApiPlan::set(CrmKind::Pipedrive, "growth", 1, 0, Some(0)).is_err());
    }

    #[test]
    fn pipedrive_conserves_when_the_day_would_end_over_budget() {
        // Half the day gone, 40 % spent: 80 % by midnight.
        let calm = forecast(CrmKind::Pipedrive, 30_000, 12_000, 29_000, at(12));
        assert_eq!(calm.spent, 12_000, "yesterday is gone at midnight");
        assert_eq!(calm.projected, 24_000);
        assert_eq!(calm.pace, Pace::Normal);
        // 50 % by noon: 100 % by midnight.
        let short = forecast(CrmKind::Pipedrive, 30_000, 15_000, 0, at(12));
        assert_eq!(short.projected, 30_000);
        assert_eq!(short.pace, Pace::Conserve);
        // A burst in the first minutes is not read as a day's rate.
        let early = forecast(CrmKind::Pipedrive, 30_000, 600, 0, at(0) + 60);
        assert_eq!(early.pace, Pace::Normal, "{early:?}");
    }

    #[test]
    fn zoho_counts_the_rolling_day_with_yesterdays_tail() {
        // 06:00: three quarters of yesterday's 40,000 still in the window.
        let f = forecast(CrmKind::Zoho, 50_000, 4_000, 40_000, at(6));
        assert_eq!(f.spent, 4_000 + 30_000);
        assert_eq!(
            f.projected, 34_000,
            "today's rate alone would be 16,000 a day"
        );
        assert_eq!(f.pace, Pace::Normal);
        // Yesterday's heavy use keeps the window near the budget.
        let f = forecast(CrmKind::Zoho, 50_000, 4_000, 56_000, at(6));
        assert_eq!(f.spent, 46_000);
        assert_eq!(f.pace, Pace::Conserve);
        // Today's rate would fill a whole rolling day.
        let f = forecast(CrmKind::Zoho, 50_000, 24_000, 0, at(12));
        assert_eq!(f.projected, 48_000);
        assert_eq!(f.pace, Pace::Conserve);
    }
}
