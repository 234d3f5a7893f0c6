//! Combining sources: the largest set of measurements that share a common
//! offset (Marzullo's algorithm, the core of NTP's selection), whether it
//! is a majority, and which rung of the trust ladder may decide ([`select_trusted`]).

use crate::core::sample::Trust;

/// One source's measurement as an interval `[offset − uncertainty, offset + uncertainty]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Centre of the interval, seconds (reference minus local).
    pub offset: f64,
    /// Half-width, seconds (≥ 0).
    pub uncertainty: f64,
}

impl Interval {
    fn lo(&self) -> f64 {
        self.offset - self.uncertainty.max(0.0)
    }
    fn hi(&self) -> f64 {
        self.offset + self.uncertainty.max(0.0)
    }
}

/// The outcome of selection over the sources that answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// A strict majority agrees; `members` are their indices (the rest are falsetickers).
    Agreed {
        /// Indices of the intervals in the agreeing set (truechimers).
        members: Vec<usize>,
        /// Centre of the region the agreeing set has in common.
        offset: f64,
        /// Half-width of that region.
        uncertainty: f64,
    },
    /// No agreeing set is a strict majority, or it is smaller than required.
    NoMajority {
        /// Size of the largest agreeing set.
        largest: usize,
        /// How many intervals were given.
        answered: usize,
    },
    /// Nothing answered.
    NoSources,
}

/// Finds the largest set of intervals with a common point and decides
/// whether it may speak for the clock.
///
/// The set must hold a strict majority of `intervals` and at least
/// `min_sources` members. Where several disjoint regions are covered by the
/// same largest number of intervals, the result spans all of them, so the
/// reported interval still holds the truth whichever region it is in.
/// Non-finite intervals are ignored (they cannot come from a valid reply).
pub fn select(intervals: &[Interval], min_sources: usize) -> Selection {
    let valid: Vec<usize> = (0..intervals.len())
        .filter(|&i| intervals[i].offset.is_finite() && intervals[i].uncertainty.is_finite())
        .collect();
    if valid.is_empty() {
        return Selection::NoSources;
    }
    // Endpoints; at equal values a start sorts before an end (closed intervals touch).
    let mut edges: Vec<(f64, i32)> = Vec::with_capacity(valid.len() * 2);
    for &i in &valid {
        edges.push((intervals[i].lo(), 1));
        edges.push((intervals[i].hi(), -1));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut count = 0i32;
    let mut best = 0i32;
    let mut regions: Vec<(f64, f64)> = Vec::new();
    for (k, &(x, d)) in edges.iter().enumerate() {
        count += d;
        if d == 1 {
            let end = edges[k + 1..]
                .iter()
                .find(|e| e.1 == -1)
                .map(|e| e.0)
                .unwrap_or(x);
            if count > best {
                best = count;
                regions.clear();
                regions.push((x, end));
            } else if count == best {
                regions.push((x, end));
            }
        }
    }
    let largest = best as usize;
    let answered = valid.len();
    if largest * 2 <= answered || largest < min_sources.max(1) {
        return Selection::NoMajority { largest, answered };
    }
    let lo = regions.iter().map(|r| r.0).fold(f64::INFINITY, f64::min);
    let hi = regions
        .iter()
        .map(|r| r.1)
        .fold(f64::NEG_INFINITY, f64::max);
    let members = valid
        .into_iter()
        .filter(|&i| {
            regions
                .iter()
                .any(|&(a, b)| intervals[i].lo() <= b && intervals[i].hi() >= a)
        })
        .collect();
    Selection::Agreed {
        members,
        offset: (lo + hi) / 2.0,
        uncertainty: (hi - lo) / 2.0,
    }
}

/// How authenticated and unauthenticated sources share the vote
/// (`SKEWGUARD_AUTH_SELECT`; chrony's `authselectmode` is the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthSelect {
    /// When an authenticated source answered, the authenticated ones vote
    /// alone; unauthenticated ones may only narrow their result.
    #[default]
    Mix,
    /// Unauthenticated sources never decide.
    Require,
    /// One source, one vote, whatever its class.
    Ignore,
}

