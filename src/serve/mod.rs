//! The sidecar and node agent: shared state and health policy, HTTP routes,
//! connection management and metrics.

pub mod metrics;
pub mod server;
