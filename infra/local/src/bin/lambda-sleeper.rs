//! A test function for the local Lambda Runtime API (`tests/lambda.rs`):
//! answers `{"slept_ms": n, "pid": p}` after sleeping the event's
//! `sleep_ms`, fails when the event says `fail`, exits when it says `exit`.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    let payload = event.payload;
    if payload["exit"].as_bool() == Some(true) {
        std::process::exit(3);
    }
    if payload["fail"].as_bool() == Some(true) {
        return Err("asked to fail".into());
    }
    let sleep_ms = payload["sleep_ms"].as_u64().unwrap_or_default();
    tokio::time::sleep(std::time::Duration::from_millis(sleep_ms)).await;
    Ok(json!({ "slept_ms": sleep_ms, "pid": std::process::id() }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(handle)).await
}
