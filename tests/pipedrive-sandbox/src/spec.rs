//! Pipedrive's OpenAPI descriptions (`oas/`, embedded unaltered) as an
//! operation table: which request paths exist, what each operation costs
//! (`x-token-cost`) and which OAuth scopes grant it (`security.oauth2`).
//!
//! The two YAML files are parsed once per process, lazily, on the first
//! sandbox start; every sandbox shares the result.

use std::sync::OnceLock;

use serde_json::Value;

const V1_YAML: &str = include_str!("../oas/pipedrive-v1-openapi.yml");
const V2_YAML: &str = include_str!("../oas/pipedrive-v2-openapi.yml");

/// Which description an operation comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// One operation of the OpenAPI files.
#[derive(Debug)]
pub struct Operation {
    pub version: Version,
    /// Upper case, e.g. `GET`.
    pub method: String,
    /// The spec's path template inside its version, e.g. `/persons/{id}`.
    pub template: String,
    pub operation_id: String,
    /// `x-token-cost`: tokens drawn from the company's daily budget.
    pub token_cost: u64,
    /// `security.oauth2`: any one of these scopes grants the operation.
    pub scopes: Vec<String>,
    segments: Vec<Segment>,
}

impl Operation {
    /// `GET /api/v2/persons/{id}`-style label.
    pub fn label(&self) -> String {
        let prefix = match self.version {
            Version::V1 if self.template.starts_with("/oauth") => "",
            Version::V1 => "/v1",
            Version::V2 => "/api/v2",
        };
        format!("{} {prefix}{}", self.method, self.template)
    }

    /// Search endpoints share the separate search burst limit.
    pub fn is_search(&self) -> bool {
        self.template.ends_with("/search") || self.template.starts_with("/itemSearch")
    }

    pub fn is_oauth(&self) -> bool {
        self.template.starts_with("/oauth")
    }
}

/// A request matched to its operation, with the path parameters.
#[derive(Debug, Clone)]
pub struct Matched {
    pub op: &'static Operation,
    pub params: Vec<(String, String)>,
}

impl Matched {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why the embedded files could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpecError {
    #[error("embedded OpenAPI file {file} does not parse: {message}")]
    Parse { file: &'static str, message: String },
    #[error("embedded OpenAPI file {file} has no `paths` object")]
    NoPaths { file: &'static str },
}

/// Both descriptions and their operation table.
#[derive(Debug)]
pub struct Spec {
    v1: Value,
    v2: Value,
    pub operations: Vec<Operation>,
}

static SPEC: OnceLock<Result<Spec, SpecError>> = OnceLock::new();

/// The parsed files (parsed on the first call).
pub fn spec() -> Result<&'static Spec, SpecError> {
    SPEC.get_or_init(Spec::load).as_ref().map_err(Clone::clone)
}

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete"];

fn operations_of(
    version: Version,
    doc: &Value,
    file: &'static str,
) -> Result<Vec<Operation>, SpecError> {
    let paths = doc
        .get("paths")
        .and_then(Value::as_object)
        .ok_or(SpecError::NoPaths { file })?;
    let mut out = Vec::new();
    for (template, item) in paths {
        for method in METHODS {
            let Some(op) = item.get(*method) else {
                continue;
            };
            let scopes = op
                .get("security")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|s| s.get("oauth2").and_then(Value::as_array))
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            let segments = template
                .trim_matches('/')
                .split('/')
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => Segment::Param(name.to_string()),
                        None => Segment::Literal(s.to_string()),
                    },
                )
                .collect();
            out.push(Operation {
                version,
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                operation_id: op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                token_cost: op.get("x-token-cost").and_then(Value::as_u64).unwrap_or(0),
                scopes,
                segments,
            });
        }
    }
    Ok(out)
}

/// Splits a request path into its API version and the path inside it:
/// `/v1/x` and `/api/v1/x` → (V1, `/x`); `/api/v2/x` → (V2, `/x`);
/// `/oauth/x` → (V1, `/oauth/x`) (the v1 file describes the OAuth server).
pub fn split_path(path: &str) -> Option<(Version, &str)> {
    if path.starts_with("/oauth/") {
        return Some((Version::V1, path));
    }
    let (version, rest) = if let Some(r) = path.strip_prefix("/api/v2") {
        (Version::V2, r)
    } else if let Some(r) = path
        .strip_prefix("/api/v1")
        .or_else(|| path.strip_prefix("/v1"))
    {
        (Version::V1, r)
    } else {
        return None;
    };
    // `/v1/oauth/token` is not an address of the OAuth server.
    if !rest.starts_with('/') || rest.starts_with("/oauth") {
        return None;
    }
    Some((version, rest))
}

