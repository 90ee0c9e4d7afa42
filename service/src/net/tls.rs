//! TLS (and mutual TLS) for both ports from the PEM files named in `[tls]`. One rustls server
//! configuration per port, differing only in ALPN (gRPC speaks `h2`, the HTTP port `h2` and
//! `http/1.1`), sharing one certificate resolver. The certificate and key are re-read when their
//! files change (`file_watch`): cert-manager renews the Secret, the kubelet updates the mount,
//! and new handshakes get the new certificate while open connections carry on with theirs. A
//! pair that does not parse, match or verify as a chain (`verify_chain`) is logged and the one
//! in use kept. The client CA bundle
//! (mutual TLS) is read at start only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio_rustls::TlsAcceptor;
use vericlip_core::operator_file::{self, FileKind};

use super::file_watch;
use crate::config::Tls;

/// Where the certificate comes from, and how it is checked (at start and on every reload alike).
#[derive(Debug)]
struct CertSource {
    provider: Arc<CryptoProvider>,
    cert_file: String,
    key_file: String,
}

impl CertSource {
    /// The certificate chain and key from the files' PEM contents; errors name the config key
    /// and the file.
    fn parse(&self, contents: &[Vec<u8>]) -> anyhow::Result<CertifiedKey> {
        let (cert_file, key_file) = (&self.cert_file, &self.key_file);
        let [cert_pem, key_pem] = contents else { anyhow::bail!("expected the certificate and the key") };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<_, _>>()
            .with_context(|| format!("tls.cert_file {cert_file}: not a PEM certificate chain"))?;
        anyhow::ensure!(!certs.is_empty(), "tls.cert_file {cert_file}: no certificate in it");
        verify_chain(&certs, &self.provider).with_context(|| format!("tls.cert_file {cert_file}"))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .with_context(|| format!("tls.key_file {key_file}: not a PEM private key"))?;
        CertifiedKey::from_der(certs, key, &self.provider)
            .with_context(|| format!("tls.key_file {key_file} does not match tls.cert_file {cert_file}"))
    }
}

/// Checks a certificate chain (leaf first) as a client would, before it is served: every
/// certificate parses, and the leaf verifies through the chain's intermediates up to the
/// chain's last certificate taken as the trust anchor (signatures, validity dates, CA
/// constraints, server-auth usage). A file holding the leaf only (its issuer is the clients'
/// root) has nothing to verify beyond parsing. Without this, a corrupted or wrong intermediate
/// was installed like a good chain and every new handshake failed.
fn verify_chain(certs: &[CertificateDer<'static>], provider: &CryptoProvider) -> anyhow::Result<()> {
    for (i, cert) in certs.iter().enumerate() {
        ParsedCertificate::try_from(cert).map_err(|e| anyhow::anyhow!("certificate {} of the chain: {e}", i + 1))?;
    }
    let [leaf, intermediates @ .., anchor] = certs else { return Ok(()) };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(anchor.clone()).map_err(|e| anyhow::anyhow!("the chain's last certificate: {e}"))?;
    let leaf = ParsedCertificate::try_from(leaf).map_err(|e| anyhow::anyhow!("the leaf certificate: {e}"))?;
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &leaf,
        &roots,
        intermediates,
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .map_err(|e| anyhow::anyhow!("the chain does not verify ({} certificates): {e}", certs.len()))
}

/// The certificate in use, swapped whole when the files change.
#[derive(Debug)]
struct ServerCert {
    current: ArcSwap<CertifiedKey>,
    source: CertSource,
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ServerCert {
    fn reload(&self, contents: &[Vec<u8>]) -> anyhow::Result<String> {
        let certified = self.source.parse(contents)?;
        let described = describe(&certified);
        self.current.store(Arc::new(certified));
        Ok(described)
    }
}

/// The leaf certificate's SHA-256 fingerprint (as `openssl x509 -fingerprint -sha256` prints it,
/// without colons), for the log line that says which certificate is live.
fn describe(key: &CertifiedKey) -> String {
    key.end_entity_cert().map_or_else(
        |_| "no certificate".to_string(),
        |c| format!("certificate sha256 {}", hex(&Sha256::digest(c.as_ref()))),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The acceptors for the gRPC and the HTTP port, or `None` when TLS is off. Errors name the
/// config key and the file, so a bad certificate stops the server at start rather than at the
/// first client. Starts the thread that re-reads the certificate and key while the acceptors
/// live.
pub fn acceptors(tls: &Tls) -> anyhow::Result<Option<(TlsAcceptor, TlsAcceptor)>> {
    if !tls.enabled() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let files = vec![
        (PathBuf::from(&tls.cert_file), FileKind::CERTIFICATE),
        (PathBuf::from(&tls.key_file), FileKind::PRIVATE_KEY),
    ];
    let (contents, digest) = file_watch::read_all(&files)
        .with_context(|| format!("tls.cert_file {} / tls.key_file {}: cannot read", tls.cert_file, tls.key_file))?;
    let source = CertSource {
        provider: Arc::clone(&provider),
        cert_file: tls.cert_file.clone(),
        key_file: tls.key_file.clone(),
    };
    let first = source.parse(&contents)?;
    let described = describe(&first);
    let resolver = Arc::new(ServerCert { current: ArcSwap::from_pointee(first), source });
    tracing::info!(%described, "TLS certificate loaded");

    let acceptor = |alpn: &[&[u8]]| -> anyhow::Result<TlsAcceptor> {
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = if tls.client_ca_file.is_empty() {
            builder.with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let bundle = operator_file::read(Path::new(&tls.client_ca_file), FileKind::CA_BUNDLE)
                .with_context(|| format!("tls.client_ca_file {}: cannot read", tls.client_ca_file))?;
            for cert in CertificateDer::pem_slice_iter(&bundle) {
                let cert =
                    cert.with_context(|| format!("tls.client_ca_file {}: bad certificate", tls.client_ca_file))?;
                roots.add(cert).with_context(|| format!("tls.client_ca_file {}: unusable CA", tls.client_ca_file))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .with_context(|| format!("tls.client_ca_file {}: no usable CA", tls.client_ca_file))?;
            builder.with_client_cert_verifier(verifier)
        };
        let mut config = builder.with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(TlsAcceptor::from(Arc::new(config)))
    };
    let pair = (acceptor(&[b"h2"])?, acceptor(&[b"h2", b"http/1.1"])?);
    file_watch::watch("tls", files, digest, Arc::downgrade(&resolver), ServerCert::reload);
    Ok(Some(pair))
}
