//! Lambda entry point of the `oauth` function: connects a CRM through OAuth (start, callback).
//! Dependencies are built once per container; the logic is in
//! `shared::handlers::oauth`.

use lambda_http::{Error, Request, run, service_fn};
use shared::deps::{Deps, init_tracing};
use shared::handlers::oauth;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing();
    let deps = Deps::from_env().await?;
    let deps = &deps;
    run(service_fn(move |request: Request| {
        oauth::handle(deps, request)
    }))
    .await
}