impl Spec {
    fn load() -> Result<Self, SpecError> {
        let parse = |file: &'static str, text: &str| {
            serde_norway::from_str::<Value>(text).map_err(|e| SpecError::Parse {
                file,
                message: e.to_string(),
            })
        };
        let v1 = parse("pipedrive-v1-openapi.yml", V1_YAML)?;
        let v2 = parse("pipedrive-v2-openapi.yml", V2_YAML)?;
        let mut operations = operations_of(Version::V1, &v1, "pipedrive-v1-openapi.yml")?;
        operations.extend(operations_of(Version::V2, &v2, "pipedrive-v2-openapi.yml")?);
        Ok(Self { v1, v2, operations })
    }

    pub fn document(&self, version: Version) -> &Value {
        match version {
            Version::V1 => &self.v1,
            Version::V2 => &self.v2,
        }
    }

    /// The operation object (`paths.<template>.<method>`).
    pub fn operation_json(&self, op: &Operation) -> Option<&Value> {
        self.document(op.version)
            .get("paths")?
            .get(&op.template)?
            .get(op.method.to_ascii_lowercase())
    }

    /// The path item's shared parameters plus the operation's own.
    pub fn parameters(&self, op: &Operation) -> Vec<&Value> {
        let item = self
            .document(op.version)
            .get("paths")
            .and_then(|p| p.get(&op.template));
        let shared = item
            .and_then(|i| i.get("parameters"))
            .and_then(Value::as_array);
        let own = self
            .operation_json(op)
            .and_then(|o| o.get("parameters"))
            .and_then(Value::as_array);
        shared.into_iter().chain(own).flatten().collect()
    }

    /// The operation a request addresses; literal segments win over
    /// parameters (`/persons/search` is not `/persons/{id}`).
    pub fn find(&'static self, method: &str, path: &str) -> Option<Matched> {
        let (version, rest) = split_path(path)?;
        let segs: Vec<&str> = rest.trim_matches('/').split('/').collect();
        let mut best: Option<(usize, Matched)> = None;
        for op in &self.operations {
            if op.version != version
                || !op.method.eq_ignore_ascii_case(method)
                || op.segments.len() != segs.len()
                || op.is_oauth() != rest.starts_with("/oauth")
            {
                continue;
            }
            // `/oauth/token` and `/oauth/token/` are distinct operations.
            if op.is_oauth() && op.template != rest {
                continue;
            }
            let mut literals = 0;
            let mut params = Vec::new();
            let fits = op.segments.iter().zip(&segs).all(|(s, actual)| match s {
                Segment::Literal(l) => {
                    literals += 1;
                    l == actual
                }
                Segment::Param(name) => {
                    params.push((name.clone(), (*actual).to_string()));
                    !actual.is_empty()
                }
            });
            if fits && best.as_ref().is_none_or(|(n, _)| literals > *n) {
                best = Some((literals, Matched { op, params }));
            }
        }
        best.map(|(_, m)| m)
    }

    /// Scope names and descriptions of the OAuth scheme.
    pub fn scope_names(&self) -> Vec<String> {
        self.v1
            .pointer("/components/securitySchemes/oauth2/flows/authorizationCode/scopes")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_and_scopes_come_from_the_files() {
        let s = spec().expect("spec parses");
        let m = s.find("GET", "/api/v2/persons/search").expect("search op");
        assert_eq!(m.op.token_cost, 20);
        assert!(m.op.is_search());
        assert!(m.op.scopes.iter().any(|x| x == "search:read"));
        let m = s.find("GET", "/api/v2/persons/42").expect("get person");
        assert_eq!(
            (m.op.template.as_str(), m.op.token_cost),
            ("/persons/{id}", 1)
        );
        assert_eq!(m.param("id"), Some("42"));
        let m = s.find("POST", "/api/v1/leads").expect("create lead");
        assert_eq!(m.op.token_cost, 10);
        assert_eq!(m.op.scopes, vec!["leads:full".to_string()]);
        let m = s.find("POST", "/v1/notes").expect("create note");
        assert_eq!(m.op.label(), "POST /v1/notes");
        assert_eq!(
            s.find("POST", "/oauth/token/")
                .map(|m| m.op.template.as_str()),
            Some("/oauth/token/")
        );
        assert!(s.find("POST", "/v1/oauth/token").is_none());
        assert!(s.find("GET", "/api/v2/users").is_none());
        assert!(s.scope_names().iter().any(|x| x == "contacts:full"));
    }
}
