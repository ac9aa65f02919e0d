//! TLS for `amqps` (VOLTTRON's default RabbitMQ set-up: server verified against the instance
//! CA, client certificate whose subject names the RabbitMQ user, SASL EXTERNAL; memo §5.1),
//! with rustls used sans-IO: ciphertext in from the socket ([`Tls::read_tls`]), plaintext out
//! to the AMQP client ([`Tls::read_plaintext`]), plaintext in from it ([`Tls::write_plaintext`])
//! and ciphertext out to the socket ([`Tls::write_tls`]). No socket, no thread, no clock here:
//! the event loop (phase 2) pumps bytes as it does for plain TCP.
//!
//! The crypto provider is rustls' `ring` (C and assembly, built by the target's C compiler;
//! zig for the ARM builds). rustls allocates its records internally: unlike the plain-TCP path,
//! the TLS path is not allocation-free.

use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;

pub use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConnection, RootCertStore};

/// A TLS set-up or session failure.
#[derive(Debug)]
pub enum TlsError {
    /// A PEM file holds no certificate or no key, or a malformed one.
    Pem(&'static str),
    /// rustls refused the configuration or the session (handshake failure, bad certificate…).
    Rustls(rustls::Error),
    /// The host is not a valid DNS name or IP address for certificate checking.
    ServerName,
    /// Buffered ciphertext or plaintext over rustls' limit (the peer outpaces the reader).
    Io(std::io::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Pem(what) => write!(f, "{what}"),
            TlsError::Rustls(e) => write!(f, "TLS: {e}"),
            TlsError::ServerName => write!(f, "host is not a DNS name or IP address"),
            TlsError::Io(e) => write!(f, "TLS buffer: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Rustls(e)
    }
}

/// Build the client configuration: trust exactly the CAs of `ca_pem`; present `client`
/// (certificate chain PEM, private key PEM) when given (EXTERNAL), else no certificate (PLAIN
/// over TLS).
///
/// # Errors
/// [`TlsError::Pem`] for unreadable PEM, [`TlsError::Rustls`] for a key rustls refuses.
pub fn client_config(ca_pem: &[u8], client: Option<(&[u8], &[u8])>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|_| TlsError::Pem("rabbitmq-ca-file: malformed PEM certificate"))?;
        roots.add(c)?;
        n += 1;
    }
    if n == 0 {
        return Err(TlsError::Pem("rabbitmq-ca-file: no certificate"));
    }
    // ring, not rustls' preferred aws-lc-rs: ring builds for every ARM target with zig as the C
    // compiler (aws-lc-sys needs cmake and more); its lack of post-quantum key exchange is the
    // reason rustls deprecates it, and RabbitMQ 3.10 (Erlang 25) offers none either.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| TlsError::Pem("rabbitmq-cert-file: malformed PEM certificate"))?;
            if chain.is_empty() {
                return Err(TlsError::Pem("rabbitmq-cert-file: no certificate"));
            }
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|_| TlsError::Pem("rabbitmq-key-file: no private key"))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    Ok(Arc::new(config))
}

/// One TLS client session.
pub struct Tls {
    conn: ClientConnection,
}

impl Tls {
    /// Bytes rustls (0.23) buffers for one session at most: a handshake message being
    /// reassembled (64 KiB), received plaintext (16 KiB, and up to a record over), records
    /// waiting for [`Tls::write_tls`] (64 KiB, and up to a record over) and plaintext written
    /// before the handshake completes (64 KiB): about 244 KiB, rounded up.
    pub const BUFFER_BYTES: usize = 256 * 1024;

    /// A session to `host` (checked against the server certificate's names).
    ///
    /// # Errors
    /// [`TlsError::ServerName`], [`TlsError::Rustls`].
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<Tls, TlsError> {
        let name = ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName)?;
        Ok(Tls { conn: ClientConnection::new(config, name)? })
    }

    /// Feed ciphertext read from the socket and process it. Returns the bytes taken (fewer
    /// than given when rustls' buffer is full: read plaintext out first, then feed the rest).
    ///
    /// # Errors
    /// [`TlsError::Rustls`] for a failed handshake or a bad record: close the socket (a TLS
    /// alert may be waiting in [`Tls::write_tls`]).
    pub fn read_tls(&mut self, mut ciphertext: &[u8]) -> Result<usize, TlsError> {
        let total = ciphertext.len();
        while !ciphertext.is_empty() && self.conn.wants_read() {
            match self.conn.read_tls(&mut ciphertext) {
                Ok(0) => break,
                Ok(_) => {
                    self.conn.process_new_packets()?;
                }
                Err(e) => return Err(TlsError::Io(e)),
            }
        }
        Ok(total - ciphertext.len())
    }

    /// Append decrypted bytes to `out`, at most `max`. Returns how many.
    ///
    /// # Errors
    /// [`TlsError::Io`] on an unclean close by the peer.
    pub fn read_plaintext(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, TlsError> {
        let mut got = 0;
        let mut chunk = [0u8; 4096];
        while got < max {
            let want = (max - got).min(chunk.len());
            let Some(dst) = chunk.get_mut(..want) else { break };
            match self.conn.reader().read(dst) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    got += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(TlsError::Io(e)),
            }
        }
        Ok(got)
    }

    /// Encrypt `data` for sending. Returns the bytes taken (rustls buffers early data until
    /// the handshake completes).
    ///
    /// # Errors
    /// [`TlsError::Io`].
    pub fn write_plaintext(&mut self, data: &[u8]) -> Result<usize, TlsError> {
        self.conn.writer().write(data).map_err(TlsError::Io)
    }

    /// Append pending ciphertext (handshake, records, alerts) to `out`. Returns how many bytes.
    ///
    /// # Errors
    /// [`TlsError::Io`] (never for a `Vec`).
    pub fn write_tls(&mut self, out: &mut Vec<u8>) -> Result<usize, TlsError> {
        let mut n = 0;
        while self.conn.wants_write() {
            n += self.conn.write_tls(out).map_err(TlsError::Io)?;
        }
        Ok(n)
    }

    /// The handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Queue a `close_notify` alert (then flush [`Tls::write_tls`]).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_a_clear_error() {
        let e = client_config(b"not a pem", None).unwrap_err();
        assert_eq!(e.to_string(), "rabbitmq-ca-file: no certificate");
        let e = client_config(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", None).unwrap_err();
        assert!(e.to_string().starts_with("rabbitmq-ca-file"), "{e}");
    }
}
