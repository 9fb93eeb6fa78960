//! Contract violations a sandbox records (a call or an answer its vendor's
//! OpenAPI files do not allow), and `GET /__sandbox/violations`, which
//! lists them. Each sandbox checks against its own vendor's files.

use std::fmt;

use axum::Json;
use axum::response::{IntoResponse, Response};

/// One recorded contract violation.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractViolation {
    pub method: String,
    pub path: String,
    /// `"request"` or `"response <status>"`.
    pub direction: String,
    pub message: String,
}

impl fmt::Display for ContractViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            self.method, self.path, self.direction, self.message
        )
    }
}

/// The violations, one line each.
pub fn lines(violations: &[ContractViolation]) -> Vec<String> {
    violations.iter().map(ToString::to_string).collect()
}

/// The answer of `GET /__sandbox/violations`: `{"violations": [line, …]}`.
pub fn violations_answer(violations: &[ContractViolation]) -> Response {
    Json(serde_json::json!({ "violations": lines(violations) })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_violation_reads_as_one_line_naming_the_call() {
        let v = ContractViolation {
            method: "POST".into(),
            path: "/crm/v8/Leads".into(),
            direction: "response 201".into(),
            message: "\"id\" is a required property".into(),
        };
        assert_eq!(
            lines(std::slice::from_ref(&v)),
            vec!["POST /crm/v8/Leads response 201: \"id\" is a required property".to_owned()]
        );
        assert!(lines(&[]).is_empty());
    }
}
