//! A user-space UDP relay with faults, for paths that `tc netem` would give
//! (and this kernel lacks): per-direction delay, jitter, loss, duplication and
//! reordering, plus two attacks that an on-path host can make on NTP: a forged
//! reply (wrong origin) sent ahead of the genuine one, and the replay of an
//! earlier genuine reply to a later query.
//!
//! ```text
//!   client ──▶ 127.0.0.1:PORT (front) ──out path──▶ session socket ──▶ target
//!   client ◀── front ◀──back path── session socket ◀── target
//! ```
//!
//! Each client address gets its own session socket towards the target (as a NAT
//! would), so every reply goes back to the client whose request caused it, from
//! the address the client sent to. Threads and `std` only; everything stops
//! when the [`Relay`] is dropped.
#![allow(dead_code)]

use std::collections::{BinaryHeap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::Port;

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Offset of the NTP origin timestamp in a packet.
const ORIGIN: std::ops::Range<usize> = 24..32;
/// Offsets of the receive and transmit timestamps' seconds fields.
const RECEIVE_SECS: std::ops::Range<usize> = 32..36;
const TRANSMIT_SECS: std::ops::Range<usize> = 40..44;

/// Faults of one direction of the path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay, uniform in `[0, jitter]`, drawn per datagram.
    pub jitter: Duration,
    /// Probability that a datagram is dropped.
    pub loss: f64,
    /// Probability that a datagram is sent twice (the copy up to `jitter` + 5 ms later).
    pub duplicate: f64,
    /// Probability that a datagram is held back until the next one of this
    /// direction has gone out (hold-and-swap), or at most [`Path::hold`].
    pub reorder: f64,
    /// Longest hold of a reordered datagram when nothing follows it.
    pub hold: Duration,
}

impl Path {
    /// A path that only delays, by `ms` milliseconds.
    pub fn delay_ms(ms: u64) -> Path {
        Path {
            delay: Duration::from_millis(ms),
            ..Path::default()
        }
    }
}

/// Everything the relay does to the traffic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Client to target.
    pub out: Path,
    /// Target to client.
    pub back: Path,
    /// Before each genuine reply: a forged reply (origin changed, clock 500 s
    /// later) and a forged RATE Kiss-o'-Death (origin changed), both from the
    /// relay's address, i.e. from the address the client queried.
    pub forge: bool,
    /// On each new request: send the client the last genuine reply of an
    /// earlier exchange at once (a replay to a later query), before forwarding.
    pub replay: bool,
    /// Flip the lowest bit of this byte (counted from the start; the last
    /// byte if the datagram is shorter) of every genuine reply, as passed on.
    pub flip: Option<usize>,
    /// Seed of the fault decisions; 0 takes one from the clock. The seed used is
    /// in [`Relay::seed`] so a failure can be reproduced.
    pub seed: u64,
}

/// What the relay did so far.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests received from clients.
    pub requests: AtomicU64,
    /// Replies received from the target.
    pub replies: AtomicU64,
    /// Datagrams dropped (either direction).
    pub lost: AtomicU64,
    /// Extra copies sent (either direction).
    pub duplicated: AtomicU64,
    /// Datagrams held back for a swap (either direction).
    pub reordered: AtomicU64,
    /// Forged datagrams sent.
    pub forged: AtomicU64,
    /// Earlier replies replayed to later queries.
    pub replayed: AtomicU64,
    /// Datagrams delivered to the client (genuine, copies and injected ones).
    pub delivered: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write!(
            f,
            "requests {}, replies {}, lost {}, duplicated {}, reordered {}, forged {}, replayed {}, delivered {}",
            g(&self.requests),
            g(&self.replies),
            g(&self.lost),
            g(&self.duplicated),
            g(&self.reordered),
            g(&self.forged),
            g(&self.replayed),
            g(&self.delivered),
        )
    }
}

