//! `GET /api/usage` and `PUT /api/usage`: a workspace's use of its CRMs'
//! daily API budgets, and the plan those budgets come from.

use lambda_http::Request;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::http::{ApiError, HttpResponse, caller, json_body, json_response};
use crate::deps::Deps;
use crate::model::{ConnectionKind, CrmKind, User};
use crate::pacing::{self, ApiPlan, Forecast};
use crate::store::CrmUsage;
use crate::synclog::{self, SyncEvent};
use crate::usage::utc_day;

/// Days of history in the answer.
const HISTORY_DAYS: i64 = 7;
// The forecast needs today and yesterday from the history.
const _: () = assert!(HISTORY_DAYS >= 2);

#[derive(Serialize)]
struct DayUsage {
    day: String,
    calls: u64,
    /// Zoho credits or Pipedrive tokens.
    spent: u64,
}

#[derive(Serialize)]
struct CrmBudget {
    crm: CrmKind,
    /// `credits` (Zoho) or `tokens` (Pipedrive).
    unit: &'static str,
    /// `rolling_24h` (Zoho) or `utc_day` (Pipedrive, reset at midnight).
    window: &'static str,
    plan: ApiPlan,
    budget_per_day: u64,
    #[serde(flatten)]
    forecast: Forecast,
    /// Newest first, today included.
    days: Vec<DayUsage>,
}

async fn budget_of(deps: &Deps, workspace_id: &str, crm: CrmKind) -> Result<CrmBudget, ApiError> {
    let plan = pacing::plan(deps, workspace_id, crm).await?;
    let now = deps.clock.now();
    let mut days = Vec::new();
    for back in 0..HISTORY_DAYS {
        let day = utc_day(now - back * 86_400);
        let CrmUsage { calls, tokens } = deps.store.crm_usage(workspace_id, crm, &day).await?;
        days.push(DayUsage {
            day,
            calls,
            spent: tokens,
        });
    }
    // Today and yesterday are the list's first two days: the forecast is
    // made from them rather than from reading them again.
    let spent_on = |back: usize| days.get(back).map_or(0, |d| d.spent);
    let forecast = pacing::forecast(crm, plan.per_day(), spent_on(0), spent_on(1), now);
    let (unit, window) = match crm {
        CrmKind::Zoho => ("credits", "rolling_24h"),
        CrmKind::Pipedrive => ("tokens", "utc_day"),
    };
    Ok(CrmBudget {
        crm,
        unit,
        window,
        budget_per_day: plan.per_day(),
        plan,
        forecast,
        days,
    })
}

/// Every CRM the workspace is connected to (by its organization) or spent
/// on this week.
pub async fn show(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    let mut usage = Vec::new();
    for crm in CrmKind::ALL {
        let connected = deps
            .store
            .connection(&me.workspace_id, crm, ConnectionKind::Organization, None)
            .await?
            .is_some();
        let budget = budget_of(deps, &me.workspace_id, crm).await?;
        if connected || budget.days.iter().any(|d| d.calls > 0) {
            usage.push(budget);
        }
    }
    Ok(json_response(200, &json!({ "usage": usage })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanChange {
    crm: CrmKind,
    edition: String,
    seats: u32,
    #[serde(default)]
    extra_per_day: u64,
    #[serde(default)]
    per_day: Option<u64>,
}

fn require_manager(me: &User) -> Result<(), ApiError> {
    if me.role.manages_workspace() {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only the workspace owner or an admin can set the CRM plan".into(),
        ))
    }
}

/// The owner or an admin says which edition and how many seats the
/// workspace's CRM has (or the budget the CRM shows them).
pub async fn set_plan(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let me = caller(deps, req).await?;
    require_manager(&me)?;
    let change: PlanChange = json_body(req)?;
    let plan = ApiPlan::set(
        change.crm,
        &change.edition,
        change.seats,
        change.extra_per_day,
        change.per_day,
    )
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    deps.store.save_api_plan(&me.workspace_id, &plan).await?;
    tracing::info!(workspace_id = %me.workspace_id, crm = plan.crm.as_str(), per_day = plan.per_day(), "API plan set");
    synclog::workspace_event(
        deps,
        &me.workspace_id,
        SyncEvent::ApiPlanSet,
        json!({ "crm": plan.crm, "edition": plan.edition, "seats": plan.seats, "budget_per_day": plan.per_day(), "by_user": me.id }),
    )
    .await;
    let budget = budget_of(deps, &me.workspace_id, plan.crm).await?;
    Ok(json_response(200, &budget))
}
