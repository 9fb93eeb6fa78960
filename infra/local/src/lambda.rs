//! Runs a function as Lambda does: its real binary in a process of its own,
//! with only its own environment and role credentials, talking to a local
//! Lambda Runtime API (`/2018-06-01/runtime/...`). An invocation that outlives
//! the function's time-out is cut off: the process is killed, as Lambda ends
//! the execution environment, and the caller gets no response.
//!
//! Each instance is one process with its own Runtime API listener; a function
//! keeps idle instances warm and starts another (a cold start) when all are
//! busy, up to `max_instances`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// Lambda's limit on a function's initialisation (its `main` before the
/// first `next`).
const INIT_LIMIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("cannot start {binary}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("the function failed to initialise: {0}")]
    Init(String),
    #[error("Task timed out after {0:.2?}")]
    Timeout(Duration),
    #[error("the function failed: {0}")]
    Failed(String),
    #[error("the runtime exited before answering ({0})")]
    Exited(String),
}

/// What to run and how.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// `<prefix>-<LogicalId>`, Lambda's function name.
    pub name: String,
    pub binary: PathBuf,
    /// The whole environment of the process (nothing is inherited).
    pub env: BTreeMap<String, String>,
    pub timeout: Duration,
    pub max_instances: usize,
}

pub struct LocalFunction {
    spec: FunctionSpec,
    idle: Mutex<Vec<Instance>>,
    slots: Semaphore,
    timeouts: AtomicUsize,
    /// The highest `VmHWM` (KiB) of its execution environments, read after
    /// each invocation (an environment may be busy, or gone, when asked).
    peak_rss_kib: AtomicU64,
}

impl LocalFunction {
    pub fn new(spec: FunctionSpec) -> Self {
        let slots = Semaphore::new(spec.max_instances.max(1));
        Self {
            spec,
            idle: Mutex::new(Vec::new()),
            slots,
            timeouts: AtomicUsize::new(0),
            peak_rss_kib: AtomicU64::new(0),
        }
    }

    /// How many invocations were cut off at the function's time-out.
    pub fn timeouts(&self) -> usize {
        self.timeouts.load(Ordering::Relaxed)
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// What it runs, and with which environment.
    pub fn spec(&self) -> &FunctionSpec {
        &self.spec
    }

    /// The highest peak resident set (`VmHWM`, KiB) any of its execution
    /// environments reached after an invocation; `None` before any (or not
    /// on Linux).
    pub fn peak_rss_kib(&self) -> Option<u64> {
        Some(self.peak_rss_kib.load(Ordering::Relaxed)).filter(|&kib| kib > 0)
    }

    /// One invocation with `payload` (the event JSON); its response JSON.
    pub async fn invoke(&self, payload: Vec<u8>) -> Result<Vec<u8>, InvokeError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| InvokeError::Exited("the function is shutting down".into()))?;
        let warm = self.idle.lock().await.pop();
        let mut instance = match warm {
            Some(instance) => instance,
            None => Instance::start(&self.spec).await?,
        };
        let result = instance.invoke(payload, self.spec.timeout).await;
        if let Some(kib) = instance.peak_rss_kib() {
            self.peak_rss_kib.fetch_max(kib, Ordering::Relaxed);
        }
        match &result {
            // A handled error leaves the environment as it was.
            Ok(_) | Err(InvokeError::Failed(_)) => self.idle.lock().await.push(instance),
            Err(error) => {
                if matches!(error, InvokeError::Timeout(_)) {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(function = %self.spec.name, %error, "execution environment ended");
                instance.kill().await;
            }
        }
        result
    }
}

/// One cold start, timed (for the benchmarks; nothing else starts
/// execution environments outside [`LocalFunction::invoke`]).
#[derive(Debug)]
pub struct ColdStart {
    /// From just before the process is spawned to its first
    /// `GET /runtime/invocation/next`: Lambda's init phase.
    pub init: Duration,
    /// The first invocation, from handing it over to its response.
    pub first_invoke: Option<Duration>,
    pub response: Option<Vec<u8>>,
    /// Peak resident set (`VmHWM`, KiB) when it ended.
    pub peak_rss_kib: Option<u64>,
}

/// Starts a new execution environment of `spec`, apart from any function's
/// pool, times its init, invokes it once with `payload` if given, and ends
/// it.
pub async fn cold_start(
    spec: &FunctionSpec,
    payload: Option<Vec<u8>>,
) -> Result<ColdStart, InvokeError> {
    let mut instance = Instance::start(spec).await?;
    let result = async {
        let init = instance.ready().await?;
        let (first_invoke, response) = match payload {
            Some(payload) => {
                let started = Instant::now();
                let response = instance.invoke(payload, spec.timeout).await?;
                (Some(started.elapsed()), Some(response))
            }
            None => (None, None),
        };
        Ok(ColdStart {
            init,
            first_invoke,
            response,
            peak_rss_kib: instance.peak_rss_kib(),
        })
    }
    .await;
    instance.kill().await;
    result
}

/// What the Runtime API tells the invoker.
enum Event {
    /// The runtime asked for its next invocation (when it asked).
    Polled(Instant),
    Started,
    Response(Bytes),
    Error(Bytes),
    InitError(Bytes),
}

struct Invocation {
    request_id: String,
    payload: Vec<u8>,
    timeout: Duration,
}

#[derive(Clone)]
struct Api {
    function_arn: String,
    next: Arc<Mutex<mpsc::Receiver<Invocation>>>,
    events: mpsc::UnboundedSender<(String, Event)>,
}

