//! Trace context across tiers: the report's W3C trace context is stored with the case and
//! carried in queue messages, and every later step of the case — routing, each unit's
//! command, each timer — runs in a span parented to it, so one trace shows the case from
//! report to close.

use std::collections::{BTreeMap, HashMap};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The current span's trace context as W3C headers; empty when no trace is being recorded.
#[must_use]
pub fn current_carrier() -> BTreeMap<String, String> {
    let cx = Span::current().context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.into_iter().collect()
}

/// A span for one step of a case, joined to the case's trace.
#[must_use]
pub fn case_span(
    step: &'static str,
    case_id: domain::CaseId,
    carrier: &BTreeMap<String, String>,
) -> Span {
    let span = tracing::info_span!("case_step", otel.name = step, %case_id);
    if !carrier.is_empty() {
        let map: HashMap<String, String> = carrier.clone().into_iter().collect();
        let cx = TraceContextPropagator::new().extract(&map);
        // Only fails for a span that already started or is disabled; either way the step
        // still runs, just outside the case's trace.
        let _ = span.set_parent(cx);
    }
    span
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt as _;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[test]
    fn a_step_joins_the_reports_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let report = tracing::info_span!("report_event");
            let carrier = report.in_scope(current_carrier);
            assert!(carrier.contains_key("traceparent"), "{carrier:?}");
            let report_trace = report.context().span().span_context().trace_id();
            let step = case_span("route", domain::CaseId::nil(), &carrier);
            let step_trace = step.context().span().span_context().trace_id();
            assert_eq!(report_trace, step_trace);
            // no carrier: a span of its own
            let lone = case_span("route", domain::CaseId::nil(), &BTreeMap::new());
            assert_ne!(
                lone.context().span().span_context().trace_id(),
                report_trace
            );
        });
    }
}
