//! A local certificate authority and the certificate its servers present,
//! for a stack whose bus speaks TLS without anyone buying a certificate.
//!
//! The CA (`ca.pem`, `ca-key.pem`) is made once per folder and kept, so
//! clients given `ca.pem` keep trusting the stack across restarts; the
//! server certificate (`server.pem`, `server-key.pem`) is made again on
//! every call, for the host names asked for this time, and signed by that
//! CA. It is good for serving and for a cluster's routes (which present it
//! as clients), so one certificate serves all three servers of a cluster on
//! one machine. Keys are written readable by their owner only.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::DevstackError;

/// The CA's common name; the CA is rebuilt from it and its kept key.
const CA_NAME: &str = "Taskyard local CA";

/// Where a stack's certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate every client and server trusts.
    pub ca: PathBuf,
    /// The servers' certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files under `dir`, whether or not they exist yet.
    pub fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server-key.pem"),
        }
    }

    /// A `tls { ... }` block of a nats-server config with these files;
    /// `verify` asks the peer for a certificate too (routes between the
    /// servers of a cluster).
    pub fn nats_block(&self, verify: bool) -> String {
        let path = |p: &Path| serde_json::Value::String(p.to_string_lossy().into_owned());
        let verify = if verify { "\n    verify: true" } else { "" };
        format!(
            "tls {{\n    cert_file: {}\n    key_file: {}\n    ca_file: {}\n    timeout: 5{verify}\n  }}",
            path(&self.cert),
            path(&self.key),
            path(&self.ca),
        )
    }
}

/// Makes ring rustls's process-wide provider, for async-nats's TLS: a
/// build that also links aws-lc-rs (reqwest's) leaves rustls unable to
/// choose, and it panics at the first TLS connection. Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn failed(what: &str) -> impl FnOnce(rcgen::Error) -> DevstackError + '_ {
    move |err| DevstackError::Tls(format!("{what}: {err}"))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_NAME);
    params.distinguished_name = name;
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Makes (or keeps) the CA in `dir` and a server certificate for `hosts`
/// (names or IP addresses; `localhost` and `127.0.0.1` are always in).
pub fn ensure_certificates(dir: &Path, hosts: &[String]) -> Result<TlsFiles, DevstackError> {
    std::fs::create_dir_all(dir)
        .map_err(DevstackError::io(format!("creating {}", dir.display())))?;
    let files = TlsFiles::in_dir(dir);
    let ca_key_path = dir.join("ca-key.pem");
    let ca_key = if ca_key_path.exists() && files.ca.exists() {
        let pem = std::fs::read_to_string(&ca_key_path).map_err(DevstackError::io(format!(
            "reading {}",
            ca_key_path.display()
        )))?;
        KeyPair::from_pem(&pem).map_err(failed("reading the local CA's key"))?
    } else {
        let key = KeyPair::generate().map_err(failed("making the local CA's key"))?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(failed("signing the local CA"))?;
        crate::proc::write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
        write_file(&files.ca, &cert.pem())?;
        key
    };
    let issuer = Issuer::new(ca_params(), ca_key);

    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    for host in hosts {
        if !names.contains(host) {
            names.push(host.clone());
        }
    }
    let mut params =
        CertificateParams::new(names).map_err(failed("a host name of the certificate"))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Taskyard nats-server");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(failed("making the server's key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(failed("signing the server's certificate"))?;
    crate::proc::write_private(&files.key, key.serialize_pem().as_bytes())?;
    write_file(&files.cert, &cert.pem())?;
    Ok(files)
}

fn write_file(path: &Path, text: &str) -> Result<(), DevstackError> {
    std::fs::write(path, text).map_err(DevstackError::io(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_kept_and_the_server_certificate_renewed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = ensure_certificates(dir.path(), &["10.1.2.3".to_owned()]).expect("certs");
        let ca = std::fs::read_to_string(&first.ca).expect("ca");
        let cert = std::fs::read_to_string(&first.cert).expect("cert");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
        let second = ensure_certificates(dir.path(), &[]).expect("certs again");
        assert_eq!(first, second);
        assert_eq!(std::fs::read_to_string(&second.ca).expect("ca"), ca);
        assert_ne!(std::fs::read_to_string(&second.cert).expect("cert"), cert);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&second.key)
            .expect("key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
