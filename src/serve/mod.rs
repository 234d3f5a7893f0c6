//! The sidecar and node agent: the shared state and health policy
//! ([`state`]), the HTTP routes ([`routes`]), connection management
//! ([`conn`]) and the metrics ([`metrics`]).

pub mod conn;
pub mod metrics;
pub mod routes;
pub mod state;

use std::sync::Mutex;

/// A poisoned lock only means another task panicked mid-update of plain data;
/// serving the value is better than taking the sidecar down with it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
