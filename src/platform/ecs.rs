//! ECS task metadata v4: `${ECS_CONTAINER_METADATA_URI_V4}/task` carries AWS's
//! view of the host clock as `ClockDrift` (`ClockErrorBound` in ms,
//! `ReferenceTimestamp`, `ClockSynchronizationStatus`).
//!
//! [`parse_task`] is pure; [`fetch`] is one plain-HTTP GET through hyper on the
//! link-local endpoint, bounded in time and in size.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::core::duration::human_duration;
use crate::core::platform::AwsClock;
use crate::proto::source::Source;

/// `source` of the evidence.
pub const SOURCE: &str = "ecs-task-metadata";

/// Most bytes read of the task metadata (tens of KiB for a task with many containers).
pub const MAX_BODY: usize = 512 * 1024;

#[derive(Deserialize)]
struct Task {
    #[serde(rename = "ClockDrift")]
    clock_drift: Option<ClockDrift>,
}

#[derive(Deserialize)]
struct ClockDrift {
    #[serde(rename = "ClockErrorBound")]
    error_bound_ms: Option<f64>,
    #[serde(rename = "ReferenceTimestamp")]
    reference_timestamp: Option<String>,
    #[serde(rename = "ClockSynchronizationStatus")]
    status: Option<String>,
}

fn failed(error: String) -> AwsClock {
    AwsClock::unreadable(SOURCE, error)
}

/// Reads `ClockDrift` out of a task metadata document.
pub fn parse_task(body: &[u8]) -> AwsClock {
    let task: Task = match serde_json::from_slice(body) {
        Ok(t) => t,
        Err(e) => return failed(format!("not task metadata JSON: {e}")),
    };
    let Some(drift) = task.clock_drift else {
        return failed("the task metadata has no ClockDrift".into());
    };
    let status: Option<String> = drift
        .status
        .map(|s| s.chars().filter(|c| !c.is_control()).take(40).collect());
    AwsClock {
        source: SOURCE.into(),
        synchronised: status.as_deref().and_then(|s| match s {
            "SYNCHRONIZED" => Some(true),
            "NOT_SYNCHRONIZED" => Some(false),
            _ => None,
        }),
        status,
        error_bound_seconds: drift
            .error_bound_ms
            .filter(|b| b.is_finite() && *b >= 0.0)
            .map(|ms| ms / 1000.0),
        as_of: drift
            .reference_timestamp
            .map(|t| t.chars().filter(|c| !c.is_control()).take(40).collect()),
        error: None,
    }
}

/// GETs `{uri}/task` within `timeout` and reads its `ClockDrift`.
pub async fn fetch(uri: &str, timeout: Duration) -> AwsClock {
    match tokio::time::timeout(timeout, get_task(uri)).await {
        Ok(Ok(body)) => parse_task(&body),
        Ok(Err(e)) => failed(e),
        Err(_) => failed(format!(
            "no answer within {}",
            human_duration(timeout.as_secs_f64())
        )),
    }
}

async fn get_task(uri: &str) -> Result<Bytes, String> {
    let target = match Source::parse(uri) {
        Ok(Source::Http(t)) if !t.tls => t,
        _ => {
            return Err(format!(
                "ECS_CONTAINER_METADATA_URI_V4 `{uri}` is not an http:// URL"
            ))
        }
    };
    let path = format!("{}/task", target.path.trim_end_matches('/'));
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| format!("cannot connect to {}:{}: {e}", target.host, target.port))?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("HTTP set-up failed: {e}"))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let request = Request::get(path.as_str())
            .header(
                hyper::header::HOST,
                format!("{}:{}", target.host, target.port),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status()));
        }
        Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .map_err(|e| format!("cannot read the body: {e}"))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_drift_is_read_from_task_metadata() {
        let body = br#"{"Cluster":"c","TaskARN":"arn","ClockDrift":{"ClockErrorBound":0.403273,"ReferenceTimestamp":"2022-05-10T19:33:11Z","ClockSynchronizationStatus":"SYNCHRONIZED"},"Containers":[]}"#;
        let c = parse_task(body);
        assert_eq!(c.synchronised, Some(true));
        assert_eq!(c.status.as_deref(), Some("SYNCHRONIZED"));
        assert!((c.error_bound_seconds.unwrap() - 0.000403273).abs() < 1e-12);
        assert_eq!(c.as_of.as_deref(), Some("2022-05-10T19:33:11Z"));

        let c = parse_task(br#"{"ClockDrift":{"ClockSynchronizationStatus":"NOT_SYNCHRONIZED"}}"#);
        assert_eq!(c.synchronised, Some(false));
        assert!(
            c.describe().contains("NOT_SYNCHRONIZED"),
            "{}",
            c.describe()
        );

        for bad in [&b"{}"[..], b"<html>", b"{\"ClockDrift\":3}"] {
            let c = parse_task(bad);
            assert!(c.error.is_some() && c.synchronised.is_none(), "{c:?}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_silent_or_absent_endpoint_is_an_error_within_the_timeout() {
        // Accepted by the kernel's backlog, never answered.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/v4/x", silent.local_addr().unwrap());
        let started = std::time::Instant::now();
        let c = fetch(&uri, Duration::from_millis(200)).await;
        assert!(
            c.error
                .as_deref()
                .is_some_and(|e| e.contains("no answer within")),
            "{c:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let c = fetch("https://169.254.170.2/v4/x", Duration::from_millis(200)).await;
        assert!(
            c.error
                .as_deref()
                .is_some_and(|e| e.contains("not an http:// URL")),
            "{c:?}"
        );
        drop(silent);
    }
}
