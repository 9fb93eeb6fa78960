//! For the sandboxes' own tests: `/__sandbox/faults` over HTTP, and the
//! checks of an injected fault that hold for every vendor. Failures panic,
//! as test assertions do.

use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running sandbox's `/__sandbox/faults`.
pub struct FaultsEndpoint {
    http: reqwest::Client,
    url: String,
}

impl FaultsEndpoint {
    /// The endpoint of the sandbox served at `base_url`.
    pub fn of(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("{base_url}/__sandbox/faults"),
        }
    }

    /// `POST`s `plan` (a [`crate::faults::FaultConfig`] as JSON); the
    /// status answered.
    pub async fn set(&self, plan: Value) -> StatusCode {
        self.http
            .post(&self.url)
            .json(&plan)
            .send()
            .await
            .expect("the sandbox answers POST /__sandbox/faults")
            .status()
    }

    /// Every call from now on gets one of `kinds` (a list or weights).
    pub async fn every_call(&self, kinds: Value) {
        let status = self.set(json!({ "rate": 1.0, "kinds": kinds })).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "the plan is taken");
    }

    /// The [`crate::faults::FaultReport`] as JSON.
    pub async fn report(&self) -> Value {
        self.http
            .get(&self.url)
            .send()
            .await
            .expect("the sandbox answers GET /__sandbox/faults")
            .json()
            .await
            .expect("a JSON report")
    }

    /// Stops injecting.
    pub async fn stop(&self) {
        let status = self
            .http
            .delete(&self.url)
            .send()
            .await
            .expect("the sandbox answers DELETE /__sandbox/faults")
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    /// An expired-token fault on `call`, as every vendor has it: the call is
    /// refused 401 and the one fault counted; with the plan stopped, the
    /// token stays expired, as a real expiry would. Answers the first 401's
    /// body, for the vendor's own shape to be checked.
    pub async fn expire_the_token_of<F, Fut>(&self, call: F) -> Value
    where
        F: Fn() -> Fut,
        Fut: Future<Output = reqwest::Result<reqwest::Response>>,
    {
        self.every_call(json!(["expired-token"])).await;
        let answer = call().await.expect("the sandbox answers");
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        let body: Value = answer.json().await.expect("a JSON error body");
        assert_eq!(
            self.report().await,
            json!({"calls": 1, "injected": {"expired-token": 1}})
        );
        self.stop().await;
        assert_eq!(
            call().await.expect("the sandbox answers").status(),
            StatusCode::UNAUTHORIZED,
            "expired for real"
        );
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bound;
    use crate::faults::Faults;

    #[tokio::test]
    async fn the_faults_routes_refuse_a_bad_plan_count_draws_and_stop() {
        let faults = Faults::default();
        let served = Bound::loopback(0)
            .await
            .expect("a loopback port")
            .serve(faults.routes(), "faults-test");
        let endpoint = FaultsEndpoint::of(&served.base_url);

        assert_eq!(
            endpoint.set(json!({"rate": 2.0})).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            endpoint.set(json!({"rate": 0.5, "kinds": []})).await,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(endpoint.report().await, json!({"calls": 0, "injected": {}}));

        endpoint.every_call(json!({"503": 1})).await;
        for _ in 0..3 {
            let drawn = faults.draw().map(|(kind, _)| kind);
            assert_eq!(drawn, Some(crate::faults::FaultKind::Unavailable));
        }
        assert_eq!(
            endpoint.report().await,
            json!({"calls": 3, "injected": {"503": 3}})
        );

        endpoint.stop().await;
        assert!(faults.draw().is_none(), "nothing drawn once stopped");
        assert_eq!(
            endpoint.report().await,
            json!({"calls": 3, "injected": {"503": 3}}),
            "the counts stay readable"
        );
        served.shutdown().await;
    }
}
