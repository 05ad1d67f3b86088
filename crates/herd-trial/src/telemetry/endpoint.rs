//! Which URL spans go to, by the standard OTLP environment (the same rules opentelemetry-otlp
//! applies, resolved once here so the pre-flight and the exporter use the identical URL):
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used verbatim; otherwise
//! `OTEL_EXPORTER_OTLP_ENDPOINT` gets `/v1/traces` appended; neither set → no exporter.

/// The traces URL, or `None` when no endpoint is configured.
pub fn traces_endpoint(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |k: &str| {
        get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return Some(url);
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT")
        .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
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
        assert_eq!(traces_endpoint(env(&[])), None);
        assert_eq!(
            traces_endpoint(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")])).as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let both = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/x"),
        ];
        assert_eq!(traces_endpoint(env(&both)).as_deref(), Some("http://t:9/x"));
        assert_eq!(service_name(env(&[])), "herd");
        assert_eq!(service_name(env(&[("OTEL_SERVICE_NAME", "ci")])), "ci");
    }
}
