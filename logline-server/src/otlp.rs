//! OTLP trace export (feature `otlp`): the engine's and the server's `tracing` spans sent to an
//! OpenTelemetry collector over OTLP/HTTP (protobuf).
//!
//! [`layer`] gives a `tracing-subscriber` layer and the provider that owns the export; keep the
//! provider until shutdown and call [`OtlpExport::shutdown`] so the last spans are sent.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use logline_core::{Error, Result};

/// The standard variable naming the collector's base URL (e.g. `http://localhost:4318`).
pub const ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The running export: flushes and stops on [`OtlpExport::shutdown`].
#[derive(Debug, Clone)]
pub struct OtlpExport {
    provider: SdkTracerProvider,
}

impl OtlpExport {
    /// Sends the spans still buffered; blocks until the collector answered or timed out.
    pub fn flush(&self) -> Result<()> {
        self.provider
            .force_flush()
            .map_err(|e| Error::Internal(format!("OTLP flush: {e}")))
    }

    /// Sends the spans still buffered and stops the export (blocking).
    pub fn shutdown(&self) -> Result<()> {
        self.provider
            .shutdown()
            .map_err(|e| Error::Internal(format!("OTLP shutdown: {e}")))
    }
}

/// The traces URL of a collector: `endpoint` + `/v1/traces`, as OTLP/HTTP defines for the
/// base endpoint (an endpoint that already names the path is kept).
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

/// A layer exporting every span to the collector at `endpoint` (its base URL), in batches
/// from a background thread, with `service.name` = `service`.
pub fn layer<S>(endpoint: &str, service: &str) -> Result<(impl Layer<S>, OtlpExport)>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let url = traces_url(endpoint);
    reqwest::Url::parse(&url)
        .map_err(|e| Error::InvalidInput(format!("otlp_endpoint `{endpoint}`: {e}")))?;
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .map_err(|e| Error::InvalidInput(format!("OTLP exporter: {e}")))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    let tracer = provider.tracer("logline");
    let layer = tracing_opentelemetry::layer().with_tracer(tracer);
    Ok((layer, OtlpExport { provider }))
}