impl AuthSelect {
    /// The name used in configuration.
    pub fn name(self) -> &'static str {
        match self {
            AuthSelect::Mix => "mix",
            AuthSelect::Require => "require",
            AuthSelect::Ignore => "ignore",
        }
    }
}

/// One answered source as selection sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Its interval.
    pub interval: Interval,
    /// The rung of the trust ladder its answer stands on.
    pub trust: Trust,
}

/// Why the trust rules refused to give a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `require`: no authenticated source answered.
    NoAuthenticated,
    /// `mix`: no authenticated source answered, and one failed verification:
    /// the unauthenticated ones may not decide alone.
    VerificationFailed,
    /// Only date-exempted sources stood above the unauthenticated ones, and a
    /// majority of the sources that answered besides them contradict their
    /// result: an old key, or a broken server, against a possibly forged
    /// path; neither side decides.
    ExemptedContradicted,
}

/// The result of trust-aware selection.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustedSelection {
    /// The combined result; `members` index the candidates.
    pub selection: Selection,
    /// Set when the trust rules, not the intervals, withheld a result
    /// (`selection` is then [`Selection::NoSources`]).
    pub refused: Option<Refusal>,
    /// Only authenticated candidates (date-exempted ones included) voted;
    /// the others at most narrowed.
    pub authenticated_vote: bool,
    /// The rung whose candidates voted (`None` under `ignore`, where every
    /// candidate votes, and when nothing was selected from a rung).
    pub deciding: Option<Trust>,
    /// The deciding candidates agree on a region that a strict majority of the
    /// unauthenticated ones, agreeing among themselves, lies outside of: a
    /// possible attack on the unauthenticated path, or a broken one.
    pub disagreement: bool,
}

/// Selects under the trust rules of `mode`: the highest rung of the ladder
/// ([`Trust`]) that answered decides, the rungs below at most narrow.
///
/// - `Ignore`: [`select`] over every candidate.
/// - `Mix`: if an authenticated or clock-independent candidate answered,
///   [`select`] over those alone; each lower candidate that overlaps their
///   region joins (the region shrinks to the intersection with all of them,
///   where that is not empty), the others are left out as falsetickers.
///   Otherwise, if a date-exempted candidate answered, the same over the
///   date-exempted ones — unless a strict majority of the unauthenticated
///   candidates lies outside their region, which refuses
///   ([`Refusal::ExemptedContradicted`]). If none of those answered, the
///   unauthenticated ones vote as under `Ignore`, unless `verification_failed`
///   (an authenticated source failed to verify), which refuses.
/// - `Require`: as `Mix`, but unauthenticated candidates never narrow, and
///   without an authenticated answer the result is refused.
///
/// Whatever the lower rungs say, the result lies inside the region the
/// deciding rung gives alone (`Mix`, `Require`).
pub fn select_trusted(
    candidates: &[Candidate],
    min_sources: usize,
    mode: AuthSelect,
    verification_failed: bool,
) -> TrustedSelection {
    let all: Vec<Interval> = candidates.iter().map(|c| c.interval).collect();
    let rung = |keep: &dyn Fn(Trust) -> bool| -> Vec<usize> {
        (0..candidates.len())
            .filter(|&i| keep(candidates[i].trust))
            .collect()
    };
    let top = rung(&|t| t >= Trust::Authenticated);
    let exempted = rung(&|t| t == Trust::DateExempted);
    let plain = rung(&|t| t == Trust::Unauthenticated);
    let pick = |idx: &[usize]| -> Vec<Interval> { idx.iter().map(|&i| all[i]).collect() };
    let answered = |idx: &[usize]| idx.iter().any(|&i| finite(&all[i]));
    let plain_sel = remap(select(&pick(&plain), min_sources), &plain);
    // The rung that decides, and the candidates below it.
    let deciding = if answered(&top) {
        Some((
            Trust::Authenticated,
            top.clone(),
            [exempted.clone(), plain.clone()].concat(),
        ))
    } else if answered(&exempted) {
        Some((Trust::DateExempted, exempted.clone(), plain.clone()))
    } else {
        None
    };
    let decided = deciding
        .as_ref()
        .map(|(_, idx, _)| remap(select(&pick(idx), min_sources), idx));
    let disagreement = match (&decided, &plain_sel) {
        (
            Some(Selection::Agreed {
                offset: a,
                uncertainty: ua,
                ..
            }),
            Selection::Agreed {
                offset: p,
                uncertainty: up,
                ..
            },
        ) => (a - p).abs() > ua + up,
        _ => false,
    };
    let done = |selection, refused, deciding: Option<Trust>| TrustedSelection {
        selection,
        refused,
        authenticated_vote: deciding.is_some_and(Trust::authenticated),
        deciding,
        disagreement,
    };
    if mode == AuthSelect::Ignore {
        return done(select(&all, min_sources), None, None);
    }
    if let (Some((rung, _, below)), Some(decided)) = (deciding, decided) {
        if rung == Trust::DateExempted && contradicted(&decided, &all, &plain) {
            return done(
                Selection::NoSources,
                Some(Refusal::ExemptedContradicted),
                None,
            );
        }
        let narrow = mode == AuthSelect::Mix;
        return done(join_lower(decided, &all, &below, narrow), None, Some(rung));
    }
    match mode {
        AuthSelect::Require => done(Selection::NoSources, Some(Refusal::NoAuthenticated), None),
        _ if verification_failed && !plain.is_empty() => done(
            Selection::NoSources,
            Some(Refusal::VerificationFailed),
            None,
        ),
        _ => done(plain_sel, None, Some(Trust::Unauthenticated)),
    }
}

