//! One TLS configuration for every outbound connection of a process: the
//! AWS SDK's clients (and the credentials chain's) and the reqwest client
//! (CRMs, Graph API) share one trust store and one rustls configuration,
//! built once.
//!
//! Why: left to themselves, reqwest (through `rustls-platform-verifier`) and
//! the SDK's default HTTP client each read and parse the system's roots, and
//! the SDK builds a fresh rustls configuration (a root store parsed anew)
//! for every SDK client it validates and every connector it makes, the
//! credentials chain's STS client included. That was most of a function's
//! init time (the benchmarks, `infra/local/bench.sh`). Here every client
//! gets the same configuration, and the roots are read once, at the
//! process's first handshake.
//!
//! The roots are the system's, as rustls-native-certs finds them
//! (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured, as the default clients
//! did). The crypto is ring's: a fraction of AWS-LC's size in the binaries
//! (the zipped-size goal), and no CPU-jitter entropy at the first draw.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The process's TLS client configuration, made on first use. Cheap: the
/// roots are read at the first handshake ([`SystemRoots`]).
pub fn client_config() -> Result<Arc<rustls::ClientConfig>, TlsError> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    if let Some(config) = CONFIG.get() {
        return Ok(config.clone());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        // Not a weaker check: rustls' WebPKI verifier does every
        // verification, on roots read when first needed.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SystemRoots::new(provider)))
        .with_no_client_auth();
    // Two first uses at once both build one; either serves.
    Ok(CONFIG.get_or_init(|| Arc::new(config)).clone())
}

/// Verifies servers against the system's roots with rustls' WebPKI
/// verifier, the roots read and parsed at the first handshake: a process
/// pays for them once, and only if it makes a TLS call, never in its init.
#[derive(Debug)]
struct SystemRoots {
    provider: Arc<CryptoProvider>,
    /// The verifier, or why the roots could not be had (kept: the system's
    /// roots do not appear during a process's life).
    webpki: OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
}

impl SystemRoots {
    fn new(provider: Arc<CryptoProvider>) -> Self {
        Self {
            provider,
            webpki: OnceLock::new(),
        }
    }

    fn webpki(&self) -> Result<&Arc<WebPkiServerVerifier>, rustls::Error> {
        self.webpki
            .get_or_init(|| self.load())
            .as_ref()
            .map_err(|e| rustls::Error::General(e.clone()))
    }

    fn load(&self) -> Result<Arc<WebPkiServerVerifier>, String> {
        let loaded = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
        if ignored > 0 || !loaded.errors.is_empty() {
            tracing::warn!(
                added,
                ignored,
                errors = loaded.errors.len(),
                "some system root certificates were not loaded"
            );
        }
        if added == 0 {
            let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
            return Err(format!(
                "no trusted root certificate could be loaded ({})",
                errors.join("; ")
            ));
        }
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
            .build()
            .map_err(|e| e.to_string())
    }
}

impl ServerCertVerifier for SystemRoots {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.webpki()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The AWS SDK's HTTP client on [`client_config`]: hyper over rustls, one
/// connection pool per pair of time-outs the SDK asks for (as the SDK's own
/// client keeps them).
#[derive(Debug, Clone)]
pub struct SdkHttpClient {
    config: Arc<rustls::ClientConfig>,
    connectors: Arc<Mutex<HashMap<TimeoutKey, SharedHttpConnector>>>,
}

type TimeoutKey = (Option<Duration>, Option<Duration>);

impl SdkHttpClient {
    pub fn new() -> Result<Self, TlsError> {
        Ok(Self::with_config(client_config()?))
    }

    fn with_config(config: Arc<rustls::ClientConfig>) -> Self {
        Self {
            config,
            connectors: Arc::default(),
        }
    }
}

impl HttpClient for SdkHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.connector((settings.connect_timeout(), settings.read_timeout()))
    }
}

impl SdkHttpClient {
    fn connector(&self, key: TimeoutKey) -> SharedHttpConnector {
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        connectors
            .entry(key)
            .or_insert_with(|| SharedHttpConnector::new(Connector::new(&self.config, key)))
            .clone()
    }
}

#[derive(Debug)]
struct Connector {
    client: Client<hyper_rustls::HttpsConnector<TcpConnector>, SdkBody>,
    /// How long the first byte of an answer may take (the SDK's read
    /// time-out).
    read_timeout: Option<Duration>,
}

impl Connector {
    fn new(config: &Arc<rustls::ClientConfig>, (connect, read): TimeoutKey) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect);
        // A clone shares the trust store and the verifier (both behind
        // `Arc`s); hyper-rustls only sets its ALPN on it.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(rustls::ClientConfig::clone(config))
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .build(https);
        Self {
            client,
            read_timeout: read,
        }
    }
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(e) => return HttpConnectorFuture::ready(Err(ConnectorError::user(e.into()))),
        };
        let answer = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let answer = match read_timeout {
                Some(limit) => tokio::time::timeout(limit, answer).await.map_err(|_| {
                    ConnectorError::timeout(format!("no answer within {limit:?}").into())
                })?,
                None => answer.await,
            }
            .map_err(connector_error)?;
            HttpResponse::try_from(answer.map(SdkBody::from_body_1_x))
                .map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// What the SDK's retry policy needs to know: a connection that failed or
