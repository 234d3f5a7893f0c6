//! NTS (RFC 8915): authenticated NTP. The key exchange records ([`ke`]) and
//! the NTP extension fields with their AEAD ([`ext`]) are pure codecs; the
//! [`client`] does the TLS 1.3 key exchange and the UDP exchange around them,
//! reusing the NTP header codec and checks of [`crate::proto::ntp::packet`].

pub mod client;
pub mod ext;
pub mod ke;
