//! Which URL spans go to and how, by the standard OTLP environment (the same rules
//! opentelemetry-otlp applies, resolved once here so the pre-flight and the exporter use the
//! identical URL): `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used verbatim; otherwise
//! `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended over HTTP (a gRPC endpoint is the
//! base itself, e.g. `http://collector:4317`); neither set → no exporter. The protocol is
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`: `http/protobuf`
//! (the default) or `grpc`; anything else is an error naming the variable.

/// How spans travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (collectors listen on 4318).
    #[default]
    HttpProtobuf,
    /// OTLP/gRPC (collectors listen on 4317).
    Grpc,
}

impl OtlpProtocol {
    /// The name the environment uses.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::HttpProtobuf => "http/protobuf",
            OtlpProtocol::Grpc => "grpc",
        }
    }
}

/// The protocol, or an error naming the variable and the value it could not use.
pub fn protocol(get: impl Fn(&str) -> Option<String>) -> Result<OtlpProtocol, String> {
    for key in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        let Some(value) = get(key)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        return match value.as_str() {
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "grpc" => Ok(OtlpProtocol::Grpc),
            _ => Err(format!(
                "{key}={value:?} is not supported: use http/protobuf (default) or grpc"
            )),
        };
    }
    Ok(OtlpProtocol::HttpProtobuf)
}

/// The traces URL for `protocol`, or `None` when no endpoint is configured.
pub fn traces_endpoint(
    get: impl Fn(&str) -> Option<String>,
    protocol: OtlpProtocol,
) -> Option<String> {
    let set = |k: &str| {
        get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(url);
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT").map(|base| match protocol {
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
        OtlpProtocol::Grpc => base,
    })
}

/// `OTEL_SERVICE_NAME`, default `herd`.
pub fn service_name(get: impl Fn(&str) -> Option<String>) -> String {
    get("OTEL_SERVICE_NAME")
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "herd".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn signal_endpoint_is_verbatim_and_base_gets_the_path() {
        let http = OtlpProtocol::HttpProtobuf;
        assert_eq!(traces_endpoint(env(&[]), http), None);
        assert_eq!(
            traces_endpoint(
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
                http
            )
            .as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let both = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/x"),
        ];
        assert_eq!(
            traces_endpoint(env(&both), http).as_deref(),
            Some("http://t:9/x")
        );
        assert_eq!(
            traces_endpoint(
                env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]),
                OtlpProtocol::Grpc
            )
            .as_deref(),
            Some("http://c:4317")
        );
        assert_eq!(service_name(env(&[])), "herd");
        assert_eq!(protocol(env(&[])), Ok(OtlpProtocol::HttpProtobuf));
        assert_eq!(
            protocol(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])),
            Ok(OtlpProtocol::Grpc)
        );
        let signal_wins = [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ];
        assert_eq!(protocol(env(&signal_wins)), Ok(OtlpProtocol::HttpProtobuf));
        let json = protocol(env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])).unwrap_err();
        assert!(json.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{json}");
        assert_eq!(service_name(env(&[("OTEL_SERVICE_NAME", "ci")])), "ci");
    }
}
