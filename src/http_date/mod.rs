//! Offset from an HTTP server's `Date` response header.

use crate::clock::Clock;
use crate::source::{HttpTarget, Outcome, QuerySettings, SourceError};

/// Measures the offset of `target` from its `Date` header.
pub async fn query(target: &HttpTarget, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    let _ = (target, settings, clock);
    Outcome::from_result(Err(SourceError::Io("not implemented".into())))
}