/// broke is transient (retried), anything else is not.
fn connector_error(e: hyper_util::client::legacy::Error) -> ConnectorError {
    let transient = e.is_connect()
        || std::error::Error::source(&e)
            .and_then(|s| s.downcast_ref::<hyper::Error>())
            .is_some_and(|h| h.is_closed() || h.is_canceled() || h.is_incomplete_message());
    if transient {
        ConnectorError::io(e.into())
    } else {
        ConnectorError::other(e.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn every_client_gets_the_same_configuration() {
        let first = client_config().expect("the system's roots");
        let second = client_config().expect("the system's roots");
        assert!(Arc::ptr_eq(&first, &second), "built once");
    }

    /// A certificate for `localhost` from a CA made for the test, and a
    /// client configuration that trusts that CA alone.
    fn test_pki() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::new()).expect("CA parameters");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("parameters")
            .signed_by(&key, &ca)
            .expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .expect("server configuration");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("the CA");
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Answers every connection's first request with `204` (over TLS when
    /// given a configuration), or never answers.
    async fn server(tls: Option<Arc<rustls::ServerConfig>>, answer: bool) -> u16 {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("port");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let tls = tls.clone();
                tokio::spawn(async move {
                    let mut stream: Box<dyn Stream> = match tls {
                        Some(config) => {
                            match tokio_rustls::TlsAcceptor::from(config).accept(socket).await {
                                Ok(stream) => Box::new(stream),
                                Err(_) => return,
                            }
                        }
                        None => Box::new(socket),
                    };
                    let mut request = [0u8; 4096];
                    let _ = stream.read(&mut request).await;
                    if answer {
                        let _ = stream
                            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                            .await;
                        let _ = stream.flush().await;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        port
    }

    trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
    impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}

    async fn get(
        client: &SdkHttpClient,
        url: &str,
        read_timeout: Duration,
    ) -> Result<u16, ConnectorError> {
        let connector = client.connector((Some(Duration::from_secs(2)), Some(read_timeout)));
        let request = HttpRequest::try_from(
            http::Request::get(url)
                .body(SdkBody::empty())
                .expect("request"),
        )
        .expect("an SDK request");
        Ok(connector.call(request).await?.status().as_u16())
    }

    /// A GET to a TLS server holding `server_config`'s certificate.
    async fn tls_get(
        client: &SdkHttpClient,
        server_config: Arc<rustls::ServerConfig>,
    ) -> Result<u16, ConnectorError> {
        let port = server(Some(server_config), true).await;
        let url = format!("https://localhost:{port}/");
        get(client, &url, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn the_sdk_client_speaks_tls_with_the_shared_configuration() {
        let (server_config, client_config) = test_pki();
        let client = SdkHttpClient::with_config(client_config);
        let status = tls_get(&client, server_config).await;
        assert_eq!(status.expect("an answer over TLS"), 204);
    }

    #[tokio::test]
    async fn a_server_the_roots_do_not_vouch_for_is_refused() {
        let (server_config, _) = test_pki();
        let (_, other_roots) = test_pki();
        let client = SdkHttpClient::with_config(other_roots);
        let refused = tls_get(&client, server_config).await;
        assert!(refused.is_err(), "{refused:?}");
    }

    #[tokio::test]
    async fn the_system_roots_do_not_vouch_for_a_test_ca() {
        let (server_config, _) = test_pki();
        let client = SdkHttpClient::new().expect("the shared configuration");
        let refused = tls_get(&client, server_config).await;
        assert!(refused.is_err(), "{refused:?}");
    }

    #[tokio::test]
    async fn an_answer_later_than_the_read_timeout_is_a_timeout() {
        let (_, client_config) = test_pki();
        let port = server(None, false).await;
        let client = SdkHttpClient::with_config(client_config);
        let late = get(
            &client,
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_millis(200),
        )
        .await;
        assert!(
            late.as_ref().is_err_and(ConnectorError::is_timeout),
            "{late:?}"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient() {
        let (_, client_config) = test_pki();
        let closed = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("port");
        let port = closed.local_addr().expect("address").port();
        drop(closed);
        let client = SdkHttpClient::with_config(client_config);
        let refused = get(
            &client,
            &format!("http://127.0.0.1:{port}/"),
            Duration::from_secs(1),
        )
        .await;
        assert!(
            refused.as_ref().is_err_and(ConnectorError::is_io),
            "{refused:?}"
        );
    }
}
