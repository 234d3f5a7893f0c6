//! `http_date`: response headers from a hostile server, and the local times
//! that bracket the requests.
//!
//! Input layout (so that seeds are readable header blocks):
//!
//! ```text
//! Name: value\r\n       header lines, up to the first NUL byte; lines without
//! Name: value\r\n       a `:` or with bytes HTTP forbids are skipped
//! \0 <bytes>            optional: drives the timings below through `arbitrary`
//! ```

use std::time::{Duration, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use http::header::{HeaderMap, HeaderName, HeaderValue, AGE, DATE};
use skewguard::os::clock::NANOS_PER_SEC;
use skewguard::proto::http_date::interval::{DATE_LAG_ALLOWANCE, DATE_LEAD_ALLOWANCE, MAX_ANSWERS};
use skewguard::proto::http_date::{read_date, Answer, OffsetInterval, Refiner};

use crate::assert_printable;

/// Local times are i64 nanoseconds (±292 years around 1970): what a clock
/// reading can be. The math works in i128, so sums of these cannot overflow.
type Nanos = i64;

/// One step of a refinement driven by the input.
#[derive(Arbitrary, Debug)]
enum Step {
    /// Ask for the next send time, no earlier than this.
    NextSend(Nanos),
    /// An answer from a server that may lie: any `Date`, any T1, any T4.
    Answer {
        date: i64,
        sent: Nanos,
        received: Nanos,
    },
}

#[derive(Arbitrary, Debug)]
struct Timing {
    /// T1 and T4 of the first request, whose `Date` is the header's.
    sent: Nanos,
    received: Nanos,
    /// Two intervals built directly, for the set operations.
    a: (Nanos, Nanos),
    b: (Nanos, Nanos),
    /// A lying server's refinement.
    steps: Vec<Step>,
    /// An honest server: its clock is `theta` ahead of ours, and it reads it
    /// at `stamp_at` / 2^16 of the way through each request.
    theta: i64,
    rtt: u32,
    stamp_at: u16,
    lags: Vec<u32>,
}

/// Checks every property for one input.
pub fn check(data: &[u8]) {
    let (head, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let headers = header_map(head);
    let date = check_read_date(&headers);

    let Ok(t) = Timing::arbitrary(&mut Unstructured::new(rest)) else {
        return;
    };
    check_sets(t.a, t.b);
    // The header's date when there is one, else an arbitrary one.
    let first_date = date.unwrap_or(t.theta);
    check_lying_server(first_date, &t);
    check_honest_server(&t);
}

fn header_map(head: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

/// `read_date`: a date only from a cache-free head with one distinct `Date`,
/// and the date it returns is the one the header says.
fn check_read_date(headers: &HeaderMap) -> Option<i64> {
    match read_date(headers) {
        Ok(secs) => {
            assert!(secs >= 0, "{secs}");
            // Only `Age: 0` (a cache miss: the origin's fresh Date) may pass.
            for age in headers.get_all(AGE) {
                let zero = age.to_str().is_ok_and(|a| a.trim().parse() == Ok(0u64));
                assert!(zero, "accepted a cached response (Age {age:?})");
            }
            let first = headers.get(DATE).expect("a date without a Date header");
            assert!(headers.get_all(DATE).iter().all(|d| d == first));
            // The IMF-fixdate of the same second reads back to it.
            let time = UNIX_EPOCH + Duration::from_secs(secs as u64);
            let mut again = HeaderMap::new();
            let text = httpdate::fmt_http_date(time);
            again.insert(
                DATE,
                HeaderValue::from_str(&text).expect("a valid header value"),
            );
            assert_eq!(read_date(&again), Ok(secs), "{text}");
            Some(secs)
        }
        Err(e) => {
            // Messages quote what the server sent: escaped, and cut short.
            let msg = e.to_string();
            assert_printable(&msg);
            assert!(msg.chars().count() < 400, "{} chars", msg.chars().count());
            None
        }
    }
}

fn interval(lo: Nanos, hi: Nanos) -> Option<OffsetInterval> {
    OffsetInterval::new(lo.into(), hi.into())
}

fn check_well_formed(i: &OffsetInterval) {
    assert!(i.lo() <= i.hi(), "{i:?}");
    assert!(i.width() >= 0, "{i:?}");
    assert!(i.midpoint_secs().is_finite(), "{i:?}");
    let h = i.half_width_secs();
    assert!(h.is_finite() && h >= 0.0, "{i:?}");
}

/// `intersect` and `gap`: never wider than either input, inside both, and
/// exactly one of them exists for any two intervals.
fn check_sets(a: (Nanos, Nanos), b: (Nanos, Nanos)) {
    assert_eq!(interval(a.0, a.1).is_some(), a.0 <= a.1);
    let (Some(x), Some(y)) = (
        interval(a.0.min(a.1), a.0.max(a.1)),
        interval(b.0.min(b.1), b.0.max(b.1)),
    ) else {
        unreachable!("ordered bounds always make an interval");
    };
    check_well_formed(&x);
    assert!(x.contains(x.lo()) && x.contains(x.hi()));
    let meet = x.intersect(&y);
    assert_eq!(meet, y.intersect(&x));
    let gap = x.gap(&y);
    assert_eq!(gap, y.gap(&x));
    assert_ne!(
        meet.is_some(),
        gap.is_some(),
        "{x:?} {y:?}: {meet:?} {gap:?}"
    );
    if let Some(m) = meet {
        check_well_formed(&m);
        assert!(
            m.width() <= x.width() && m.width() <= y.width(),
            "{x:?} ∩ {y:?} = {m:?}"
        );
        for i in [x, y] {
            assert!(
                i.contains(m.lo()) && i.contains(m.hi()),
                "{x:?} ∩ {y:?} = {m:?}"
            );
        }
    }
    if let Some(g) = gap {
        check_well_formed(&g);
        // The gap lies between the two: it touches each at one end only.
        assert!(g.width() > 0);
        assert!([x, y]
            .iter()
            .all(|i| i.contains(g.lo()) != i.contains(g.hi())));
    }
}

fn answer(date: i64, sent: Nanos, received: Nanos) -> Answer {
    Answer {
        date,
        sent: sent.into(),
        received: received.into(),
    }
}

fn check_answer(a: &Answer) {
    assert!(a.rtt() >= 0);
    let i = a.interval();
    check_well_formed(&i);
    // One second for the Date's resolution, plus the round trip.
    assert_eq!(i.width(), NANOS_PER_SEC + a.rtt(), "{a:?}");
}

fn check_refiner(r: &Refiner) {
    check_well_formed(&r.interval());
    assert!(r.rtt() >= 0);
    assert!(r.answers() >= 1);
    // A refiner that accepted every answer has an honest interval.
    let s = r.sample().expect("accepted answers are consistent");
    assert!(s.offset.is_finite(), "{s:?}");
    assert!(s.uncertainty.is_finite() && s.uncertainty >= 0.0, "{s:?}");
    assert!(s.rtt.is_finite() && s.rtt >= 0.0, "{s:?}");
    let e = s.estimate.expect("an HTTP sample carries its estimate");
    assert!(e.offset.is_finite() && e.uncertainty >= 0.0, "{e:?}");
    let h = r.honest().expect("consistent");
    check_well_formed(&h);
}

/// Whatever the answers, the refiner's interval stays well formed and never
/// grows except into a gap within the tolerance, it asks for a request
/// within a second of the earliest time offered, and it voids the
/// measurement exactly when two of the answers are farther apart than the
/// allowances.
fn check_lying_server(date: i64, t: &Timing) {
    let first = answer(date, t.sent, t.received);
    check_answer(&first);
    let mut r = Refiner::new(first);
    // The plain intersection of every answer so far: largest lo, smallest hi.
    let (mut all_lo, mut all_hi) = (first.interval().lo(), first.interval().hi());
    check_refiner(&r);
    for step in &t.steps {
        match *step {
            Step::NextSend(earliest) => {
                let earliest = i128::from(earliest);
                let done = r.is_done();
                if let Some(at) = r.next_send(earliest) {
                    assert!(!done, "a request after the refiner said it was done");
                    assert!(
                        earliest <= at && at < earliest + NANOS_PER_SEC,
                        "{at} for {earliest}"
                    );
                }
                if r.answers() >= MAX_ANSWERS {
                    assert!(r.is_done());
                }
            }
            Step::Answer {
                date,
                sent,
                received,
            } => {
                let a = answer(date, sent, received);
                check_answer(&a);
                let before = r.interval();
                let ai = a.interval();
                let meet = before.intersect(&ai);
                all_lo = all_lo.max(ai.lo());
                all_hi = all_hi.min(ai.hi());
                // Intervals on a line: some two answers are `all_lo − all_hi`
                // apart (the one with the largest lo and the one with the
                // smallest hi), and none farther.
                let excess = all_lo - all_hi - (DATE_LAG_ALLOWANCE + DATE_LEAD_ALLOWANCE);
                match r.add(a) {
                    Ok(()) => match meet {
                        _ if excess > 0 => panic!("answers {excess} ns beyond the allowances kept"),
                        Some(m) => assert_eq!(r.interval(), m),
                        None => {
                            // A miss keeps the hull as the estimate: each answer's truth stays inside.
                            assert_eq!(r.interval(), before.hull(&ai));
                            assert!(r.is_done(), "refinement goes on after a gap");
                        }
                    },
                    Err(e) => {
                        // Only a contradiction beyond the allowances voids it,
                        // between *any* two answers: after a miss the estimate
                        // is the hull of two answers, so a later answer can lie
                        // inside it and still be far from one of them (the
                        // property once asked `before` and the answer not to
                        // meet, which the rule never promised).
                        assert!(e.gap > 0, "{e:?}");
                        assert_eq!(e.gap, excess, "{e:?}");
                        assert_printable(&e.to_string());
                        // A failed answer leaves the estimate as it was; the
                        // measurement is void, so nothing else is checked.
                        assert_eq!(r.interval(), before);
                        return;
                    }
                }
            }
        }
        check_refiner(&r);
    }
}

/// The soundness claim of the module: for a server whose clock is `theta`
/// ahead and which truncates its reading to the second, at whatever instants
/// the requests go out, every answer is consistent and the interval holds
/// `theta`.
fn check_honest_server(t: &Timing) {
    let theta = i128::from(t.theta);
    let rtt = i128::from(t.rtt);
    let server = |sent: i128| -> Answer {
        let read = sent + rtt * i128::from(t.stamp_at) / 65_535 + theta;
        Answer {
            date: read.div_euclid(NANOS_PER_SEC) as i64,
            sent,
            received: sent + rtt,
        }
    };
    let first = server(t.sent.into());
    assert!(first.interval().contains(theta), "{first:?} misses {theta}");
    let mut r = Refiner::new(first);
    let mut now = first.received;
    for &lag in &t.lags {
        let Some(at) = r.next_send(now) else { break };
        let a = server(at + i128::from(lag));
        assert!(a.interval().contains(theta), "{a:?} misses {theta}");
        r.add(a)
            .unwrap_or_else(|e| panic!("honest answer {a:?} called {e}"));
        assert!(
            r.interval().contains(theta),
            "{:?} misses {theta}",
            r.interval()
        );
        now = a.received;
    }
    check_refiner(&r);
    check_cached_server(t);
}

/// The honest interval's claim: a server whose `Date` lags its clock (a
/// cache) or leads it (rounding) by any amount within the allowances, a
/// different amount for each answer, still has `theta` inside the honest
/// interval, though the narrow estimate may miss it.
fn check_cached_server(t: &Timing) {
    let theta = i128::from(t.theta);
    let rtt = i128::from(t.rtt);
    let span = DATE_LAG_ALLOWANCE + DATE_LEAD_ALLOWANCE + 1;
    let server = |sent: i128, lag: u32| -> Answer {
        let read = sent + rtt * i128::from(t.stamp_at) / 65_535 + theta;
        // a ∈ [−lead, lag]: D = ⌊read − a⌋.
        let a = (i128::from(lag) * 4_409) % span - DATE_LEAD_ALLOWANCE;
        Answer {
            date: (read - a).div_euclid(NANOS_PER_SEC) as i64,
            sent,
            received: sent + rtt,
        }
    };
    let first = server(t.sent.into(), t.stamp_at.into());
    let mut r = Refiner::new(first);
    let mut now = first.received;
    for &lag in &t.lags {
        let Some(at) = r.next_send(now) else { break };
        let a = server(at, lag);
        r.add(a)
            .unwrap_or_else(|e| panic!("cached answer {a:?} called {e}"));
        now = a.received;
    }
    let h = r.honest().expect("consistent");
    assert!(h.contains(theta), "{h:?} misses {theta}");
}
