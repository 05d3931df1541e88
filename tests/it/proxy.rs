//! A fault-injecting proxy between the plugin and the test API server, for the fault runs.
//!
//! It terminates TLS with the API server's own serving certificate (so the plugin's kubeconfig
//! only changes its server URL), and forwards every HTTP/1.1 request over its own TLS
//! connection to the API server, as the cluster's admin. Between the two it can:
//!
//! - be *down*: every connection is closed at once, new ones too (the API server stopped);
//! - *drop* every open connection once (watches and requests in flight are cut);
//! - answer the next requests with given statuses (429, 500, 503) without forwarding them;
//! - *lie*: forward the next writes, then answer 500 instead of the server's answer (a write
//!   that landed but whose answer was lost);
//! - *hold* the requests of a method whose path contains a given text (dry runs excepted): they
//!   get no answer until the test releases them, then they are forwarded (an API server that
//!   stops answering some requests after the credential check, or a request in flight while
//!   the test changes the cluster);
//!
//! and it logs every request (method, path, status, forwarded or not), so that tests can count
//! the writes that reached the server.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub status: u16,
    /// Whether it reached the API server.
    pub forwarded: bool,
}

impl Logged {
    /// A write the API server carried out (not a dry run).
    pub fn is_real_write(&self) -> bool {
        self.forwarded
            && matches!(self.method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE")
            && !self.path.contains("dryRun=")
            && !self.path.contains("selfsubjectaccessreviews")
    }
}

/// Requests held back: their methods, a text their path contains, and whether they may go on.
struct HoldRule {
    methods: String,
    path_part: String,
    /// How many matching requests arrived so far.
    held: usize,
    release: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct State {
    down: bool,
    /// Connections closed because the server was down.
    refused: usize,
    fail: VecDeque<u16>,
    lie: usize,
    holds: Vec<HoldRule>,
    log: Vec<Logged>,
}

/// Requests held by [`Proxy::hold`].
pub struct Hold {
    state: Arc<Mutex<State>>,
    index: usize,
}

impl Hold {
    /// How many matching requests arrived so far (held, or forwarded after the release).
    pub fn held(&self) -> usize {
        self.state.lock().unwrap().holds[self.index].held
    }

    /// Waits (at most `timeout`) until a matching request arrives; panics otherwise.
    pub fn wait_for_one(&self, timeout: std::time::Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.held() == 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "no request matched the hold within {timeout:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Forwards the held requests and every later matching one.
    pub fn release(&self) {
        let _ = self.state.lock().unwrap().holds[self.index]
            .release
            .send(true);
    }
}

/// The running proxy (it stops with the test process).
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    kill: broadcast::Sender<()>,
}

fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap_or_else(|e| panic!("read {}: {e:?}", path.display()))
        .map(|c| c.unwrap())
        .collect()
}

fn load_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path).unwrap_or_else(|e| panic!("read {}: {e:?}", path.display()))
}