/// Whether a strict majority of the `others` that answered lie outside the
/// region `decided` agreed on (nothing agreed: nothing to contradict).
fn contradicted(decided: &Selection, all: &[Interval], others: &[usize]) -> bool {
    let Selection::Agreed {
        offset,
        uncertainty,
        ..
    } = decided
    else {
        return false;
    };
    let (lo, hi) = (offset - uncertainty, offset + uncertainty);
    let answered: Vec<&Interval> = others
        .iter()
        .map(|&i| &all[i])
        .filter(|i| finite(i))
        .collect();
    let outside = answered
        .iter()
        .filter(|i| i.hi() < lo || i.lo() > hi)
        .count();
    outside * 2 > answered.len()
}

fn finite(i: &Interval) -> bool {
    i.offset.is_finite() && i.uncertainty.is_finite()
}

/// Maps member indices of a selection over a subset back to the full list.
fn remap(sel: Selection, subset: &[usize]) -> Selection {
    match sel {
        Selection::Agreed {
            members,
            offset,
            uncertainty,
        } => Selection::Agreed {
            members: members.into_iter().map(|m| subset[m]).collect(),
            offset,
            uncertainty,
        },
        other => other,
    }
}

/// Adds the lower-rung candidates that overlap the deciding region as
/// members; with `narrow`, shrinks the region to their common part with it.
fn join_lower(auth: Selection, all: &[Interval], plain: &[usize], narrow: bool) -> Selection {
    let Selection::Agreed {
        mut members,
        offset,
        uncertainty,
    } = auth
    else {
        return auth;
    };
    let (mut lo, mut hi) = (offset - uncertainty, offset + uncertainty);
    let overlapping: Vec<usize> = plain
        .iter()
        .copied()
        .filter(|&i| finite(&all[i]) && all[i].lo() <= hi && all[i].hi() >= lo)
        .collect();
    if narrow {
        let nlo = overlapping.iter().map(|&i| all[i].lo()).fold(lo, f64::max);
        let nhi = overlapping.iter().map(|&i| all[i].hi()).fold(hi, f64::min);
        if nlo <= nhi {
            (lo, hi) = (nlo, nhi);
        }
    }
    members.extend(overlapping);
    members.sort_unstable();
    Selection::Agreed {
        members,
        offset: (lo + hi) / 2.0,
        uncertainty: (hi - lo) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn iv(offset: f64, uncertainty: f64) -> Interval {
        Interval {
            offset,
            uncertainty,
        }
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            input: Vec<Interval>,
            min: usize,
            members: Option<Vec<usize>>,
            centre: f64,
        }
        let cases = vec![
            Case {
                name: "one source",
                input: vec![iv(3.0, 0.1)],
                min: 1,
                members: Some(vec![0]),
                centre: 3.0,
            },
            Case {
                name: "one source, two required",
                input: vec![iv(3.0, 0.1)],
                min: 2,
                members: None,
                centre: 0.0,
            },
            Case {
                name: "falseticker 20 min ahead outvoted",
                input: vec![iv(0.0, 0.01), iv(0.001, 0.01), iv(1200.0, 0.01)],
                min: 1,
                members: Some(vec![0, 1]),
                centre: 0.0005,
            },
            Case {
                name: "bad clock cannot be rescued by one good source",
                input: vec![iv(1200.0, 0.01), iv(0.0, 0.01), iv(1200.0, 0.02)],
                min: 1,
                members: Some(vec![0, 2]),
                centre: 1200.0,
            },
            Case {
                name: "2 s falseticker outvoted",
                input: vec![iv(0.0, 0.01), iv(2.0, 0.01), iv(0.0, 0.01)],
                min: 1,
                members: Some(vec![0, 2]),
                centre: 0.0,
            },
            Case {
                name: "two that disagree",
                input: vec![iv(0.0, 0.01), iv(1200.0, 0.01)],
                min: 1,
                members: None,
                centre: 0.0,
            },
            Case {
                name: "two that agree",
                input: vec![iv(0.0, 0.5), iv(0.4, 0.5)],
                min: 1,
                members: Some(vec![0, 1]),
                centre: 0.2,
            },
            Case {
                name: "touching intervals agree",
                input: vec![iv(0.0, 1.0), iv(2.0, 1.0)],
                min: 1,
                members: Some(vec![0, 1]),
                centre: 1.0,
            },
            Case {
                name: "NaN ignored",
                input: vec![iv(f64::NAN, 1.0), iv(5.0, 0.1)],
                min: 1,
                members: Some(vec![1]),
                centre: 5.0,
            },
        ];
        for c in cases {
            let got = select(&c.input, c.min);
            match (&got, &c.members) {
                (
                    Selection::Agreed {
                        members, offset, ..
                    },
                    Some(want),
                ) => {
                    assert_eq!(members, want, "{}", c.name);
                    assert!((offset - c.centre).abs() < 1e-9, "{}: {offset}", c.name);
                }
                (Selection::NoMajority { .. }, None) => {}
                _ => panic!("{}: {got:?}", c.name),
            }
        }
        assert_eq!(select(&[], 1), Selection::NoSources);
    }

    #[test]
    fn two_regions_of_equal_support_are_spanned() {
        // B and C disagree; A spans both: the truth is in [0,1] or [9,10].
        let got = select(&[iv(5.0, 5.0), iv(0.5, 0.5), iv(9.5, 0.5)], 1);
        match got {
            Selection::Agreed {
                offset,
                uncertainty,
                ..
            } => {
                assert!((offset - 5.0).abs() < 1e-9 && (uncertainty - 5.0).abs() < 1e-9)
            }
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        /// If a strict majority of intervals holds the true offset, the
        /// selected interval holds it too, whatever the liars say.
        #[test]
        fn truth_held_by_a_majority_is_never_lost(
            truth in -1e6f64..1e6,
            honest in proptest::collection::vec((-1.0f64..1.0, 0.0f64..2.0), 1..6),
            liars in proptest::collection::vec((-1e7f64..1e7, 0.0f64..10.0), 0..5),
        ) {
            let mut v: Vec<Interval> = honest.iter().map(|&(e, u)| iv(truth + e * u, u)).collect();
            prop_assume!(liars.len() < v.len());
            v.extend(liars.iter().map(|&(o, u)| iv(o, u)));
            match select(&v, 1) {
                Selection::Agreed { offset, uncertainty, .. } => {
                    prop_assert!((offset - truth).abs() <= uncertainty + 1e-6 * (1.0 + truth.abs()));
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }

    fn c(offset: f64, uncertainty: f64, authenticated: bool) -> Candidate {
        let trust = if authenticated {
            Trust::Authenticated
        } else {
            Trust::Unauthenticated
        };
        t(offset, uncertainty, trust)
    }

    fn t(offset: f64, uncertainty: f64, trust: Trust) -> Candidate {
        Candidate {
            interval: iv(offset, uncertainty),
            trust,
        }
    }

    fn agreed(t: &TrustedSelection) -> (Vec<usize>, f64, f64) {
        match &t.selection {
            Selection::Agreed {
                members,
                offset,
                uncertainty,
            } => (members.clone(), *offset, *uncertainty),
            other => panic!("{other:?} ({t:?})"),
        }
    }

    #[test]
    fn a_forged_ntp_majority_cannot_outvote_one_authenticated_source() {
        // Good clock: HTTPS says 0, two forged NTP replies say +600.
        let good = [
            c(600.0, 0.01, false),
            c(600.0, 0.01, false),
            c(0.0, 0.5, true),
        ];
        let t = select_trusted(&good, 1, AuthSelect::Mix, false);
        let (members, offset, _) = agreed(&t);
        assert_eq!(members, vec![2]);
        assert!(offset.abs() <= 0.5);
        assert!(t.disagreement && t.authenticated_vote);
        // Bad clock: HTTPS says +600, forged NTP says 0.
        let bad = [
            c(0.0, 0.01, false),
            c(0.0, 0.01, false),
            c(600.0, 0.5, true),
        ];
        let (_, offset, _) = agreed(&select_trusted(&bad, 1, AuthSelect::Mix, false));
        assert!((offset - 600.0).abs() <= 0.5);
        // ignore: one source, one vote.
        let t = select_trusted(&bad, 1, AuthSelect::Ignore, false);
        assert_eq!(agreed(&t).0, vec![0, 1]);
        assert!(t.disagreement);
    }

    #[test]
    fn unauthenticated_sources_narrow_and_the_rest_are_left_out() {
        let v = [c(0.3, 0.1, false), c(0.0, 1.0, true), c(50.0, 0.1, false)];
        let t = select_trusted(&v, 1, AuthSelect::Mix, false);
        let (members, offset, unc) = agreed(&t);
        assert_eq!(members, vec![0, 1]);
        assert!((offset - 0.3).abs() < 1e-9 && (unc - 0.1).abs() < 1e-9);
        // require: they agree, but do not narrow.
        let (members, offset, unc) = agreed(&select_trusted(&v, 1, AuthSelect::Require, false));
        assert_eq!(members, vec![0, 1]);
        assert!(offset.abs() < 1e-9 && (unc - 1.0).abs() < 1e-9);
    }

    #[test]
    fn without_an_authenticated_answer_the_modes_differ() {
        let v = [c(0.0, 0.01, false), c(0.001, 0.01, false)];
        assert_eq!(
            agreed(&select_trusted(&v, 1, AuthSelect::Mix, false)).0,
            vec![0, 1]
        );
        let t = select_trusted(&v, 1, AuthSelect::Mix, true);
        assert_eq!(t.refused, Some(Refusal::VerificationFailed));
        assert_eq!(t.selection, Selection::NoSources);
        let t = select_trusted(&v, 1, AuthSelect::Require, false);
        assert_eq!(t.refused, Some(Refusal::NoAuthenticated));
        assert_eq!(
            agreed(&select_trusted(&v, 1, AuthSelect::Ignore, true)).0,
            vec![0, 1]
        );
        assert_eq!(
            select_trusted(&[], 1, AuthSelect::Mix, true).selection,
            Selection::NoSources
        );
    }

    #[test]
    fn authenticated_sources_that_disagree_are_not_rescued() {
        let v = [
            c(0.0, 0.01, true),
            c(600.0, 0.01, true),
            c(0.0, 0.01, false),
        ];
        let t = select_trusted(&v, 1, AuthSelect::Mix, false);
        assert!(matches!(t.selection, Selection::NoMajority { .. }), "{t:?}");
    }

    #[test]
    fn a_date_exempted_result_that_the_others_contradict_decides_nothing() {
        // Issue 18 case 3: an NTS server with the key of a long-expired
        // certificate says +8 years; two honest NTP servers say 0.
        let eight_years = 8.0 * 365.0 * 86400.0;
        let v = [
            t(-eight_years, 0.01, Trust::DateExempted),
            c(0.0, 0.001, false),
            c(0.0001, 0.001, false),
        ];
        for mode in [AuthSelect::Mix, AuthSelect::Require] {
            let got = select_trusted(&v, 1, mode, false);
            assert_eq!(got.refused, Some(Refusal::ExemptedContradicted), "{mode:?}");
            assert_eq!(got.selection, Selection::NoSources);
        }
        // A clock really years behind (an RTC reset): the exempted servers and
        // honest NTP agree, and the size is measured at once.
        let v = [
            t(eight_years, 0.5, Trust::DateExempted),
            c(eight_years + 0.1, 0.001, false),
        ];
        let got = select_trusted(&v, 1, AuthSelect::Mix, false);
        let (members, offset, _) = agreed(&got);
        assert_eq!(members, vec![0, 1]);
        assert!((offset - eight_years - 0.1).abs() < 0.01);
        assert_eq!(got.deciding, Some(Trust::DateExempted));
        // Alone, or with no majority of the others against it, it decides.
        let alone = [t(eight_years, 0.5, Trust::DateExempted)];
        assert_eq!(
            agreed(&select_trusted(&alone, 1, AuthSelect::Mix, false)).0,
            vec![0]
        );
        let split = [
            t(eight_years, 0.5, Trust::DateExempted),
            c(eight_years, 0.001, false),
            c(0.0, 0.001, false),
        ];
        assert_eq!(
            agreed(&select_trusted(&split, 1, AuthSelect::Mix, false)).0,
            vec![0, 1]
        );
    }

    #[test]
    fn a_higher_rung_outranks_date_exempted_and_unauthenticated_sources() {
        for top in [Trust::Authenticated, Trust::ClockIndependent] {
            let v = [
                t(-3e8, 0.01, Trust::DateExempted),
                t(-3e8, 0.01, Trust::DateExempted),
                c(600.0, 0.001, false),
                c(600.0, 0.001, false),
                t(0.0, 2.0, top),
            ];
            let got = select_trusted(&v, 1, AuthSelect::Mix, false);
            let (members, offset, _) = agreed(&got);
            assert_eq!(members, vec![4], "{top:?}");
            assert!(offset.abs() <= 2.0);
            assert_eq!(got.deciding, Some(Trust::Authenticated));
        }
    }

    proptest! {
        /// Under mix and require, whatever the unauthenticated candidates say,
        /// the combined region lies inside the authenticated-only region.
        #[test]
        fn unauthenticated_sources_never_move_the_result(
            auth in proptest::collection::vec((-1e4f64..1e4, 0.0f64..100.0), 1..4),
            plain in proptest::collection::vec((-1e4f64..1e4, 0.0f64..100.0), 0..6),
            order in proptest::collection::vec(any::<bool>(), 10),
            failed in any::<bool>(),
            require in any::<bool>(),
        ) {
            let mode = if require { AuthSelect::Require } else { AuthSelect::Mix };
            let mut a: Vec<Candidate> = auth.iter().map(|&(o, u)| c(o, u, true)).collect();
            let mut p: Vec<Candidate> = plain.iter().map(|&(o, u)| c(o, u, false)).collect();
            // Interleave the classes in an arbitrary order.
            let mut v = Vec::new();
            for &first in order.iter().cycle().take(a.len() + p.len()) {
                let from = if (first && !a.is_empty()) || p.is_empty() { &mut a } else { &mut p };
                v.push(from.remove(0));
            }
            let alone: Vec<Candidate> = v.iter().copied().filter(|c| c.trust.authenticated()).collect();
            let base = select_trusted(&alone, 1, mode, failed);
            let got = select_trusted(&v, 1, mode, failed);
            match (&base.selection, &got.selection) {
                (
                    Selection::Agreed { offset: bo, uncertainty: bu, .. },
                    Selection::Agreed { offset: go, uncertainty: gu, .. },
                ) => {
                    let eps = 1e-9 * (1.0 + bo.abs());
                    prop_assert!(go - gu >= bo - bu - eps && go + gu <= bo + bu + eps,
                        "{:?} vs {:?}", got, base);
                }
                (Selection::Agreed { .. }, other) => prop_assert!(false, "{:?}", other),
                (_, Selection::Agreed { .. }) => prop_assert!(false, "{:?} from {:?}", got, base),
                _ => {}
            }
        }
    }
}
