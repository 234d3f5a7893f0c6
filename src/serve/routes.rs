//! The routes of `serve`: `/healthz`, `/readyz`, `/livez` and `/metrics`,
//! answered from a [`State`] by [`respond`], which only looks at the method,
//! the path and (for `/metrics`) the `Accept` header.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;

use crate::serve::state::{to_json, State};

// Small bodies as structs rather than `serde_json::json!` values (whose
// `to_value` serialiser costs binary size); fields in alphabetical order, the
// order the `json!` maps had.

/// The body of a 404 or 405.
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// The body of `/livez`.
#[derive(Serialize)]
struct Live {
    alive: bool,
    limit_seconds: f64,
    rounds: u64,
    seconds_since_last_round: f64,
}

/// The response body type.
type Body = Full<Bytes>;

/// A response that no cache keeps.
fn response(status: u16, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Probes and scrapers must see the current answer, never a cached one.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON `{"error": message}` response.
fn json_error(status: u16, message: &str) -> Response<Body> {
    response(
        status,
        "application/json",
        to_json(&ErrorBody { error: message }),
    )
}

/// Routes one request. Only the method and path matter; bodies are never read.
///
/// `accept` is the request's `Accept` header, which picks the format of `/metrics`.
pub(crate) fn respond(
    method: &Method,
    path: &str,
    accept: Option<&str>,
    state: &State,
) -> Response<Body> {
    const PATHS: [&str; 4] = ["/healthz", "/readyz", "/livez", "/metrics"];
    if !PATHS.contains(&path) {
        return json_error(404, "not found: try /healthz, /readyz, /livez or /metrics");
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = json_error(405, "method not allowed: use GET or HEAD");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/healthz" | "/readyz" => {
            let h = state.health();
            response(h.status, "application/json", h.body)
        }
        "/livez" => {
            let l = state.alive();
            let body = to_json(&Live {
                alive: l.alive,
                limit_seconds: state.live_within.as_secs_f64(),
                rounds: state.rounds(),
                seconds_since_last_round: l.since_progress,
            });
            response(if l.alive { 200 } else { 503 }, "application/json", body)
        }
        _ => {
            let format = crate::serve::metrics::negotiate(accept);
            let h = state.health();
            state.metrics.scrape(h.verdict, state.age());
            state
                .metrics
                .set_holdover(h.holdover.map(|h| (h.age_seconds, h.bound_seconds)));
            let f = h.forecast;
            state.metrics.set_forecast(
                f.map(|f| (f.frequency_error_ppm, f.frequency_error_uncertainty_ppm)),
                f.and_then(|f| f.seconds_until_warn),
                f.and_then(|f| f.seconds_until_max),
            );
            match state.metrics.encode(format) {
                Ok(text) => response(200, format.content_type(), text),
                Err(_) => json_error(500, "cannot encode the metrics"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::holdover::MaxDrift;
    use crate::core::report::{HostFacts, Judging, Report};
    use crate::core::sample::{Outcome, Sample};
    use crate::proto::source::Source;
    use crate::serve::metrics::Metrics;

    fn report(offset: f64) -> Report {
        let sources = Source::parse_list("ntp://a").unwrap();
        Report::assess(
            &sources,
            &[Outcome::from_result(Ok(Sample::plain(
                offset, 0.001, 0.0002,
            )))],
            &Judging::default(),
            &HostFacts::default(),
        )
    }

    #[test]
    fn routes_methods_and_paths() {
        static CLOCK: crate::os::clock::SystemClock = crate::os::clock::SystemClock;
        let sources = Source::parse_list("ntp://a").unwrap();
        let state = State::new(
            &Judging::default(),
            Metrics::new(&sources, 150.0),
            MaxDrift::DEFAULT,
            false,
            Duration::from_secs(60),
            &CLOCK,
        );
        let status = |m: Method, p: &str| respond(&m, p, None, &state).status().as_u16();
        assert_eq!(status(Method::GET, "/healthz"), 503);
        assert_eq!(status(Method::GET, "/livez"), 200);
        assert_eq!(status(Method::GET, "/nope"), 404);
        assert_eq!(status(Method::POST, "/healthz"), 405);
        assert_eq!(status(Method::POST, "/nope"), 404);
        state.publish(report(0.0));
        assert_eq!(status(Method::HEAD, "/readyz"), 200);
        let r = respond(&Method::GET, "/metrics", None, &state);
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            crate::serve::metrics::TEXT_CONTENT_TYPE
        );
        let om = Some("application/openmetrics-text;version=1.0.0,*/*;q=0.1");
        let r = respond(&Method::GET, "/metrics", om, &state);
        assert_eq!(
            r.headers()[CONTENT_TYPE],
            crate::serve::metrics::OPENMETRICS_CONTENT_TYPE
        );
        let r = respond(&Method::PUT, "/metrics", None, &state);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
