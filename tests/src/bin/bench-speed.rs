//! The speed and memory figures of `infra/local/bench.sh`, printed as table
//! rows (`| figure | value | how |`) on stdout; logs go to stderr.
//!
//! Runs against the local stack with the binaries in `LOCAL_STACK_BIN_DIR`
//! (the script builds them with the release profile): the five functions,
//! and `bench`'s `hello` and `hello-sdk`.
//!
//! - Init: each binary started `BENCH_INIT_ROUNDS` times (default 21),
//!   interleaved, with the environment the local stack gives the webhook
//!   function (the others get their own); the median of process start → its
//!   first `GET /runtime/invocation/next`.
//! - First TLS call: a cold start whose first invocation makes one HTTPS
//!   call, through a TLS proxy in front of moto with a test CA (added to the
//!   system's roots through `SSL_CERT_FILE`, the system's directory kept
//!   through `SSL_CERT_DIR`, so the trust store costs what it does without
//!   them): the webhook answering Meta's verification handshake (it reads
//!   its secret from Secrets Manager), and `hello-sdk` reading the same
//!   secret with the SDK and making one GET with the HTTP client.
//! - Peak RSS: each function's `VmHWM` after a 10-message delivery with a
//!   5 MB photo has gone through the stack into a Zoho sandbox note.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use e2e::{PHONE_NUMBER_ID, TestSystem};
use graph_sandbox::SeedMedia;
use local_stack::lambda::{ColdStart, FunctionSpec, cold_start};
use serde_json::{Value, json};

const ALICE: &str = "447700900123";
const PHOTO_ID: &str = "1290000000000001";
const PHOTO_BYTES: u64 = 5 * 1024 * 1024;

