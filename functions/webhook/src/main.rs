//! Lambda entry point of the `webhook` function: receives WhatsApp Cloud API webhooks, verifies, dedupes and queues them.
//! Dependencies are built once per container; the logic is in
//! `shared::handlers::webhook`.

use lambda_http::{Error, Request, run, service_fn};
use shared::deps::{Deps, init_tracing};
use shared::handlers::webhook;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| {
        webhook::handle(deps, request)
    }))
    .await
}
