//! TLS on the line listener (`[gateway.tls]`): the server's certificate and key, and, with a CA
//! file, client certificates required and checked against it (mutual TLS).
//!
//! Built on OpenSSL, the library the Kafka clients already link (librdkafka's TLS, the same
//! system OpenSSL): one TLS implementation in the binary, and PEM files that work
//! for `[kafka.tls]` work here. The server takes Mozilla's "intermediate" settings (TLS 1.2
//! and 1.3, forward-secret AEAD ciphers). The handshake runs in the connection's own task with
//! a deadline, so a silent or plaintext client never holds up the others.

use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use openssl::ssl::{Ssl, SslAcceptor, SslFiletype, SslMethod, SslOptions, SslVerifyMode};
use pipeline_runtime::settings::SettingsError;
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// How long a client has to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[gateway.tls]` section. TLS is on when `certificate_file` and `key_file` are set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM file of the gateway's certificate (and its chain), with `key_file`.
    pub certificate_file: Option<PathBuf>,
    /// PEM file of the gateway's private key (unencrypted), with `certificate_file`.
    pub key_file: Option<PathBuf>,
    /// PEM file of the CAs whose client certificates are accepted. Set: every client must
    /// present a certificate one of them signed (mutual TLS); unset: no client certificate is
    /// asked for.
    pub ca_file: Option<PathBuf>,
}

impl ListenerTls {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.certificate_file.is_some() || self.key_file.is_some()
    }

    /// Checks that the settings go together.
    pub fn validate(&self) -> Result<(), SettingsError> {
        match (&self.certificate_file, &self.key_file) {
            (Some(_), None) => Err(SettingsError::invalid(
                "gateway.tls.key_file",
                "must be set with gateway.tls.certificate_file",
            )),
            (None, Some(_)) => Err(SettingsError::invalid(
                "gateway.tls.certificate_file",
                "must be set with gateway.tls.key_file",
            )),
            (None, None) if self.ca_file.is_some() => Err(SettingsError::invalid(
                "gateway.tls.ca_file",
                "client certificates need TLS: set gateway.tls.certificate_file and key_file too",
            )),
            _ => Ok(()),
        }
    }
}

/// The listener's TLS server.
pub struct TlsServer {
    acceptor: SslAcceptor,
}

impl TlsServer {
    /// Loads the certificate, key and client CAs; `None` when TLS is off. Each file that cannot
    /// be read or does not match names its setting.
    pub fn new(settings: &ListenerTls) -> anyhow::Result<Option<Self>> {
        let (Some(certificate), Some(key)) = (&settings.certificate_file, &settings.key_file)
        else {
            return Ok(None);
        };
        let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .context("setting up TLS")?;
        builder
            .set_certificate_chain_file(certificate)
            .with_context(|| {
                format!(
                    "reading gateway.tls.certificate_file {}",
                    certificate.display()
                )
            })?;
        builder
            .set_private_key_file(key, SslFiletype::PEM)
            .with_context(|| format!("reading gateway.tls.key_file {}", key.display()))?;
        builder
            .check_private_key()
            .context("gateway.tls.key_file does not match gateway.tls.certificate_file")?;
        // No session tickets: shippers reconnect rarely and gain nothing from resumption,
        // and the fewer bytes the gateway writes after the handshake, the fewer a write-only
        // client leaves unread. (One that closes its socket with any unread makes its kernel
        // answer with a reset, which discards the lines still in the gateway's receive buffer;
        // a client that waits for the gateway's close after its close_notify loses nothing.
        // Acknowledged delivery is what closes that gap, as on plain TCP.)
        builder
            .set_num_tickets(0)
            .context("turning TLS session tickets off")?;
        builder.set_options(SslOptions::NO_TICKET);
        if let Some(ca) = &settings.ca_file {
            builder
                .set_ca_file(ca)
                .with_context(|| format!("reading gateway.tls.ca_file {}", ca.display()))?;
            builder.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        }
        Ok(Some(Self {
            acceptor: builder.build(),
        }))
    }

    /// Runs the server side of the handshake on `stream`, within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: TcpStream) -> anyhow::Result<SslStream<TcpStream>> {
        let ssl = Ssl::new(self.acceptor.context()).context("starting a TLS session")?;
        let mut stream = SslStream::new(ssl, stream).context("starting a TLS session")?;
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, Pin::new(&mut stream).accept()).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(error)) => Err(anyhow::Error::new(error).context("TLS handshake failed")),
            Err(_) => anyhow::bail!(
                "TLS handshake not completed within {} s",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(certificate: bool, key: bool, ca: bool) -> ListenerTls {
        let file = |set: bool, name: &str| set.then(|| PathBuf::from(name));
        ListenerTls {
            certificate_file: file(certificate, "cert.pem"),
            key_file: file(key, "key.pem"),
            ca_file: file(ca, "ca.pem"),
        }
    }

    #[test]
    fn settings_that_do_not_go_together_name_the_key_at_fault() {
        let key_of = |t: ListenerTls| t.validate().unwrap_err().to_string();
        assert!(key_of(tls(true, false, false)).contains("gateway.tls.key_file"));
        assert!(key_of(tls(false, true, false)).contains("gateway.tls.certificate_file"));
        assert!(key_of(tls(false, false, true)).contains("gateway.tls.ca_file"));
        for ok in [
            tls(false, false, false),
            tls(true, true, false),
            tls(true, true, true),
        ] {
            assert!(ok.validate().is_ok(), "{ok:?}");
        }
        assert!(!tls(false, false, false).enabled());
        assert!(tls(true, true, false).enabled());
    }

    #[test]
    fn a_missing_certificate_file_names_its_setting() {
        let error = TlsServer::new(&ListenerTls {
            certificate_file: Some("/nonexistent/cert.pem".into()),
            key_file: Some("/nonexistent/key.pem".into()),
            ca_file: None,
        })
        .err()
        .expect("an error");
        assert!(
            format!("{error:#}").contains("gateway.tls.certificate_file /nonexistent/cert.pem"),
            "{error:#}"
        );
    }
}