fn row(figure: &str, value: String, how: &str) {
    println!("| {figure} | {value} | {how} |");
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let bin_dir =
        PathBuf::from(std::env::var_os("LOCAL_STACK_BIN_DIR").expect(
            "LOCAL_STACK_BIN_DIR names the release binaries (infra/local/bench.sh sets it)",
        ));
    let rounds: usize = std::env::var("BENCH_INIT_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let (system, workspace) = TestSystem::with_connected_workspace().await;

    // Each function's own spec, by binary name; the hello-worlds get the
    // webhook's environment (AWS region and credentials included).
    let mut specs: BTreeMap<String, FunctionSpec> = system
        .local
        .functions
        .values()
        .map(|f| (binary_name(f.spec()), f.spec().clone()))
        .collect();
    let webhook = specs["webhook"].clone();
    for hello in ["hello", "hello-sdk"] {
        specs.insert(
            hello.into(),
            FunctionSpec {
                name: format!("bench-{hello}"),
                binary: bin_dir.join(hello),
                ..webhook.clone()
            },
        );
    }

    init_times(&specs, rounds).await;
    first_tls_calls(&system, &specs, rounds.min(11)).await;
    peak_rss(&system, &workspace).await;
}

fn binary_name(spec: &FunctionSpec) -> String {
    spec.binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn init_times(specs: &BTreeMap<String, FunctionSpec>, rounds: usize) {
    let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for _ in 0..rounds {
        for (name, spec) in specs {
            let started = cold_start(spec, None)
                .await
                .unwrap_or_else(|e| panic!("{name} starts: {e}"));
            times.entry(name).or_default().push(started.init);
        }
    }
    let medians: BTreeMap<&str, Duration> = times
        .iter()
        .map(|(name, t)| (*name, median(t.clone())))
        .collect();
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let (hello, hello_sdk) = (medians["hello"], medians["hello-sdk"]);
    let how = format!("median of {rounds} interleaved starts, process start → first /next");
    row("init: hello (lambda_runtime only)", ms(hello), &how);
    row(
        "init: hello + SDK clients",
        format!("{} ({:.2}× hello)", ms(hello_sdk), ratio(hello_sdk, hello)),
        &how,
    );
    for (name, median) in &medians {
        if name.starts_with("hello") {
            continue;
        }
        row(
            &format!("init: {name}"),
            format!(
                "{} ({:.2}× hello, {:.2}× hello + SDK)",
                ms(*median),
                ratio(*median, hello),
                ratio(*median, hello_sdk)
            ),
            &how,
        );
    }
}

async fn first_tls_calls(
    system: &TestSystem,
    specs: &BTreeMap<String, FunctionSpec>,
    rounds: usize,
) {
    let secrets_url = std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").expect("the local stack");
    let moto: SocketAddr = url::Url::parse(&secrets_url)
        .ok()
        .and_then(|u| u.socket_addrs(|| None).ok())
        .and_then(|a| a.into_iter().next())
        .expect("moto's address");
    let proxy = TlsProxy::start(moto).await;
    let https = format!("https://127.0.0.1:{}", proxy.port);
    let tls_env = |spec: &FunctionSpec| {
        let mut spec = spec.clone();
        spec.env
            .insert("AWS_ENDPOINT_URL_SECRETS_MANAGER".into(), https.clone());
        spec.env
            .insert("SSL_CERT_FILE".into(), proxy.bundle.display().to_string());
        if std::path::Path::new(SYSTEM_CERT_DIR).is_dir() {
            spec.env
                .insert("SSL_CERT_DIR".into(), SYSTEM_CERT_DIR.into());
        }
        spec
    };
    let meta_secret = system.local.stack.secret_ids["MetaAppSecret"].clone();
    let handshake = local_stack::runner::http_event(
        &http::Request::get(format!(
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
            e2e::META_VERIFY_TOKEN
        ))
        .header("host", "localhost")
        .body(())
        .expect("a request")
        .into_parts()
        .0,
        b"",
        "GET /webhooks/whatsapp",
        &BTreeMap::new(),
    );
    let cases = [
        (
            "webhook",
            handshake,
            "Meta's verification handshake; one Secrets Manager read (AWS SDK)",
        ),
        (
            "hello-sdk",
            json!({ "secret": meta_secret }),
            "one Secrets Manager read (AWS SDK)",
        ),
        (
            "hello-sdk",
            json!({ "get": format!("{https}/") }),
            "one GET (reqwest)",
        ),
    ];
    for (name, payload, what) in cases {
        let spec = tls_env(&specs[name]);
        let mut invokes = Vec::new();
        let mut inits = Vec::new();
        for _ in 0..rounds {
            let ColdStart {
                init,
                first_invoke,
                response,
                ..
            } = cold_start(&spec, Some(payload.to_string().into_bytes()))
                .await
                .unwrap_or_else(|e| panic!("{name}'s first TLS call: {e}"));
            let response: Value = response
                .and_then(|r| serde_json::from_slice(&r).ok())
                .unwrap_or_default();
            assert!(
                response["statusCode"] == 200
                    || response["secret_length"].as_u64().is_some_and(|l| l > 0)
                    || response["status"].is_u64(),
                "{name} answered {response}"
            );
            inits.push(init);
            invokes.extend(first_invoke);
        }
        row(
            &format!("first invoke with one TLS call: {name}"),
            format!("{} (init {})", ms(median(invokes)), ms(median(inits))),
            &format!(
                "{what} to a local HTTPS proxy (test CA) in front of moto; median of {rounds} cold starts"
            ),
        );
    }
    drop(proxy);
}

const SYSTEM_CERT_DIR: &str = "/etc/ssl/certs";
const SYSTEM_CERT_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// TLS in front of a plain TCP service, with a certificate for `127.0.0.1`
/// from a CA made for the run; `bundle` holds the system's roots and that CA.
struct TlsProxy {
    port: u16,
    bundle: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl TlsProxy {
    async fn start(target: SocketAddr) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "bench test CA");
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("a CA key"))
            .expect("the CA");
        let key = KeyPair::generate().expect("a key");
        let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("parameters")
            .signed_by(&key, &ca)
            .expect("the server certificate");

        let dir = std::env::temp_dir().join(format!("bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let bundle = dir.join("roots.pem");
        let system = std::fs::read_to_string(SYSTEM_CERT_FILE).unwrap_or_default();
        std::fs::write(&bundle, format!("{system}\n{}", ca.pem())).expect("the bundle");

        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            tokio_rustls::rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("a server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a port");
        let port = listener.local_addr().expect("its address").port();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let (Ok(mut tls), Ok(mut upstream)) = (
                        acceptor.accept(socket).await,
                        tokio::net::TcpStream::connect(target).await,
                    ) else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        Self { port, bundle, task }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(dir) = self.bundle.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A 10-message delivery, one of them a 5 MB photo, through the whole
/// stack; then each function's peak resident set.
async fn peak_rss(system: &TestSystem, workspace: &e2e::TestWorkspace) {
    let _ = workspace;
    system
        .graph
        .seed_media(SeedMedia::generated(PHOTO_ID, "image/jpeg", PHOTO_BYTES));
    let mut messages: Vec<Value> = (0..9)
        .map(|i| {
            json!({
                "from": ALICE, "id": format!("wamid.bench-rss-{i}"),
                "timestamp": (1_767_261_600 + i).to_string(),
                "type": "text", "text": { "body": format!("bench line {i}") }
            })
        })
        .collect();
    messages.push(json!({
        "from": ALICE, "id": "wamid.bench-rss-photo",
        "timestamp": "1767261609", "type": "image",
        "image": { "caption": "bench photo", "mime_type": "image/jpeg", "id": PHOTO_ID }
    }));
    let body = e2e::delivery_to(
        PHONE_NUMBER_ID,
        e2e::BUSINESS_NUMBER,
        ALICE,
        "Alice Example",
        messages,
    );
    let answer = system.post_webhook(&body).await;
    assert_eq!(answer.status(), 200, "the delivery is taken");
    let photo_file = format!("image-{PHOTO_ID}.jpg");
    system
        .wait_for("every line, the photo attached", || {
            let lead = system
                .leads_with_mobile(&format!("+{ALICE}"))
                .into_iter()
                .next()?;
            let id = lead["id"].as_str()?.to_owned();
            system
                .notes_of("Leads", &id)
                .iter()
                .filter_map(|n| n["Note_Content"].as_str())
                .any(|c| c.contains("bench line 8") && c.contains(&photo_file))
                .then_some(())
        })
        .await;
    // A function's peak is read when one of its invocations returns, and
    // the note is in the CRM before note-append's returns (the ledger is
    // written after it): wait for every function to have returned once.
    system
        .wait_for("an invocation of every function to return", || {
            system
                .local
                .functions
                .values()
                .all(|function| function.peak_rss_kib().is_some())
                .then_some(())
        })
        .await;
    for function in system.local.functions.values() {
        let name = binary_name(function.spec());
        let how = match name.as_str() {
            "webhook" => "the delivery (10 messages)",
            "record-sync" => "the delivery's messages: one new chat's record",
            "note-append" => {
                "the delivery's messages: the day note, the 5 MB photo downloaded and attached"
            }
            _ => "making the workspace and connecting Zoho (OAuth)",
        };
        let value = match function.peak_rss_kib() {
            Some(kib) => format!("{:.1} MB", kib as f64 / 1024.0),
            None => "n/a".into(),
        };
        row(
            &format!("peak RSS: {name}"),
            value,
            &format!("VmHWM of its process after {how}, through the local stack"),
        );
    }
}