struct Instance {
    child: tokio::process::Child,
    invocations: mpsc::Sender<Invocation>,
    events: mpsc::UnboundedReceiver<(String, Event)>,
    server: JoinHandle<()>,
    initialised: bool,
    /// Just before the process was spawned.
    spawned: Instant,
}

impl Instance {
    async fn start(spec: &FunctionSpec) -> Result<Self, InvokeError> {
        let spawn_error = |source| InvokeError::Spawn {
            binary: spec.binary.display().to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(spawn_error)?;
        let address: SocketAddr = listener.local_addr().map_err(spawn_error)?;
        let (invocations, next) = mpsc::channel(1);
        let (events_tx, events) = mpsc::unbounded_channel();
        let api = Api {
            function_arn: format!(
                "arn:aws:lambda:{}:123456789012:function:{}",
                spec.env
                    .get("AWS_REGION")
                    .map(String::as_str)
                    .unwrap_or("us-east-1"),
                spec.name
            ),
            next: Arc::new(Mutex::new(next)),
            events: events_tx,
        };
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api);
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "local Runtime API stopped");
            }
        });
        let spawned = Instant::now();
        let child = tokio::process::Command::new(&spec.binary)
            .env_clear()
            .envs(&spec.env)
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                return Err(spawn_error(e));
            }
        };
        Ok(Self {
            child,
            invocations,
            events,
            server,
            initialised: false,
            spawned,
        })
    }

    /// Waits for the runtime's first `next`: its init time.
    async fn ready(&mut self) -> Result<Duration, InvokeError> {
        let limit = tokio::time::sleep(INIT_LIMIT);
        tokio::pin!(limit);
        loop {
            tokio::select! {
                event = self.events.recv() => match event {
                    Some((_, Event::Polled(at))) => return Ok(at - self.spawned),
                    Some((_, Event::InitError(body))) => {
                        return Err(InvokeError::Init(String::from_utf8_lossy(&body).into_owned()));
                    }
                    Some(_) => {}
                    None => return Err(InvokeError::Exited("its Runtime API is gone".into())),
                },
                status = self.child.wait() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    return Err(InvokeError::Exited(status));
                }
                () = &mut limit => {
                    return Err(InvokeError::Init(format!("no invocation was asked for within {INIT_LIMIT:?}")));
                }
            }
        }
    }

    /// `VmHWM` of the process, from `/proc` (Linux only).
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
    }

    async fn invoke(
        &mut self,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, InvokeError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload,
            timeout,
        };
        if self.invocations.send(invocation).await.is_err() {
            return Err(InvokeError::Exited("its Runtime API is gone".into()));
        }
        // Until the runtime takes the invocation, it is initialising (cold)
        // or finishing the previous one's bookkeeping (warm).
        let start_limit = if self.initialised {
            timeout
        } else {
            INIT_LIMIT
        };
        let limit = tokio::time::sleep(start_limit);
        tokio::pin!(limit);
        let mut running = false;
        loop {
            tokio::select! {
                event = self.events.recv() => {
                    let Some((id, event)) = event else {
                        return Err(InvokeError::Exited("its Runtime API is gone".into()));
                    };
                    match event {
                        Event::InitError(body) => {
                            return Err(InvokeError::Init(String::from_utf8_lossy(&body).into_owned()));
                        }
                        // A poll, or a late answer of an earlier invocation.
                        Event::Polled(_) => {}
                        _ if id != request_id => {}
                        Event::Started => {
                            self.initialised = true;
                            running = true;
                            limit.as_mut().reset(tokio::time::Instant::now() + timeout);
                        }
                        Event::Response(body) => return Ok(body.to_vec()),
                        Event::Error(body) => {
                            return Err(InvokeError::Failed(String::from_utf8_lossy(&body).into_owned()));
                        }
                    }
                }
                status = self.child.wait() => {
                    let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                    return Err(InvokeError::Exited(status));
                }
                () = &mut limit => {
                    return Err(if running {
                        InvokeError::Timeout(timeout)
                    } else {
                        InvokeError::Init(format!("no invocation was taken within {start_limit:?}"))
                    });
                }
            }
        }
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
        self.server.abort();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

async fn next_invocation(State(api): State<Api>) -> Response {
    let _ = api
        .events
        .send((String::new(), Event::Polled(Instant::now())));
    let invocation = api.next.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return StatusCode::GONE.into_response();
    };
    let deadline = now_ms() + invocation.timeout.as_millis();
    let _ = api
        .events
        .send((invocation.request_id.clone(), Event::Started));
    let mut headers = HeaderMap::new();
    let mut header = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    header("lambda-runtime-aws-request-id", invocation.request_id);
    header("lambda-runtime-deadline-ms", deadline.to_string());
    header(
        "lambda-runtime-invoked-function-arn",
        api.function_arn.clone(),
    );
    header(
        "lambda-runtime-trace-id",
        format!("Root=1-{:08x}-{}", now_ms() / 1000, "0".repeat(24)),
    );
    header("content-type", "application/json".into());
    (StatusCode::OK, headers, invocation.payload).into_response()
}

async fn invocation_response(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let _ = api.events.send((id, Event::Response(body)));
    StatusCode::ACCEPTED
}

async fn invocation_error(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let _ = api.events.send((id, Event::Error(body)));
    StatusCode::ACCEPTED
}

async fn init_error(State(api): State<Api>, body: Bytes) -> StatusCode {
    let _ = api.events.send((String::new(), Event::InitError(body)));
    StatusCode::ACCEPTED
}
