use super::*;

fn error(protocol: SecurityProtocol, sasl: SaslSettings, tls: TlsSettings) -> String {
    let security = Security {
        protocol,
        sasl: &sasl,
        tls: &tls,
    };
    security
        .validate(&Vec::new())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

fn scram(password: Option<&str>, password_file: Option<&Path>) -> SaslSettings {
    SaslSettings {
        mechanism: Some(SaslMechanism::ScramSha512),
        username: Some("pipeline".into()),
        password: password.map(Secret::new),
        password_file: password_file.map(Path::to_owned),
    }
}

#[test]
fn sasl_ssl_with_a_password_file_becomes_librdkafka_properties() {
    let dir = tempfile::tempdir().unwrap();
    let (file, ca) = (dir.path().join("password"), dir.path().join("ca.pem"));
    std::fs::write(&file, "s3cret\n").unwrap();
    std::fs::write(&ca, "pem").unwrap();
    let sasl = scram(None, Some(&file));
    let tls = TlsSettings {
        ca_file: Some(ca.clone()),
        ..TlsSettings::default()
    };
    let security = Security {
        protocol: SecurityProtocol::SaslSsl,
        sasl: &sasl,
        tls: &tls,
    };
    let properties = security.properties().unwrap();
    assert_eq!(
        properties,
        [
            ("security.protocol", "sasl_ssl".to_owned()),
            ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
            ("sasl.username", "pipeline".to_owned()),
            ("sasl.password", "s3cret".to_owned()),
            ("ssl.ca.location", ca.display().to_string()),
        ]
    );
}

#[test]
fn misconfiguration_names_the_setting_and_never_the_password() {
    let missing = Path::new("/no/such/ca.pem");
    let cases = [
        (
            error(
                SecurityProtocol::SaslSsl,
                SaslSettings::default(),
                TlsSettings::default(),
            ),
            "configuration key `kafka.sasl.mechanism`: must be set (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) with a SASL security_protocol",
        ),
        (
            error(
                SecurityProtocol::SaslSsl,
                scram(None, None),
                TlsSettings::default(),
            ),
            "configuration key `kafka.sasl.password`: must be set for SASL (or kafka.sasl.password_file)",
        ),
        (
            error(
                SecurityProtocol::SaslSsl,
                scram(Some("hunter2"), Some(missing)),
                TlsSettings::default(),
            ),
            "configuration key `kafka.sasl.password_file`: set either kafka.sasl.password or kafka.sasl.password_file, not both",
        ),
        (
            error(
                SecurityProtocol::SaslSsl,
                scram(None, Some(missing)),
                TlsSettings::default(),
            ),
            "configuration key `kafka.sasl.password_file`: cannot read /no/such/ca.pem: No such file or directory (os error 2)",
        ),
        (
            error(
                SecurityProtocol::Ssl,
                SaslSettings::default(),
                TlsSettings {
                    ca_file: Some(missing.to_owned()),
                    ..TlsSettings::default()
                },
            ),
            "configuration key `kafka.tls.ca_file`: cannot read /no/such/ca.pem: No such file or directory (os error 2)",
        ),
        (
            error(
                SecurityProtocol::Ssl,
                SaslSettings::default(),
                TlsSettings {
                    certificate_file: Some(missing.to_owned()),
                    ..TlsSettings::default()
                },
            ),
            "configuration key `kafka.tls.key_file`: must be set with kafka.tls.certificate_file",
        ),
        (
            error(
                SecurityProtocol::Plaintext,
                scram(Some("hunter2"), None),
                TlsSettings::default(),
            ),
            "configuration key `kafka.sasl`: is only used with security_protocol sasl_plaintext or sasl_ssl",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
        assert!(!got.contains("hunter2"));
    }
}

#[test]
fn raw_properties_cannot_bypass_the_settings() {
    let (sasl, tls) = (SaslSettings::default(), TlsSettings::default());
    let security = Security {
        protocol: SecurityProtocol::Plaintext,
        sasl: &sasl,
        tls: &tls,
    };
    let err = security
        .validate(&vec!["sasl.password".to_owned()])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "configuration key `kafka.properties.sasl.password`: set it with kafka.sasl.password or kafka.sasl.password_file"
    );
    assert!(
        security
            .validate(&vec!["ssl.cipher.suites".to_owned()])
            .is_ok()
    );
}
