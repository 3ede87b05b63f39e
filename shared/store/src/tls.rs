//! TLS between Taskyard and Postgres, with rustls.
//!
//! The URL's `sslmode` decides whether TLS is used; [`DbTls`] decides
//! whom to trust when it is:
//!
//! | `sslmode` | TLS | server certificate |
//! | --- | --- | --- |
//! | `disable` | never | not looked at |
//! | `prefer` (the default) | when the server offers it, else in the clear | verified when a CA file is given; otherwise accepted unverified, as libpq's `prefer` does |
//! | `require` | always; a server without TLS is refused | always verified, against the CA file or else the system's roots, host name included |
//!
//! So `require` here is libpq's `verify-full`, not libpq's `require`
//! (which encrypts but trusts any certificate). `prefer` without a CA file
//! does not verify because it cannot protect anything by verifying: an
//! attacker in the path can simply answer that the server has no TLS, and
//! `prefer` then goes on in the clear. Verifying there would only break
//! servers with a self-signed certificate (a distribution's default
//! Postgres has one), which worked before TLS was on at all. Naming a CA
//! file says whom to trust, so then even `prefer` verifies.
//!
//! The crypto provider is ring, named explicitly: some binaries link
//! rustls with aws-lc-rs too (through reqwest), and then rustls has no
//! process-wide default to fall back on.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;

pub use tokio_postgres_rustls::MakeRustlsConnect;

/// Whom to trust for the Postgres server's certificate.
///
/// The default trusts the system's root certificates, and reads no
/// environment: a program that takes `TASKYARD_DATABASE_CA_FILE` passes it
/// here itself ([`DbTls::from_ca_file`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbTls {
    ca_file: Option<PathBuf>,
}

/// Why TLS to Postgres could not be set up, or the server's certificate
/// was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The OS error is in the message rather than a source, so that
    /// `{:#}` (anyhow's chain) does not print it twice.
    #[error("cannot read the Postgres CA file {}: {error}", path.display())]
    ReadCa {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("the Postgres CA file {} is not PEM: {reason}", path.display())]
    CaNotPem { path: PathBuf, reason: String },
    #[error("the Postgres CA file {} holds no certificate", path.display())]
    NoCa { path: PathBuf },
    #[error("the Postgres CA file {} holds a certificate that cannot be a root: {reason}", path.display())]
    BadCa { path: PathBuf, reason: String },
    #[error(
        "sslmode=require verifies the Postgres server's certificate, but no system root \
         certificates could be loaded ({reason}); set TASKYARD_DATABASE_CA_FILE"
    )]
    NoSystemRoots { reason: String },
    #[error("cannot set up TLS for Postgres: {0}")]
    Config(String),
    #[error("the Postgres server's certificate could not be verified against {trusted}: {reason}")]
    Unverified { trusted: String, reason: String },
    #[error("TLS with the Postgres server failed: {reason}")]
    Handshake { reason: String },
}

impl DbTls {
    /// Trust the system's root certificates (the default).
    pub fn system_roots() -> DbTls {
        DbTls::default()
    }

    /// Trust the CA certificate(s) in the PEM file at `path`, and only them.
    pub fn ca_file(path: impl Into<PathBuf>) -> DbTls {
        DbTls {
            ca_file: Some(path.into()),
        }
    }

    /// [`DbTls::ca_file`] when a file is named (a setting that may be unset),
    /// else [`DbTls::system_roots`].
    pub fn from_ca_file(path: Option<PathBuf>) -> DbTls {
        DbTls { ca_file: path }
    }

