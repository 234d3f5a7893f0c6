//! Queries one Roughtime server over UDP.
//!
//! Thin I/O around [`super::request`] and [`super::reply`]: resolve, send one
//! request of each family in [`Family::SENT`] (each with its own fresh random
//! nonce) on one connected socket, and take the first reply that claims one
//! of those nonces. That reply is verified; if it fails, the exchange ends at
//! once with [`SourceError::Verification`] and no sample. A datagram that
//! claims none of the nonces (a replay of another exchange, a forgery, or
//! bytes corrupted where the nonce sits) is ignored, but remembered: if no
//! verified reply arrives before the timeout, the result is a verification
//! failure naming it rather than a plain timeout.
//!
//! Timing as in the NTP client, through the shared exchange of
//! [`crate::proto::udp`]: t1 the earliest realtime of the monotonic read
//! before the first send, t4 the kernel's receive stamp where it fits.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::reply;
use super::request::{Family, Sent};
use crate::core::sample::{Outcome, QuerySettings, Sample, SourceError};
use crate::os::clock::Clock;
use crate::proto::udp::Exchange;

/// Receive buffer. Replies must not be larger than the 1,024-byte request
/// (the drafts' amplification rule); a longer datagram is cut and fails to verify.
const RECV_BUF: usize = 2048;

/// Queries `host:port`, verifying replies with the long-term key `key`.
///
/// Makes `settings.samples` exchanges (at least one), `settings.sample_interval`
/// apart, rotating through the resolved addresses, and keeps the sample with
/// the smallest uncertainty. Each exchange waits at most `settings.timeout`.
/// A reply that fails verification ends the query with that failure: it is
/// never outweighed by another exchange's success.
pub async fn query(
    host: &str,
    port: u16,
    key: &[u8; 32],
    settings: &QuerySettings,
    clock: &dyn Clock,
) -> Outcome {
    let addrs =
        match tokio::time::timeout(settings.timeout, crate::proto::source::resolve(host, port))
            .await
        {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => return Outcome::from_result(Err(e)),
            Err(_) => {
                return Outcome::from_result(Err(SourceError::Resolve(format!(
                    "{host}: no answer within {}",
                    crate::core::duration::human_duration(settings.timeout.as_secs_f64())
                ))))
            }
        };
    let max_error = settings.max_source_error.as_secs_f64();
    let mut best: Option<Sample> = None;
    let mut last_err = None;
    for i in 0..settings.samples.max(1) {
        if i > 0 {
            tokio::time::sleep(settings.sample_interval).await;
        }
        let addr = addrs[i as usize % addrs.len()];
        match exchange(addr, key, settings.timeout, max_error, clock).await {
            Ok(s) => {
                debug!(%addr, offset = s.offset, uncertainty = s.uncertainty, rtt = s.rtt, "roughtime sample");
                if best.is_none_or(|b| s.uncertainty < b.uncertainty) {
                    best = Some(s);
                }
            }
            Err(e @ SourceError::Verification(_)) => {
                debug!(%addr, error = %e, "roughtime reply failed verification");
                return Outcome::from_result(Err(e));
            }
            Err(e) => {
                debug!(%addr, error = %e, "roughtime exchange failed");
                last_err = Some(e);
            }
        }
    }
    Outcome::from_result(match (best, last_err) {
        (Some(s), _) => Ok(s),
        (None, Some(e)) => Err(e),
        (None, None) => Err(SourceError::Timeout(settings.timeout)),
    })
}

/// One exchange with `addr`: both requests out, the first reply for one of
/// them verified, within `timeout`.
async fn exchange(
    addr: SocketAddr,
    key: &[u8; 32],
    timeout: Duration,
    max_error: f64,
    clock: &dyn Clock,
) -> Result<Sample, SourceError> {
    let deadline = Instant::now() + timeout;
    let mut sent: Vec<Sent> = Vec::new();
    for family in Family::SENT {
        let mut nonce = vec![0u8; family.nonce_len()];
        getrandom::fill(&mut nonce).map_err(|e| SourceError::Io(format!("random nonce: {e}")))?;
        sent.push(Sent::new(family, &nonce));
    }
    let mut udp = Exchange::open(addr, "Roughtime", clock)?;
    let requests: Vec<&[u8]> = sent.iter().map(|r| &r.bytes[..]).collect();
    let t1 = udp.send(&requests)?;

    let mut buf = vec![0u8; RECV_BUF];
    let mut stray: Option<String> = None;
    loop {
        let Some((len, t4)) = udp.recv(&mut buf, deadline).await? else {
            return Err(match stray {
                Some(why) => SourceError::Verification(why),
                None => SourceError::Timeout(timeout),
            });
        };
        let data = &buf[..len.min(RECV_BUF)];
        let claimed = reply::claimed_nonce(data);
        let Some(request) = sent.iter().find(|r| Some(&r.nonce[..]) == claimed) else {
            debug!(%addr, len, "ignoring a datagram that answers none of this exchange's requests");
            stray = Some(
                "the only reply answers none of this exchange's nonces (replayed, forged or corrupted)"
                    .into(),
            );
            continue;
        };
        let verified = reply::verify(data, key, request)?;
        debug!(%addr, version = verified.version.name(), radius = verified.radius, "roughtime reply verified");
        return reply::sample(&verified, t1, t4, max_error);
    }
}
