//! TLS on gridd's listener, with rustls: the certificate and key come from files and are read
//! again when they change (connections made after that get the new certificate); client
//! certificates are checked against a CA when one is configured, and the access layer
//! requires them of the roles that must present one (the platform feed, by default).

use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::auth::Role;

/// Where the listener's certificate, key and client CA are.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// PEM certificate chain, leaf first (`GRIDD_TLS_CERT_FILE`).
    pub cert_file: PathBuf,
    /// PEM private key (`GRIDD_TLS_KEY_FILE`).
    pub key_file: PathBuf,
    /// PEM CA that client certificates must chain to (`GRIDD_TLS_CLIENT_CA_FILE`); without it
    /// no client certificate is asked for.
    pub client_ca_file: Option<PathBuf>,
    /// Roles whose calls must come with a client certificate (`GRIDD_TLS_CLIENT_CERT_ROLES`).
    pub client_cert_roles: Vec<Role>,
    /// How often the files are checked for a change (`GRIDD_TLS_RELOAD_SECS`).
    pub reload_every: Duration,
}

/// The certificate in use, swapped when its files change.
#[derive(Debug)]
struct Reloading {
    cert_file: PathBuf,
    key_file: PathBuf,
    stamps: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
    current: RwLock<Arc<CertifiedKey>>,
}

fn stamp(p: &PathBuf) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn certified(cert_file: &PathBuf, key_file: &PathBuf) -> Result<CertifiedKey, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("{}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|e| format!("the key does not match the certificate: {e}"))?;
    Ok(ck)
}

impl Reloading {
    fn load(cert_file: PathBuf, key_file: PathBuf) -> Result<Reloading, String> {
        let stamps = (stamp(&cert_file), stamp(&key_file));
        let current = certified(&cert_file, &key_file)?;
        Ok(Reloading {
            cert_file,
            key_file,
            stamps: Mutex::new(stamps),
            current: RwLock::new(Arc::new(current)),
        })
    }

    fn reload_if_changed(&self) -> Result<bool, String> {
        let now = (stamp(&self.cert_file), stamp(&self.key_file));
        let mut seen = self.stamps.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == now {
            return Ok(false);
        }
        // a half-written pair fails here and is tried again on the next round
        let ck = certified(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ck);
        *seen = now;
        Ok(true)
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The listener's TLS: an acceptor over a certificate that follows its files.
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<Reloading>,
    pub options: TlsOptions,
}

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Tls {
    pub fn load(options: TlsOptions) -> Result<Arc<Tls>, String> {
        let certs = Arc::new(Reloading::load(
            options.cert_file.clone(),
            options.key_file.clone(),
        )?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match &options.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("{}: {e}", ca.display()))?
                {
                    roots
                        .add(c.map_err(|e| format!("{}: {e}", ca.display()))?)
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                }
                // a certificate is checked when presented; whether one is needed is the
                // access layer's call, per role
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| format!("{}: {e}", ca.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certs.clone());
        // gRPC over h2; the Open311 facade's clients may speak HTTP/1.1
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
            options,
        }))
    }

    /// Reads the certificate and key again if their files changed.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        self.certs.reload_if_changed()
    }

    /// Checks the files every `reload_every` until `shutdown`.
    pub fn spawn_reloading(self: &Arc<Self>, shutdown: CancellationToken) {
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(tls.options.reload_every) => {}
                }
                match tls.reload_if_changed() {
                    Ok(true) => tracing::info!("TLS certificate reloaded"),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "TLS certificate not reloaded; the one in use stays");
                    }
                }
            }
        });
    }

    /// The TLS connections of `tcp`: each handshake runs on its own task, so a slow client
    /// holds up nobody else; one that fails or takes too long is dropped.
    pub fn incoming<S>(
        self: &Arc<Self>,
        tcp: S,
        shutdown: CancellationToken,
    ) -> tokio_stream::wrappers::ReceiverStream<io::Result<TlsStream<TcpStream>>>
    where
        S: futures::Stream<Item = io::Result<TcpStream>> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            let mut tcp = std::pin::pin!(tcp);
            loop {
                let conn = tokio::select! {
                    () = shutdown.cancelled() => return,
                    c = tcp.next() => c,
                };
                let Some(conn) = conn else { return };
                let stream = match conn {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send(Ok(tls)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        });
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }
}
