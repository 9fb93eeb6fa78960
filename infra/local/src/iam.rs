//! Each function's IAM role on moto, from the template through the SAM
//! translator (`roles.py`): the policies are AWS's own expansion of what the
//! template says, never a hand-written copy. moto enforces them (see
//! `moto_server.py`), so a call a function is not granted fails locally as
//! it would deployed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::provision::Stack;

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error(
        "LOCAL_STACK_PYTHON is not set: start the local stack with infra/local/stack.sh (it writes .local/stack.env)"
    )]
    NoPython,
    #[error("cannot run {0}: {1}")]
    Run(String, std::io::Error),
    #[error("roles.py failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("roles.py answered something unreadable: {0}")]
    Output(#[from] serde_json::Error),
}

/// A function's temporary credentials for its role (what Lambda puts in its
/// environment).
#[derive(Clone, Deserialize)]
pub struct RoleCredentials {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl std::fmt::Debug for RoleCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleCredentials")
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

fn roles_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("roles.py")
}

/// Creates every function's role for `stack` (translated from `template`)
/// and assumes it; by function logical id.
pub async fn function_roles(
    stack: &Stack,
    template: &Path,
    region: &str,
) -> Result<BTreeMap<String, RoleCredentials>, IamError> {
    let python = std::env::var("LOCAL_STACK_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .ok_or(IamError::NoPython)?;
    let request = serde_json::json!({
        "template": template,
        "prefix": stack.prefix,
        "region": region,
        "refs": stack.refs,
        "attributes": stack.attributes,
    });
    let script = roles_script();
    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| IamError::Run(format!("{python} {}", script.display()), e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(request.to_string().as_bytes())
            .await
            .map_err(|e| IamError::Run(python.clone(), e))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| IamError::Run(python.clone(), e))?;
    if !output.status.success() {
        return Err(IamError::Failed {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}