impl Proxy {
    /// Starts a proxy in front of the cluster whose kubeconfig is `kubeconfig` (its `pki/`
    /// directory sits next to it, as kcluster writes it).
    pub fn start(kubeconfig: &Path) -> Proxy {
        let dir = kubeconfig.parent().unwrap().to_path_buf();
        let kc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
        let server = kc["clusters"][0]["cluster"]["server"]
            .as_str()
            .unwrap()
            .to_string();
        let upstream: SocketAddr = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .parse()
            .expect("the test cluster listens on an IP address");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                load_certs(&dir.join("pki/serving.crt")),
                load_key(&dir.join("pki/serving.key")),
            )
            .unwrap();
        let mut server_config = server_config;
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(&dir.join("pki/ca.crt")) {
            roots.add(c).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(
                load_certs(&dir.join("pki/admin.crt")),
                load_key(&dir.join("pki/admin.key")),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (kill, _) = broadcast::channel(16);
        let proxy = Proxy {
            addr,
            state: state.clone(),
            kill: kill.clone(),
        };
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    {
                        let mut s = state.lock().unwrap();
                        if s.down {
                            s.refused += 1;
                            drop(tcp);
                            continue;
                        }
                    }
                    let (acceptor, connector, state) =
                        (acceptor.clone(), connector.clone(), state.clone());
                    let mut killed = kill.subscribe();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve(tcp, acceptor, connector, upstream, state) => {}
                            _ = killed.recv() => {}
                        }
                    });
                }
            });
        });
        proxy
    }

    /// A copy of `kubeconfig` that points at the proxy, written into `dir`.
    pub fn kubeconfig(&self, kubeconfig: &Path, dir: &Path) -> PathBuf {
        let mut kc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(kubeconfig).unwrap()).unwrap();
        for c in kc["clusters"].as_sequence_mut().unwrap() {
            c["cluster"]["server"] = format!("https://{}", self.addr).into();
        }
        let path = dir.join("proxied.kubeconfig");
        std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
        path
    }

    /// The API server goes away (every connection closed, new ones refused) or comes back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
        if down {
            self.drop_connections();
        }
    }

    /// Cuts every open connection once (watches included).
    pub fn drop_connections(&self) {
        let _ = self.kill.send(());
    }

    /// Answers the next requests (watches excepted) with these statuses, without forwarding.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().fail.extend(statuses);
    }

    /// Forwards the next `n` writes, then answers 500 instead of the server's answer.
    pub fn lie_about_next_writes(&self, n: usize) {
        self.state.lock().unwrap().lie = n;
    }

    /// Holds every request of `methods` (`POST`, or `POST|PATCH`) whose path contains
    /// `path_part` (dry runs and watches excepted) without answering, until [`Hold::release`].
    pub fn hold(&self, methods: &str, path_part: &str) -> Hold {
        let mut s = self.state.lock().unwrap();
        s.holds.push(HoldRule {
            methods: methods.to_string(),
            path_part: path_part.to_string(),
            held: 0,
            release: tokio::sync::watch::channel(false).0,
        });
        Hold {
            state: self.state.clone(),
            index: s.holds.len() - 1,
        }
    }

    /// How many connections were refused while down.
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn text(status: u16, message: &str) -> Response<Body> {
    let status_doc = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": if status == 429 { "TooManyRequests" } else { "InternalError" },
        "code": status,
    });
    let mut r = Response::new(
        Full::new(Bytes::from(status_doc.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if status == 429 {
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
    }
    r
}

async fn serve(
    tcp: tokio::net::TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) {
    let Ok(tls) = acceptor.accept(tcp).await else {
        return;
    };
    let Ok(up_tcp) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let name = ServerName::IpAddress(upstream.ip().into());
    let Ok(up_tls) = connector.connect(name, up_tcp).await else {
        return;
    };
    let Ok((sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(up_tls)).await
    else {
        return;
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (sender, state) = (sender.clone(), state.clone());
        async move {
            let method = req.method().to_string();
            let path = req
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let watch = path.contains("watch=true") || path.contains("watch=1");
            let write = matches!(method.as_str(), "POST" | "PATCH" | "PUT" | "DELETE")
                && !path.contains("selfsubjectaccessreviews");
            let injected = {
                let mut s = state.lock().unwrap();
                if watch { None } else { s.fail.pop_front() }
            };
            if let Some(status) = injected {
                state.lock().unwrap().log.push(Logged {
                    method,
                    path,
                    status,
                    forwarded: false,
                });
                return Ok::<_, hyper::Error>(text(status, "injected by the test proxy"));
            }
            let held = {
                let mut s = state.lock().unwrap();
                let rule = s.holds.iter_mut().find(|h| {
                    h.methods.split('|').any(|m| m == method)
                        && path.contains(&h.path_part)
                        && !watch
                        && !path.contains("dryRun=")
                });
                rule.map(|h| {
                    h.held += 1;
                    h.release.subscribe()
                })
            };
            if let Some(mut released) = held {
                // No answer until the test releases it (a dropped sender holds it for good).
                if released.wait_for(|go| *go).await.is_err() {
                    futures::future::pending::<()>().await;
                }
            }
            let lie = {
                let mut s = state.lock().unwrap();
                let lie = write && !path.contains("dryRun=") && s.lie > 0;
                if lie {
                    s.lie -= 1;
                }
                lie
            };
            let response = {
                let mut sender = sender.lock().await;
                match sender.ready().await {
                    Ok(()) => sender.send_request(req).await,
                    Err(e) => Err(e),
                }
            };
            let response = match response {
                Ok(r) => r,
                Err(e) => {
                    state.lock().unwrap().log.push(Logged {
                        method,
                        path,
                        status: 502,
                        forwarded: true,
                    });
                    return Ok(text(502, &format!("upstream: {e}")));
                }
            };
            let status = response.status().as_u16();
            state.lock().unwrap().log.push(Logged {
                method,
                path,
                status,
                forwarded: true,
            });
            if lie {
                return Ok(text(
                    500,
                    "the answer was lost (injected by the test proxy)",
                ));
            }
            Ok(response.map(|b| b.boxed()))
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}
