//! The local Lambda Runtime API against a real runtime (`lambda-sleeper`,
//! built on `lambda_runtime` like the functions): warm reuse, time-outs that
//! end the execution environment, handled errors, crashes.

use std::collections::BTreeMap;
use std::time::Duration;

use local_stack::lambda::{FunctionSpec, InvokeError, LocalFunction, cold_start};
use serde_json::{Value, json};

fn sleeper(timeout: Duration) -> LocalFunction {
    LocalFunction::new(FunctionSpec {
        name: "test-sleeper".into(),
        binary: env!("CARGO_BIN_EXE_lambda-sleeper").into(),
        // What lambda_runtime reads at start (Lambda always sets these).
        env: BTreeMap::from([
            ("AWS_LAMBDA_FUNCTION_NAME".into(), "test-sleeper".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME".into(), "local".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                "/aws/lambda/test-sleeper".into(),
            ),
        ]),
        timeout,
        max_instances: 1,
    })
}

async fn invoke(function: &LocalFunction, event: Value) -> Result<Value, InvokeError> {
    let answer = function.invoke(event.to_string().into_bytes()).await?;
    Ok(serde_json::from_slice(&answer).expect("JSON answer"))
}

#[tokio::test]
async fn a_warm_instance_serves_the_next_invocation() {
    let function = sleeper(Duration::from_secs(5));
    let first = invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("first");
    let second = invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("second");
    assert_eq!(first["pid"], second["pid"], "the same process, warm");
}

#[tokio::test]
async fn an_invocation_past_its_timeout_is_cut_off_and_the_environment_replaced() {
    let function = sleeper(Duration::from_millis(500));
    let warm = invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("warm");
    let cut = invoke(&function, json!({ "sleep_ms": 5_000 })).await;
    assert!(matches!(cut, Err(InvokeError::Timeout(_))), "{cut:?}");
    assert_eq!(function.timeouts(), 1);
    let next = invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("next");
    assert_ne!(warm["pid"], next["pid"], "a new execution environment");
}

#[tokio::test]
async fn a_handled_error_is_reported_and_the_instance_kept() {
    let function = sleeper(Duration::from_secs(5));
    let warm = invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("warm");
    let failed = invoke(&function, json!({ "fail": true })).await;
    assert!(
        matches!(&failed, Err(InvokeError::Failed(body)) if body.contains("asked to fail")),
        "{failed:?}"
    );
    let next = invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("next");
    assert_eq!(warm["pid"], next["pid"]);
}

#[tokio::test]
async fn a_runtime_that_exits_fails_its_invocation() {
    let function = sleeper(Duration::from_secs(5));
    let exited = invoke(&function, json!({ "exit": true })).await;
    assert!(matches!(exited, Err(InvokeError::Exited(_))), "{exited:?}");
    invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("a fresh instance answers");
}

#[tokio::test]
async fn a_cold_start_is_timed_apart_from_the_pool_and_peak_memory_is_kept() {
    let function = sleeper(Duration::from_secs(5));
    let started = cold_start(
        function.spec(),
        Some(json!({ "sleep_ms": 0 }).to_string().into_bytes()),
    )
    .await
    .expect("a cold start");
    assert!(started.init > Duration::ZERO, "{started:?}");
    assert!(started.first_invoke.is_some(), "{started:?}");
    let answer: Value =
        serde_json::from_slice(started.response.as_deref().expect("an answer")).expect("JSON");
    assert_eq!(answer["slept_ms"], 0);
    assert!(
        started.peak_rss_kib.is_some_and(|kib| kib > 0),
        "{started:?}"
    );
    assert_eq!(function.peak_rss_kib(), None, "nothing ran in the pool yet");
    invoke(&function, json!({ "sleep_ms": 0 }))
        .await
        .expect("an invocation");
    assert!(function.peak_rss_kib().is_some_and(|kib| kib > 0));
}
