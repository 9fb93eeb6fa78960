//! Random faults at a configurable rate, for soaks: which kinds, how often
//! and how long the slow and timed-out answers are held. Each sandbox turns
//! a drawn [`FaultKind`] into its vendor's own documented answer; this
//! module only decides, counts and serves `/__sandbox/faults`.
//!
//! `POST /__sandbox/faults` takes a [`FaultConfig`] as JSON, e.g.
//! `{"rate": 0.2, "seed": 7, "kinds": ["429", "500", "timeout"]}` (or
//! weighted: `"kinds": {"429": 3, "timeout": 1}`); `GET` answers a
//! [`FaultReport`]; `DELETE` stops injecting.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What an injected fault does to one API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FaultKind {
    /// 429 with a `Retry-After` header.
    #[serde(rename = "429")]
    TooManyRequests,
    /// 429 without `Retry-After`.
    #[serde(rename = "429-no-retry-after")]
    TooManyRequestsBare,
    #[serde(rename = "500")]
    ServerError,
    #[serde(rename = "503")]
    Unavailable,
    /// The call is carried out, then its answer is held past the client's
    /// time-out (the work is done, the client never hears of it).
    #[serde(rename = "timeout")]
    Timeout,
    /// The call is answered normally after [`FaultConfig::slow_ms`].
    #[serde(rename = "slow")]
    Slow,
    /// The caller's access token expires now: the vendor's 401.
    #[serde(rename = "expired-token")]
    ExpiredToken,
}

impl FaultKind {
    pub const ALL: [FaultKind; 7] = [
        Self::TooManyRequests,
        Self::TooManyRequestsBare,
        Self::ServerError,
        Self::Unavailable,
        Self::Timeout,
        Self::Slow,
        Self::ExpiredToken,
    ];
}

/// What an injected fault does to one API call; `A` is the sandbox's own
/// answer (its vendor's error shape).
#[derive(Debug, Clone, PartialEq)]
pub enum Injected<A> {
    /// Answered with this instead of the API's answer.
    Answer(A),
    /// Served as usual after this wait.
    Delay(Duration),
    /// Served as usual, the answer then held this long (past the client's
    /// time-out).
    Hold(Duration),
}

impl<A> Injected<A> {
    /// What `kind` does under `config`: a slow or timed-out call is the
    /// same everywhere; every other kind is answered by `answer`, the
    /// vendor's documented refusal.
    pub fn of(kind: FaultKind, config: &FaultConfig, answer: impl FnOnce(FaultKind) -> A) -> Self {
        match kind {
            FaultKind::Timeout => Self::Hold(config.timeout_hold()),
            FaultKind::Slow => Self::Delay(config.slow()),
            FaultKind::TooManyRequests
            | FaultKind::TooManyRequestsBare
            | FaultKind::ServerError
            | FaultKind::Unavailable
            | FaultKind::ExpiredToken => Self::Answer(answer(kind)),
        }
    }
}

/// Which kinds are drawn: a list (equal weights) or weights by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FaultKinds {
    Listed(Vec<FaultKind>),
    Weighted(BTreeMap<FaultKind, u32>),
}

impl Default for FaultKinds {
    fn default() -> Self {
        Self::Listed(FaultKind::ALL.to_vec())
    }
}

impl FaultKinds {
    fn weights(&self) -> Vec<(FaultKind, u32)> {
        match self {
            Self::Listed(kinds) => kinds.iter().map(|k| (*k, 1)).collect(),
            Self::Weighted(weights) => weights
                .iter()
                .filter(|(_, w)| **w > 0)
                .map(|(k, w)| (*k, *w))
                .collect(),
        }
    }
}

fn default_slow_ms() -> u64 {
    3_000
}

fn default_timeout_ms() -> u64 {
    // Longer than the product's longest call time-out (20 s).
    25_000
}

fn default_retry_after_secs() -> u64 {
    1
}

