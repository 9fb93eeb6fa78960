//! What the local API sandboxes (Zoho CRM, Pipedrive, Graph API) share:
//! serving an axum router on a loopback port in the background until told
//! to stop, the setup of their command-line binaries, random fault
//! injection ([`faults`]), recorded contract violations ([`contract`]), and
//! the vendor-independent checks of their tests ([`testing`]).

pub mod contract;
pub mod faults;
pub mod testing;

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A loopback port bound before the server's state exists, so the state
/// can know its own base URL (sandboxes hand out URLs pointing at themselves).
pub struct Bound {
    listener: TcpListener,
    pub addr: SocketAddr,
    /// `http://127.0.0.1:<port>`
    pub base_url: String,
}

impl Bound {
    /// Binds 127.0.0.1:`port` (0: any free port).
    pub async fn loopback(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            addr,
            base_url: format!("http://{addr}"),
        })
    }

    /// Serves `app` in the background; `name` labels its error log.
    pub fn serve(self, app: axum::Router, name: &'static str) -> Served {
        let (stop, mut stopped) = watch::channel(false);
        let listener = self.listener;
        let task = tokio::spawn(async move {
            let shutdown = async move {
                while !*stopped.borrow() {
                    if stopped.changed().await.is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
            {
                tracing::error!(sandbox = name, error = %e, "sandbox server stopped");
            }
        });
        Served {
            addr: self.addr,
            base_url: self.base_url,
            stop: Arc::new(stop),
            task: Arc::new(Mutex::new(Some(task))),
        }
    }
}

/// A running server (cheap to clone: clones share it).
#[derive(Clone)]
pub struct Served {
    pub addr: SocketAddr,
    pub base_url: String,
    stop: Arc<watch::Sender<bool>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Served {
    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// A sandbox binary's life: logs to stderr, parse the arguments (a usage
/// error exits 2), start, print `<name> listening on <url>` (scripts wait
/// for that exact line), serve until SIGTERM or ctrl-c, stop.
pub async fn run_binary<C, S, E, Fut>(
    name: &str,
    parse: impl FnOnce(&[String]) -> Result<C, String>,
    start: impl FnOnce(C) -> Fut,
    base_url: impl Fn(&S) -> String,
    shutdown: impl AsyncFnOnce(S),
) -> ExitCode
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<S, E>>,
{
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let server = match start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{name} listening on {}", base_url(&server));
    let _ = out.flush();
    wait_for_signal().await;
    shutdown(server).await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
