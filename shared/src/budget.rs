//! The time an invocation has left, for every outbound call made within it.
//!
//! A worker's batch runs inside [`within`] with Lambda's deadline; each CRM
//! or Graph request then gets [`call_timeout`]: its usual limit, or less when
//! the invocation ends sooner, always leaving [`RESERVE`] to write back what
//! happened and send the batch response. A call with no time left is not
//! made at all: the message fails as transient and is retried, instead of
//! the invocation being cut off mid-way with its response unsent.

use std::future::Future;
use std::time::{Duration, SystemTime};

/// Kept back at the end of an invocation for the bookkeeping after the last
/// call: back-off (ChangeMessageVisibility), ledger states, the response.
pub const RESERVE: Duration = Duration::from_secs(3);

/// The shortest call worth making: less than this and the call is given up.
const SHORTEST_CALL: Duration = Duration::from_millis(500);

tokio::task_local! {
    static DEADLINE: SystemTime;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the invocation ends in {left:?}: too soon for another call")]
pub struct OutOfTime {
    pub left: Duration,
}

/// Runs `work` with `deadline` (none: no limit but the calls' own).
pub async fn within<F: Future>(deadline: Option<SystemTime>, work: F) -> F::Output {
    match deadline {
        Some(deadline) => DEADLINE.scope(deadline, work).await,
        None => work.await,
    }
}

/// The timeout for a call whose usual limit is `usual`, given the time left.
pub fn call_timeout(usual: Duration) -> Result<Duration, OutOfTime> {
    let Ok(deadline) = DEADLINE.try_with(|d| *d) else {
        return Ok(usual);
    };
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let usable = left.saturating_sub(RESERVE);
    if usable < SHORTEST_CALL {
        return Err(OutOfTime { left });
    }
    Ok(usable.min(usual))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outside_an_invocation_a_call_keeps_its_usual_limit() {
        assert_eq!(
            call_timeout(Duration::from_secs(20)),
            Ok(Duration::from_secs(20))
        );
    }

    #[tokio::test]
    async fn a_call_gets_what_is_left_minus_the_reserve() {
        let deadline = SystemTime::now() + Duration::from_secs(10);
        let timeout = within(Some(deadline), async {
            call_timeout(Duration::from_secs(20))
        })
        .await
        .expect("time left");
        assert!(timeout <= Duration::from_secs(7), "{timeout:?}");
        assert!(timeout > Duration::from_secs(6), "{timeout:?}");
        let short = within(Some(deadline), async {
            call_timeout(Duration::from_secs(2))
        })
        .await;
        assert_eq!(short, Ok(Duration::from_secs(2)), "never more than usual");
    }

    #[tokio::test]
    async fn no_call_is_made_inside_the_reserve() {
        let deadline = SystemTime::now() + Duration::from_secs(3);
        let refused = within(Some(deadline), async {
            call_timeout(Duration::from_secs(20))
        })
        .await;
        assert!(refused.is_err());
    }
}