/// How often and how calls fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Share of API calls that get a fault, 0.0–1.0.
    pub rate: f64,
    #[serde(default)]
    pub kinds: FaultKinds,
    /// Seeds the draws: the same seed draws the same sequence of faults.
    #[serde(default)]
    pub seed: u64,
    /// How long a [`FaultKind::Slow`] answer waits.
    #[serde(default = "default_slow_ms")]
    pub slow_ms: u64,
    /// How long a [`FaultKind::Timeout`] answer is held.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The `Retry-After` (and rate-limit reset) of an injected 429.
    #[serde(default = "default_retry_after_secs")]
    pub retry_after_secs: u64,
}

impl FaultConfig {
    /// `rate` of every kind, with the defaults.
    pub fn every_kind(rate: f64, seed: u64) -> Self {
        Self {
            rate,
            kinds: FaultKinds::default(),
            seed,
            slow_ms: default_slow_ms(),
            timeout_ms: default_timeout_ms(),
            retry_after_secs: default_retry_after_secs(),
        }
    }

    pub fn slow(&self) -> Duration {
        Duration::from_millis(self.slow_ms)
    }

    pub fn timeout_hold(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultConfigError {
    #[error("rate must be between 0 and 1")]
    Rate,
    #[error("kinds must name at least one kind with a weight above 0")]
    NoKinds,
}

/// What was injected so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// API calls that drew (faulted or not) while a plan was set.
    pub calls: u64,
    /// Faults injected, by kind.
    pub injected: BTreeMap<FaultKind, u64>,
}

impl FaultReport {
    pub fn total(&self) -> u64 {
        self.injected.values().sum()
    }
}

struct Plan {
    config: FaultConfig,
    weights: Vec<(FaultKind, u32)>,
    rng: StdRng,
}

#[derive(Default)]
struct State {
    plan: Option<Plan>,
    report: FaultReport,
}

/// A sandbox's fault plan (cheap to clone: clones share it).
#[derive(Clone, Default)]
pub struct Faults(Arc<Mutex<State>>);

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("report", &self.report())
            .finish()
    }
}

impl Faults {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Injects faults as `config` says from now on (the counts start over).
    pub fn set(&self, config: FaultConfig) -> Result<(), FaultConfigError> {
        if !(0.0..=1.0).contains(&config.rate) {
            return Err(FaultConfigError::Rate);
        }
        let weights = config.kinds.weights();
        if weights.is_empty() {
            return Err(FaultConfigError::NoKinds);
        }
        let mut state = self.state();
        state.plan = Some(Plan {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            weights,
        });
        state.report = FaultReport::default();
        Ok(())
    }

    /// Stops injecting; the counts stay readable.
    pub fn clear(&self) {
        self.state().plan = None;
    }

    pub fn report(&self) -> FaultReport {
        self.state().report.clone()
    }

    /// Draws for one API call: the fault it gets, if any, with the plan's
    /// configuration (for the hold times).
    pub fn draw(&self) -> Option<(FaultKind, FaultConfig)> {
        let mut state = self.state();
        let State { plan, report } = &mut *state;
        let plan = plan.as_mut()?;
        report.calls += 1;
        if !plan.rng.random_bool(plan.config.rate) {
            return None;
        }
        let total: u32 = plan.weights.iter().map(|(_, w)| w).sum();
        let mut pick = plan.rng.random_range(0..total);
        let kind = plan
            .weights
            .iter()
            .find(|(_, w)| {
                if pick < *w {
                    true
                } else {
                    pick -= w;
                    false
                }
            })
            .map(|(k, _)| *k)?;
        *report.injected.entry(kind).or_default() += 1;
        Some((kind, plan.config.clone()))
    }

