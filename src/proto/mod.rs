//! The time protocols, one folder each, over one TLS set-up ([`tls`]), and the
//! dispatch from a [`Source`] to its protocol.
//!
//! A new protocol is a new folder here plus, in this folder, one variant of
//! [`Source`] with its row in [`source::SCHEMES`], one arm in [`measure_with`]
//! and, if it keeps anything between rounds, one variant of [`SourceState`].

pub mod clockbound;
pub mod http_date;
pub mod node;
pub mod ntp;
pub mod nts;
pub mod proxy;
pub mod roughtime;
pub mod source;
pub(crate) mod tls;
pub(crate) mod udp;

pub use source::{HttpTarget, Source};

use crate::core::sample::{Outcome, QuerySettings};
use crate::os::clock::Clock;

/// What a source keeps between rounds (NTS: its keys and cookies; HTTP
/// `Date`: its connection and TLS sessions).
#[derive(Debug, Default)]
pub enum SourceState {
    /// Nothing kept (NTP, Roughtime, or nothing yet).
    #[default]
    Stateless,
    /// The HTTP `Date` source's kept connection, TLS client and counters.
    Http(Box<http_date::Kept>),
    /// The NTS key exchange's keys and cookies, and its work counters.
    Nts(Box<(Option<nts::client::NtsState>, nts::client::NtsStats)>),
}

impl SourceState {
    /// Key exchanges this source has made (NTS; zero for the others).
    pub fn key_exchanges(&self) -> u64 {
        match self {
            SourceState::Nts(nts) => nts.1.key_exchanges,
            SourceState::Http(_) | SourceState::Stateless => 0,
        }
    }

    /// What this HTTP `Date` source's connections cost (zero for the others).
    pub fn http_connections(&self) -> http_date::ConnectionStats {
        match self {
            SourceState::Http(kept) => kept.stats,
            _ => Default::default(),
        }
    }
}

/// Queries one source once, keeping no state.
pub async fn measure(source: &Source, settings: &QuerySettings, clock: &dyn Clock) -> Outcome {
    measure_with(source, settings, clock, &mut SourceState::default()).await
}

/// Queries one source, using and updating its state from earlier rounds.
pub async fn measure_with(
    source: &Source,
    settings: &QuerySettings,
    clock: &dyn Clock,
    state: &mut SourceState,
) -> Outcome {
    match source {
        Source::Ntp { host, port } => ntp::client::query(host, *port, settings, clock).await,
        Source::Http(target) => {
            if !matches!(state, SourceState::Http(..)) {
                *state = SourceState::Http(Default::default());
            }
            let SourceState::Http(kept) = state else {
                unreachable!("set just above")
            };
            http_date::query_with(target, settings, clock, kept).await
        }
        Source::Node { path } => node::query(path, settings, clock).await,
        Source::ClockBound { path } => clockbound::query(path.as_deref(), settings, clock).await,
        Source::Nts { host, port } => {
            if !matches!(state, SourceState::Nts(..)) {
                *state = SourceState::Nts(Default::default());
            }
            let SourceState::Nts(nts) = state else {
                unreachable!("set just above")
            };
            let (keys, stats) = &mut **nts;
            nts::client::query(host, *port, settings, clock, keys, stats).await
        }
        Source::Roughtime { host, port, key } => {
            roughtime::client::query(host, *port, key, settings, clock).await
        }
    }
}
