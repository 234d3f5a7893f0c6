//! The sidecar and node agent: the measurement loop (`measure`), the shared
//! state and health policy (`state`), the HTTP routes (`routes`), connection
//! management (`conn`) and the metrics (`metrics`). Nothing here is public:
//! `skewguard serve` (`cmd::serve`) is the way in.
//!
//! `run` puts them together: the loop publishes each round into a `State`,
//! and the server answers `/healthz`, `/readyz`, `/livez` and `/metrics` from
//! it.

pub(crate) mod conn;
pub(crate) mod measure;
pub(crate) mod metrics;
pub(crate) mod publish;
pub(crate) mod routes;
pub(crate) mod state;

use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::config::Config;
use crate::core::duration::human_duration;
use crate::core::report::Report;
use crate::core::verdict::Verdict;
use crate::os::clock::Clock;
use crate::serve::metrics::Metrics;
use crate::serve::state::{Health, State};

/// Serves on `listener` until `shutdown` resolves, then drains (see
/// [`conn::serve`]): measures round after round into a [`State`], logging
/// each with `log` (see [`measure::measure_loop`]), and answers probes and scrapes from it over at most `cap`
/// connections at once.
pub(crate) async fn run(
    config: Arc<Config>,
    clock: &'static dyn Clock,
    listener: tokio::net::TcpListener,
    cap: usize,
    shutdown: impl Future<Output = ()>,
    log: impl Fn(&Health, &Report, Option<Verdict>) + Send + 'static,
) {
    let state = Arc::new(State::new(
        &crate::round::judging(&config),
        Metrics::for_config(&config),
        config.max_drift,
        config.unknown_passes,
        measure::live_within(&config),
        clock,
    ));
    tracing::info!(
        listen = %config.listen,
        interval = %human_duration(config.interval.as_secs_f64()),
        sources = config.sources.len(),
        "serving /healthz, /readyz, /livez and /metrics"
    );
    let measuring = tokio::spawn(measure::measure_loop(
        config.clone(),
        clock,
        state.clone(),
        log,
    ));
    conn::serve(listener, state, cap, shutdown).await;
    measuring.abort();
}

/// A poisoned lock only means another task panicked mid-update of plain data;
/// serving the value is better than taking the sidecar down with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
