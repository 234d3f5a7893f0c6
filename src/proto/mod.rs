//! The time protocols, one folder each, over one TLS set-up ([`tls`]).

pub mod http_date;
pub mod ntp;
pub mod nts;
pub mod tls;