    /// The CA file, when one was named.
    pub fn ca_path(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// What certificates are checked against, for messages.
    pub fn trusted(&self) -> String {
        match &self.ca_file {
            Some(path) => format!("the CA in {}", path.display()),
            None => "the system's root certificates".to_owned(),
        }
    }

    /// The connector for a URL whose `sslmode` is `mode` (see the module's
    /// table). A CA file is read whatever the mode, so that a wrong path
    /// shows at once rather than on the day someone turns TLS on.
    pub fn connector(&self, mode: SslMode) -> Result<MakeRustlsConnect, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = match &self.ca_file {
            Some(path) => Some(read_ca_file(path)?),
            None if mode == SslMode::Require => Some(system_roots()?),
            None => None,
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Config(err.to_string()))?;
        let config = match roots {
            Some(roots) => {
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|err| TlsError::Config(err.to_string()))?;
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The connector for `url`, by its `sslmode`.
    pub fn connector_for(&self, url: &str) -> Result<MakeRustlsConnect, crate::StoreError> {
        self.connector(ssl_mode(url)?)
            .map_err(crate::StoreError::from)
    }

    /// Says what went wrong with TLS when `err` (from connecting) is a TLS
    /// failure: tokio-postgres's own message is only "error performing TLS
    /// handshake", with rustls's reason hidden in its source.
    pub fn explain(&self, err: &(dyn std::error::Error + 'static)) -> Option<TlsError> {
        let mut next = Some(err);
        let mut tls_failure = false;
        while let Some(err) = next {
            let rustls = err.downcast_ref::<rustls::Error>().or_else(|| {
                err.downcast_ref::<std::io::Error>()
                    .and_then(std::io::Error::get_ref)
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            });
            if let Some(rustls::Error::InvalidCertificate(reason)) = rustls {
                return Some(TlsError::Unverified {
                    trusted: self.trusted(),
                    reason: describe(reason),
                });
            }
            if let Some(rustls) = rustls {
                return Some(TlsError::Handshake {
                    reason: rustls.to_string(),
                });
            }
            if let Some(pg) = err.downcast_ref::<tokio_postgres::Error>() {
                // Its error kinds are private; this is the Display of
                // `Kind::Tls`. Should it change, errors merely stay as
                // tokio-postgres words them.
                tls_failure |= pg.to_string() == "error performing TLS handshake";
            } else if tls_failure {
                // The cause tokio-postgres gives its TLS error, e.g. "server
                // does not support TLS" under sslmode=require.
                return Some(TlsError::Handshake {
                    reason: err.to_string(),
                });
            }
            next = err.source();
        }
        None
    }
}

/// rustls's reason, with words for the two an operator meets most (a
/// wrong or missing CA), which rustls prints only as variant names.
fn describe(reason: &rustls::CertificateError) -> String {
    use rustls::CertificateError::{BadSignature, UnknownIssuer};
    match reason {
        UnknownIssuer => "it is not signed by a trusted CA (UnknownIssuer)".to_owned(),
        BadSignature => {
            "its signature does not match the trusted CA's key (BadSignature)".to_owned()
        }
        other => other.to_string(),
    }
}

/// The `sslmode` of a `postgres://` URL or `key=value` string.
pub fn ssl_mode(url: &str) -> Result<SslMode, crate::StoreError> {
    let config: tokio_postgres::Config = url.parse().map_err(|err: tokio_postgres::Error| {
        // Its own words name the option but not what to do about the
        // libpq modes tokio-postgres does not know.
        let hint = if url.contains("sslmode=verify") {
            " (sslmode=require verifies the certificate and host name here, as libpq's verify-full)"
        } else if url.contains("sslrootcert") {
            " (give the CA file in TASKYARD_DATABASE_CA_FILE, not in the URL)"
        } else {
            ""
        };
        crate::StoreError::Setup(format!(
            "cannot read the database URL: {}{hint}",
            error_chain(&err)
        ))
    })?;
    Ok(config.get_ssl_mode())
}

/// An error and its sources, `: `-separated (tokio-postgres keeps the
/// useful part of its messages in the source).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(err) = next {
        text.push_str(": ");
        text.push_str(&err.to_string());
        next = err.source();
    }
    text
}

fn read_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = std::fs::read(path).map_err(|error| TlsError::ReadCa {
        path: path.to_path_buf(),
        error,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|err| TlsError::CaNotPem {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        roots.add(cert).map_err(|err| TlsError::BadCa {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCa {
            path: path.to_path_buf(),
        });
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, TlsError> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    // A system store often holds a few certificates webpki cannot use; the
    // rest still serve.
    let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let reason = match found.errors.first() {
            Some(err) => err.to_string(),
            None => "the system's store is empty".to_owned(),
        };
        return Err(TlsError::NoSystemRoots { reason });
    }
    Ok(roots)
}

/// `prefer` without a CA file: any certificate is accepted (see the
/// module's docs for why), but the handshake's signatures are still
/// checked, so the session is with whoever holds the presented key.
#[derive(Debug)]
struct Unverified {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    #[test]
    fn a_bad_ca_file_is_named_in_the_error() {
        let missing = DbTls::ca_file("/nonexistent/taskyard-ca.pem");
        let err = missing
            .connector(SslMode::Prefer)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("cannot read the Postgres CA file /nonexistent/taskyard-ca.pem:"),
            "{err}"
        );

        let (_dir, empty) = temp_file("empty.pem", "no certificates here\n");
        let err = DbTls::ca_file(&empty)
            .connector(SslMode::Disable)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            format!(
                "the Postgres CA file {} holds no certificate",
                empty.display()
            )
        );

        let (_dir, garbage) = temp_file(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        );
        let err = DbTls::ca_file(&garbage)
            .connector(SslMode::Require)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with(&format!(
                "the Postgres CA file {} holds a certificate that cannot be a root",
                garbage.display()
            )),
            "{err}"
        );
    }

    #[test]
    fn sslmode_is_read_from_urls_and_libpq_only_modes_get_a_hint() {
        assert_eq!(
            ssl_mode("postgres://u@h/db").ok(),
            Some(SslMode::Prefer),
            "tokio-postgres's default"
        );
        assert_eq!(
            ssl_mode("postgres://u@h/db?sslmode=require").ok(),
            Some(SslMode::Require)
        );
        assert_eq!(
            ssl_mode("host=h sslmode=disable").ok(),
            Some(SslMode::Disable)
        );
        let err = ssl_mode("postgres://u@h/db?sslmode=verify-full")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("sslmode=require verifies"), "{err}");
    }

    #[test]
    fn prefer_without_a_ca_file_needs_no_system_roots() {
        assert!(DbTls::default().connector(SslMode::Prefer).is_ok());
        assert!(DbTls::default().connector(SslMode::Disable).is_ok());
    }
}
