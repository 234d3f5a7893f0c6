//! Combining sources: the largest set of measurements that share a common
//! offset (Marzullo's algorithm, the core of NTP's selection), and whether it
//! is a majority.

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
}
