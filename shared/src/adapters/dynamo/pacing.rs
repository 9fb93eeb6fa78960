//! API plans and pacing notices (`crate::pacing`): `APIPLAN#<crm>` and
//! `PACING#<crm>#<day>` under the workspace (keys in the module's table).

use async_trait::async_trait;

use super::{DynamoStore, condition_outcome, n, ws_pk};
use crate::error::StoreError;
use crate::model::CrmKind;
use crate::pacing::{ApiPlan, PacingStore};

fn plan_sk(crm: CrmKind) -> String {
    format!("APIPLAN#{}", crm.as_str())
}

#[async_trait]
impl PacingStore for DynamoStore {
    async fn api_plan(
        &self,
        workspace_id: &str,
        crm: CrmKind,
    ) -> Result<Option<ApiPlan>, StoreError> {
        self.get::<ApiPlan>(ws_pk(workspace_id), plan_sk(crm)).await
    }

    async fn save_api_plan(&self, workspace_id: &str, plan: &ApiPlan) -> Result<(), StoreError> {
        self.put(super::to_item(
            ws_pk(workspace_id),
            plan_sk(plan.crm),
            plan,
            None,
        )?)
        .await
    }

    async fn first_conserve_notice(
        &self,
        workspace_id: &str,
        crm: CrmKind,
        day: &str,
    ) -> Result<bool, StoreError> {
        let update = self
            .update_in(workspace_id, format!("PACING#{}#{day}", crm.as_str()))
            .update_expression("SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":ttl", n(crate::usage::day_start(day) + 2 * 86_400));
        condition_outcome(update.send().await)
    }
}
