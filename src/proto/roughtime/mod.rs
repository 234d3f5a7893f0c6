//! Roughtime (draft-ietf-ntp-roughtime): time signed by a server whose
//! long-term Ed25519 key is pinned in the source URI, with a client nonce and
//! a midpoint ± radius. Nothing in it depends on the local clock being right
//! (no certificate dates), so its samples are clock-independent.
//!
//! [`message`] (tags, encoding, framing), [`request`] (versions and requests)
//! and [`reply`] (verification, the sample) are pure; [`client`] moves the
//! datagrams. [`key`] reads the pinned key as the URI gives it.

pub mod client;
pub mod key;
pub mod message;
pub mod reply;
pub mod request;
