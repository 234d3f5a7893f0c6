//! SNTPv4 client (RFC 5905 / RFC 4330 client mode).

pub mod client;
pub mod packet;