    /// `/__sandbox/faults`: `POST` a [`FaultConfig`], `GET` the
    /// [`FaultReport`], `DELETE` to stop.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let (set, get, stop) = (self.clone(), self.clone(), self.clone());
        Router::new().route(
            "/__sandbox/faults",
            post(move |Json(config): Json<FaultConfig>| async move {
                match set.set(config) {
                    Ok(()) => StatusCode::NO_CONTENT.into_response(),
                    Err(e) => refused(&e),
                }
            })
            .get(move || async move { Json(get.report()) })
            .delete(move || async move {
                stop.clear();
                StatusCode::NO_CONTENT
            }),
        )
    }
}

fn refused(e: &FaultConfigError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(serde_json::json!({ "error": e.to_string() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(faults: &Faults, n: usize) -> Vec<Option<FaultKind>> {
        (0..n).map(|_| faults.draw().map(|(k, _)| k)).collect()
    }

    #[test]
    fn without_a_plan_nothing_is_drawn_or_counted() {
        let faults = Faults::default();
        assert!(drawn(&faults, 100).iter().all(Option::is_none));
        assert_eq!(faults.report(), FaultReport::default());
    }

    #[test]
    fn the_rate_is_kept_and_every_fault_is_counted_by_kind() {
        let faults = Faults::default();
        faults
            .set(FaultConfig::every_kind(0.2, 7))
            .expect("a valid plan");
        let draws = drawn(&faults, 10_000);
        let injected = draws.iter().flatten().count() as u64;
        assert!((1_800..=2_200).contains(&injected), "{injected} of 10000");
        let report = faults.report();
        assert_eq!(report.calls, 10_000);
        assert_eq!(report.total(), injected);
        assert_eq!(report.injected.len(), FaultKind::ALL.len(), "{report:?}");
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let (a, b) = (Faults::default(), Faults::default());
        for f in [&a, &b] {
            f.set(FaultConfig::every_kind(0.5, 42)).expect("valid");
        }
        assert_eq!(drawn(&a, 500), drawn(&b, 500));
    }

    #[test]
    fn only_the_weighted_kinds_are_drawn() {
        let faults = Faults::default();
        let config: FaultConfig = serde_json::from_value(serde_json::json!({
            "rate": 1.0, "kinds": {"timeout": 1, "503": 3, "500": 0}
        }))
        .expect("parses");
        faults.set(config).expect("valid");
        let draws = drawn(&faults, 400);
        let timeouts = draws
            .iter()
            .filter(|k| **k == Some(FaultKind::Timeout))
            .count();
        let unavailable = draws
            .iter()
            .filter(|k| **k == Some(FaultKind::Unavailable))
            .count();
        assert_eq!(timeouts + unavailable, 400, "only the two kinds weighted");
        assert!(unavailable > 2 * timeouts, "{unavailable} vs {timeouts}");
    }

    #[test]
    fn slow_and_timed_out_calls_wait_and_the_rest_get_the_vendors_answer() {
        let config = FaultConfig {
            slow_ms: 7,
            timeout_ms: 9,
            ..FaultConfig::every_kind(1.0, 0)
        };
        let answered = |kind| Injected::of(kind, &config, |k| k);
        assert_eq!(
            answered(FaultKind::Slow),
            Injected::Delay(Duration::from_millis(7))
        );
        assert_eq!(
            answered(FaultKind::Timeout),
            Injected::Hold(Duration::from_millis(9))
        );
        for kind in FaultKind::ALL {
            if !matches!(kind, FaultKind::Slow | FaultKind::Timeout) {
                assert_eq!(answered(kind), Injected::Answer(kind));
            }
        }
    }

    #[test]
    fn a_rate_outside_0_to_1_or_no_kind_is_refused() {
        let faults = Faults::default();
        assert_eq!(
            faults.set(FaultConfig::every_kind(1.5, 0)),
            Err(FaultConfigError::Rate)
        );
        let none = FaultConfig {
            kinds: FaultKinds::Listed(Vec::new()),
            ..FaultConfig::every_kind(0.1, 0)
        };
        assert_eq!(faults.set(none), Err(FaultConfigError::NoKinds));
    }
}