/// A running relay from `127.0.0.1:PORT` to a target.
pub struct Relay {
    port: Port,
    seed: u64,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying datagrams sent to a fresh loopback port to `target`.
    pub fn start(target: SocketAddr, faults: Faults) -> Relay {
        let port = Port::free();
        let front = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], port.number())))
            .unwrap_or_else(|e| panic!("relay: bind 127.0.0.1:{}: {e}", port.number()));
        front.set_read_timeout(Some(POLL)).expect("relay: timeout");
        let front = Arc::new(front);
        let seed = if faults.seed != 0 {
            faults.seed
        } else {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                ^ u64::from(port.number()) << 48
                | 1
        };
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let scheduler = {
            let stop = stop.clone();
            let stats = stats.clone();
            let holds = [faults.out.hold, faults.back.hold];
            thread::spawn(move || schedule(rx, holds, &stop, &stats))
        };
        let shared = Shared {
            faults,
            front: front.clone(),
            rng: Mutex::new(Rng(seed)),
            stats: stats.clone(),
            stop: stop.clone(),
            tx,
            last_reply: Mutex::new(None),
        };
        let front_thread = thread::spawn(move || accept(Arc::new(shared), target));
        Relay {
            port,
            seed,
            stats,
            stop,
            threads: vec![scheduler, front_thread],
        }
    }

    /// The port clients send to.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// `ntp://127.0.0.1:PORT`: the target as seen through the relay.
    pub fn uri(&self) -> String {
        self.port.ntp_uri()
    }

    /// The seed of the fault decisions.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// What the relay did so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// Internals

/// A tiny deterministic generator (splitmix64): the same seed gives the same
/// sequence of fault decisions for the same sequence of datagrams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    fn upto(&mut self, max: Duration) -> Duration {
        max.mul_f64(self.unit())
    }
}

/// Direction of a datagram, as an index into per-direction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Out = 0,
    Back = 1,
}

/// One datagram waiting to go out.
struct Item {
    due: Instant,
    seq: u64,
    dir: Dir,
    /// Held back for a swap when it falls due.
    hold: bool,
    via: Arc<UdpSocket>,
    to: SocketAddr,
    data: Vec<u8>,
}

// Earliest due first, then in the order scheduled.
impl Ord for Item {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}
impl PartialOrd for Item {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Item {}

struct Shared {
    faults: Faults,
    front: Arc<UdpSocket>,
    rng: Mutex<Rng>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    tx: Sender<Item>,
    /// The last genuine reply from the target and the client it was for.
    last_reply: Mutex<Option<(SocketAddr, Vec<u8>)>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends `data` now-ish, ahead of anything scheduled later.
    fn inject(&self, via: &Arc<UdpSocket>, to: SocketAddr, data: Vec<u8>) {
        self.send_item(Item {
            due: Instant::now(),
            seq: 0,
            dir: Dir::Back,
            hold: false,
            via: via.clone(),
            to,
            data,
        });
    }

    /// Applies the faults of `path` to one datagram and schedules what survives.
    fn pass(&self, dir: Dir, via: &Arc<UdpSocket>, to: SocketAddr, data: Vec<u8>) {
        let path = match dir {
            Dir::Out => self.faults.out,
            Dir::Back => self.faults.back,
        };
        let now = Instant::now();
        let (lost, due, hold, copy) = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let lost = rng.chance(path.loss);
            let due = now + path.delay + rng.upto(path.jitter);
            let hold = rng.chance(path.reorder);
            let copy = rng
                .chance(path.duplicate)
                .then(|| due + Duration::from_millis(5) + rng.upto(path.jitter));
            (lost, due, hold, copy)
        };
        if lost {
            Stats::bump(&self.stats.lost);
            return;
        }
        if let Some(copy_due) = copy {
            Stats::bump(&self.stats.duplicated);
            self.send_item(Item {
                due: copy_due,
                seq: 0,
                dir,
                hold: false,
                via: via.clone(),
                to,
                data: data.clone(),
            });
        }
        self.send_item(Item {
            due,
            seq: 0,
            dir,
            hold,
            via: via.clone(),
            to,
            data,
        });
    }

    fn send_item(&self, mut item: Item) {
        static SEQ: AtomicU64 = AtomicU64::new(1);
        item.seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(item);
    }
}

/// The front thread: takes requests from clients and opens sessions.
fn accept(shared: Arc<Shared>, target: SocketAddr) {
    let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut threads = Vec::new();
    let mut buf = [0u8; 2048];
    while !shared.stopped() {
        let (n, client) = match shared.front.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue, // read timeout: look at the stop flag
        };
        Stats::bump(&shared.stats.requests);
        let session = match sessions.get(&client) {
            Some(s) => s.clone(),
            None => {
                let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
                    continue;
                };
                let _ = sock.set_read_timeout(Some(POLL));
                let sock = Arc::new(sock);
                sessions.insert(client, sock.clone());
                let (shared, sock2) = (shared.clone(), sock.clone());
                threads.push(thread::spawn(move || {
                    relay_replies(&shared, &sock2, client, target)
                }));
                sock
            }
        };
        if shared.faults.replay {
            let earlier = shared
                .last_reply
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some((_, data)) = earlier.filter(|(for_client, _)| *for_client != client) {
                Stats::bump(&shared.stats.replayed);
                shared.inject(&shared.front, client, data);
            }
        }
        shared.pass(Dir::Out, &session, target, buf[..n].to_vec());
    }
    for t in threads {
        let _ = t.join();
    }
}

