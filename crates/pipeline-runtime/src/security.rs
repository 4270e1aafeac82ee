//! How the Kafka clients authenticate and encrypt: `kafka.security_protocol`, `[kafka.sasl]`
//! and `[kafka.tls]`, checked at start with errors naming the setting, and turned into
//! librdkafka properties. The password can come from a file (`password_file`, as container
//! secrets are mounted) or from the environment (`PIPELINE__KAFKA__SASL__PASSWORD`); it is a
//! [`Secret`] everywhere else.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secret::Secret;
use crate::settings::SettingsError;

/// The connection's security, as Kafka names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    /// No TLS, no authentication (the local demo).
    #[default]
    Plaintext,
    /// TLS; with `tls.certificate_file` and `tls.key_file`, client certificates (mTLS).
    Ssl,
    /// SASL authentication without TLS.
    SaslPlaintext,
    /// SASL authentication over TLS: what managed Kafka services use.
    SaslSsl,
}

impl SecurityProtocol {
    fn librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }

    fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// Username and password sent as they are (only over TLS, in practice).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn librdkafka(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// The `[kafka.sasl]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SaslSettings {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: Option<SaslMechanism>,
    /// The user.
    pub username: Option<String>,
    /// The password (prefer `password_file` or the environment to a file of settings).
    pub password: Option<Secret>,
    /// A file holding the password (a trailing newline is ignored): a mounted secret.
    pub password_file: Option<PathBuf>,
}

/// The `[kafka.tls]` section.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file of the CA certificates that sign the brokers' certificates. Unset: the
    /// system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client's certificate (mTLS), with `key_file`.
    pub certificate_file: Option<PathBuf>,
    /// PEM file of the client's private key (mTLS), with `certificate_file`.
    pub key_file: Option<PathBuf>,
    /// The private key's password, if it is encrypted.
    pub key_password: Option<Secret>,
}

/// librdkafka properties that these settings own: setting them in `kafka.properties` is an
/// error that points to the setting.
const OWNED: &[(&str, &str)] = &[
    ("security.protocol", "kafka.security_protocol"),
    ("sasl.mechanism", "kafka.sasl.mechanism"),
    ("sasl.mechanisms", "kafka.sasl.mechanism"),
    ("sasl.username", "kafka.sasl.username"),
    (
        "sasl.password",
        "kafka.sasl.password or kafka.sasl.password_file",
    ),
    ("ssl.ca.location", "kafka.tls.ca_file"),
    ("ssl.certificate.location", "kafka.tls.certificate_file"),
    ("ssl.key.location", "kafka.tls.key_file"),
    ("ssl.key.password", "kafka.tls.key_password"),
];

/// The checked security settings.
#[derive(Debug, Clone, Copy)]
pub struct Security<'a> {
    /// The protocol.
    pub protocol: SecurityProtocol,
    /// SASL.
    pub sasl: &'a SaslSettings,
    /// TLS.
    pub tls: &'a TlsSettings,
}

impl Security<'_> {
    /// Checks the settings: what the protocol needs is there, nothing it does not use is set,
    /// every file is readable, and `properties` leave the owned properties alone.
    pub fn validate<'p>(
        &self,
        properties: impl IntoIterator<Item = &'p String>,
    ) -> Result<(), SettingsError> {
        for key in properties {
            if let Some((_, setting)) = OWNED.iter().find(|(k, _)| k == key) {
                return Err(SettingsError::invalid(
                    format!("kafka.properties.{key}"),
                    format!("set it with {setting}"),
                ));
            }
        }
        self.properties().map(drop)
    }

    /// The librdkafka properties, the password read from its file when it comes from one.
    pub fn properties(&self) -> Result<Vec<(&'static str, String)>, SettingsError> {
        let (protocol, sasl, tls) = (self.protocol, self.sasl, self.tls);
        let mut out = vec![("security.protocol", protocol.librdkafka().to_owned())];
        if protocol.sasl() {
            let mechanism = sasl.mechanism.ok_or_else(|| {
                SettingsError::invalid(
                    "kafka.sasl.mechanism",
                    "must be set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) with a SASL security_protocol",
                )
            })?;
            let username = sasl.username.as_deref().filter(|u| !u.is_empty());
            let username = username.ok_or_else(|| {
                SettingsError::invalid("kafka.sasl.username", "must be set for SASL")
            })?;
            let password = match (&sasl.password, &sasl.password_file) {
                (Some(_), Some(_)) => {
                    return Err(SettingsError::invalid(
                        "kafka.sasl.password_file",
                        "set either kafka.sasl.password or kafka.sasl.password_file, not both",
                    ));
                }
                (Some(password), None) => password.clone(),
                (None, Some(file)) => read_password(file)?,
                (None, None) => {
                    return Err(SettingsError::invalid(
                        "kafka.sasl.password",
                        "must be set for SASL (or kafka.sasl.password_file)",
                    ));
                }
            };
            if password.is_empty() {
                return Err(SettingsError::invalid("kafka.sasl.password", "is empty"));
            }
            out.push(("sasl.mechanism", mechanism.librdkafka().to_owned()));
            out.push(("sasl.username", username.to_owned()));
            out.push(("sasl.password", password.expose().to_owned()));
        } else if sasl != &SaslSettings::default() {
            return Err(SettingsError::invalid(
                "kafka.sasl",
                "is only used with security_protocol sasl_plaintext or sasl_ssl",
            ));
        }
        if protocol.tls() {
            // Without a CA file, the system's CAs: librdkafka probes the places distributions
            // keep them (OpenSSL's own default is where it was built to look).
            let ca = match &tls.ca_file {
                Some(file) => readable("kafka.tls.ca_file", file)?,
                None => "probe".to_owned(),
            };
            out.push(("ssl.ca.location", ca));
            match (&tls.certificate_file, &tls.key_file) {
                (Some(certificate), Some(key)) => {
                    out.push((
                        "ssl.certificate.location",
                        readable("kafka.tls.certificate_file", certificate)?,
                    ));
                    out.push(("ssl.key.location", readable("kafka.tls.key_file", key)?));
                }
                (None, None) => {}
                (Some(_), None) => {
                    return Err(SettingsError::invalid(
                        "kafka.tls.key_file",
                        "must be set with kafka.tls.certificate_file",
                    ));
                }
                (None, Some(_)) => {
                    return Err(SettingsError::invalid(
                        "kafka.tls.certificate_file",
                        "must be set with kafka.tls.key_file",
                    ));
                }
            }
            if let Some(password) = &tls.key_password {
                out.push(("ssl.key.password", password.expose().to_owned()));
            }
        } else if tls != &TlsSettings::default() {
            return Err(SettingsError::invalid(
                "kafka.tls",
                "is only used with security_protocol ssl or sasl_ssl",
            ));
        }
        Ok(out)
    }
}

/// The file's path as a string, once it is known to be readable.
fn readable(key: &str, path: &Path) -> Result<String, SettingsError> {
    std::fs::File::open(path)
        .map_err(|e| SettingsError::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    Ok(path.to_string_lossy().into_owned())
}

fn read_password(path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        SettingsError::invalid(
            "kafka.sasl.password_file",
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

#[cfg(test)]
mod tests;
