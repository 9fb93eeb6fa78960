//! Lambda entry point of the `api` function: workspaces, users, WhatsApp numbers.
//! Dependencies are built once per container; the logic is in
//! `shared::handlers::api`.

use lambda_http::{Error, Request, run, service_fn};
use shared::deps::{Deps, init_tracing};
use shared::handlers::api;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| {
        api::handle(deps, request)
    }))
    .await
}
