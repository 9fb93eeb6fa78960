//! Lambda entry point of the `note-append` function: writes messages into their chat's day note (SQS FIFO).
//! Dependencies are built once per container; the logic is in
//! `shared::handlers::note_append`.

use std::time::{Duration, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use shared::deps::{Deps, init_tracing};
use shared::handlers::note_append;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deadline = UNIX_EPOCH + Duration::from_millis(event.context.deadline);
        note_append::handle(deps, event.payload, Some(deadline))
    }))
    .await
}