/// A session thread: takes the target's replies for one client.
fn relay_replies(shared: &Shared, sock: &UdpSocket, client: SocketAddr, target: SocketAddr) {
    let mut buf = [0u8; 2048];
    while !shared.stopped() {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue,
        };
        if from != target {
            continue;
        }
        Stats::bump(&shared.stats.replies);
        let data = buf[..n].to_vec();
        if shared.faults.forge && n >= 48 {
            for forged in forgeries(&data) {
                Stats::bump(&shared.stats.forged);
                shared.inject(&shared.front, client, forged);
            }
        }
        *shared.last_reply.lock().unwrap_or_else(|e| e.into_inner()) = Some((client, data.clone()));
        let mut data = data;
        if let (Some(at), Some(last)) = (shared.faults.flip, data.len().checked_sub(1)) {
            data[at.min(last)] ^= 0x01;
        }
        shared.pass(Dir::Back, &shared.front, client, data);
    }
}

/// Two forgeries of a genuine reply that a client must ignore: the same reply
/// with a wrong origin and a clock 500 s later (accepted, it would move the
/// offset by 500 s), and a RATE Kiss-o'-Death with a wrong origin (obeyed, it
/// would end the query).
fn forgeries(genuine: &[u8]) -> Vec<Vec<u8>> {
    let mut wrong = genuine.to_vec();
    wrong[ORIGIN.end - 1] ^= 0x01;
    for secs in [RECEIVE_SECS, TRANSMIT_SECS] {
        let mut b = [0u8; 4];
        b.copy_from_slice(&wrong[secs.clone()]);
        let later = u32::from_be_bytes(b).wrapping_add(500);
        wrong[secs].copy_from_slice(&later.to_be_bytes());
    }
    let mut kiss = genuine.to_vec();
    kiss[ORIGIN.end - 1] ^= 0x01;
    kiss[0] = 0xe4; // LI 3, version 4, mode 4
    kiss[1] = 0; // stratum 0: Kiss-o'-Death
    kiss[2] = 17; // poll 2^17 s
    kiss[12..16].copy_from_slice(b"RATE");
    vec![wrong, kiss]
}

/// The scheduler thread: sends each datagram when it falls due; a datagram
/// marked `hold` waits until the next datagram of its direction has gone out
/// (or `holds[dir]` has passed) and then follows it.
fn schedule(rx: Receiver<Item>, holds: [Duration; 2], stop: &AtomicBool, stats: &Stats) {
    let mut queue: BinaryHeap<Item> = BinaryHeap::new();
    let mut held: [Option<(Instant, Item)>; 2] = [None, None];
    let send = |item: &Item| {
        if item.via.send_to(&item.data, item.to).is_ok() && item.dir == Dir::Back {
            Stats::bump(&stats.delivered);
        }
    };
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        // Held datagrams nobody overtook within their hold time.
        for slot in held.iter_mut() {
            if slot.as_ref().is_some_and(|(until, _)| *until <= now) {
                if let Some((_, item)) = slot.take() {
                    send(&item);
                }
            }
        }
        while queue.peek().is_some_and(|i| i.due <= now) {
            let Some(item) = queue.pop() else { break };
            let d = item.dir as usize;
            if item.hold && held[d].is_none() {
                Stats::bump(&stats.reordered);
                held[d] = Some((now + holds[d].max(POLL), item));
                continue;
            }
            send(&item);
            if let Some((_, overtaken)) = held[d].take() {
                send(&overtaken);
            }
        }
        let next = queue
            .peek()
            .map(|i| i.due)
            .into_iter()
            .chain(held.iter().flatten().map(|(until, _)| *until))
            .min();
        let wait = next
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(POLL)
            .min(POLL);
        match rx.recv_timeout(wait) {
            Ok(item) => queue.push(item),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if queue.is_empty() && held.iter().all(Option::is_none) {
                    return;
                }
                thread::sleep(wait);
            }
        }
        // Take whatever else arrived meanwhile without waiting.
        while let Ok(item) = rx.try_recv() {
            queue.push(item);
        }
    }
}
