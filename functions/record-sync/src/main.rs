//! Lambda entry point of the `record-sync` function: finds or creates the CRM record of each new chat (SQS FIFO).
//! Dependencies are built once per container; the logic is in
//! `shared::handlers::record_sync`.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::deps::{Deps, init_tracing};
use shared::handlers::record_sync;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        record_sync::handle(deps, event.payload, Some(deadline))
    }))
    .await
}
