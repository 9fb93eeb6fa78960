//! A hello-world that builds what every function builds before its first
//! invocation, and nothing of the application: the AWS SDK configuration,
//! the DynamoDB, SQS and Secrets Manager clients and the outbound HTTP
//! client, through the same `shared::deps` functions. Its init time is the
//! cost of those clients; the functions' on top of it is their own.
//!
//! An event `{"get": url}` makes one GET with the HTTP client and
//! `{"secret": id}` reads one secret with the SDK client (the benchmark's
//! first TLS call); it answers the status or the secret's length.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let aws = shared::deps::aws_config()?;
    let _dynamodb = aws_sdk_dynamodb::Client::new(&aws);
    let _sqs = aws_sdk_sqs::Client::new(&aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let http = shared::deps::http_client()?;
    let (secrets, http) = (&secrets, &http);
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        if let Some(url) = event.payload["get"].as_str() {
            let status = http.get(url).send().await?.status().as_u16();
            return Ok::<_, Error>(json!({ "status": status }));
        }
        if let Some(id) = event.payload["secret"].as_str() {
            let secret = secrets.get_secret_value().secret_id(id).send().await?;
            let length = secret.secret_string().map(str::len).unwrap_or_default();
            return Ok(json!({ "secret_length": length }));
        }
        Ok(json!({ "hello": "world" }))
    }))
    .await
}
