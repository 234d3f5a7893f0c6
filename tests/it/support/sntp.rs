//! A minimal SNTP client, to know when a peer is up and what it serves.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What an NTP server answered to one client query.
#[derive(Debug, Clone, Copy)]
pub struct SntpReply {
    /// Leap indicator (3: unsynchronised).
    pub leap: u8,
    /// Stratum (0: kiss-o'-death or unspecified).
    pub stratum: u8,
    /// Reference minus local, in seconds (RFC 5905 on-wire offset).
    pub offset: f64,
    /// Round-trip delay, in seconds.
    pub delay: f64,
}

/// Sends one SNTPv4 client request to `addr` and waits at most `timeout` for the
/// reply to it.
pub fn sntp_query(addr: SocketAddr, timeout: Duration) -> Result<SntpReply, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    socket.connect(addr).map_err(|e| format!("connect: {e}"))?;
    let mut request = [0u8; 48];
    request[0] = 0x23; // LI 0, version 4, mode 3 (client)
    let t1 = SystemTime::now();
    let t1_ntp = to_ntp(t1);
    request[40..48].copy_from_slice(&t1_ntp.to_be_bytes());
    socket.send(&request).map_err(|e| format!("send: {e}"))?;

    let deadline = Instant::now() + timeout;
    let mut reply = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no reply within {timeout:?}"));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = socket.recv(&mut reply).map_err(|e| format!("recv: {e}"))?;
        let t4 = SystemTime::now();
        // Mode 4 (server) answering our transmit timestamp; anything else is stray.
        if n < 48 || reply[0] & 0x7 != 4 || reply[24..32] != t1_ntp.to_be_bytes() {
            continue;
        }
        let stamp = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&reply[i..i + 8]);
            from_ntp(u64::from_be_bytes(b))
        };
        let (t1, t2, t3, t4) = (unix_secs(t1), stamp(32), stamp(40), unix_secs(t4));
        return Ok(SntpReply {
            leap: reply[0] >> 6,
            stratum: reply[1],
            offset: ((t2 - t1) + (t3 - t4)) / 2.0,
            delay: (t4 - t1) - (t3 - t2),
        });
    }
}

const NTP_UNIX_DELTA: u64 = 2_208_988_800;

pub(super) fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn to_ntp(t: SystemTime) -> u64 {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() + NTP_UNIX_DELTA;
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

fn from_ntp(stamp: u64) -> f64 {
    let secs = (stamp >> 32) as f64 - NTP_UNIX_DELTA as f64;
    secs + (stamp & 0xffff_ffff) as f64 / 4_294_967_296.0
}
