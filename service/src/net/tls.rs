//! TLS (and mutual TLS) for both ports from the PEM files named in `[tls]`. One rustls server
//! configuration per port, differing only in ALPN: gRPC speaks `h2`, the HTTP port `h2` and
//! `http/1.1`.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Tls;

/// Builds the acceptor for one port, or `None` when TLS is off. Errors name the config key and
/// the file, so a bad certificate stops the server at start rather than at the first client.
pub fn acceptor(tls: &Tls, alpn: &[&[u8]]) -> anyhow::Result<Option<TlsAcceptor>> {
    if !tls.enabled() {
        return Ok(None);
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert_file)
        .and_then(Iterator::collect)
        .with_context(|| format!("tls.cert_file {}: not a PEM certificate chain", tls.cert_file))?;
    anyhow::ensure!(!certs.is_empty(), "tls.cert_file {}: no certificate in it", tls.cert_file);
    let key = PrivateKeyDer::from_pem_file(&tls.key_file)
        .with_context(|| format!("tls.key_file {}: not a PEM private key", tls.key_file))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = if tls.client_ca_file.is_empty() {
        builder.with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&tls.client_ca_file)
            .with_context(|| format!("tls.client_ca_file {}: not a PEM bundle", tls.client_ca_file))?
        {
            let cert = cert.with_context(|| format!("tls.client_ca_file {}: bad certificate", tls.client_ca_file))?;
            roots.add(cert).with_context(|| format!("tls.client_ca_file {}: unusable CA", tls.client_ca_file))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .with_context(|| format!("tls.client_ca_file {}: no usable CA", tls.client_ca_file))?;
        builder.with_client_cert_verifier(verifier)
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .with_context(|| format!("tls.key_file {} does not match tls.cert_file {}", tls.key_file, tls.cert_file))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Some(TlsAcceptor::from(Arc::new(config))))
}
