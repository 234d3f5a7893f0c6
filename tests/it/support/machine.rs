//! Who may run beside whom. libtest runs tests side by side (as many as
//! `--test-threads`, by default one per core), and each may start peers,
//! containers or busy loops that the others feel. A test that cares enters a
//! [`Room`] at its start and stays in it until the guard drops:
//!
//! - [`Room::Timing`]: its assertions depend on timing (offsets to the
//!   millisecond, error bounds that must hold the truth, deadlines of a few
//!   seconds). Any number of such tests share the machine.
//! - [`Room::Containers`]: it runs Docker (image builds, containers, the
//!   linters of the container files), whose daemons load every core in bursts.
//!   Container tests share the machine with each other only.
//! - [`Room::Alone`]: it loads every core itself (busy loops, socket floods)
//!   and measures under that load. It runs with no other room occupied.
//!
//! Tests in no room (reading files, configuration errors) run beside anything.
//! Rooms are taken in arrival order, so a test waiting for [`Room::Alone`] is
//! not overtaken by later [`Room::Timing`] tests. Enter once per test, as its
//! first statement: a second `enter` on the same thread could wait for itself.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

/// What a test does to the machine, and so which tests it may run beside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Assertions that depend on timing: beside each other, never beside
    /// containers or a test that loads every core.
    Timing,
    /// Docker builds and containers: beside each other only.
    Containers,
    /// Loads every core: alone.
    Alone,
}

/// Who is in, and who waits (tickets in arrival order).
struct Occupancy {
    room: Option<Room>,
    inside: usize,
    waiting: VecDeque<u64>,
    next_ticket: u64,
}

static OCCUPANCY: Mutex<Occupancy> = Mutex::new(Occupancy {
    room: None,
    inside: 0,
    waiting: VecDeque::new(),
    next_ticket: 0,
});
static CHANGED: Condvar = Condvar::new();

fn occupancy() -> MutexGuard<'static, Occupancy> {
    // A panic never happens while this is held; a poisoned lock is still consistent.
    OCCUPANCY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Room {
    /// Waits until this room may be entered (every earlier arrival is in, and
    /// the machine is empty or occupied by this room, unless it is
    /// [`Room::Alone`]), then enters. Leaves when the guard drops, also when
    /// the test panics.
    #[must_use = "the test leaves the room when the guard drops"]
    pub fn enter(self) -> Inside {
        let mut o = occupancy();
        let ticket = o.next_ticket;
        o.next_ticket += 1;
        o.waiting.push_back(ticket);
        loop {
            let first = o.waiting.front() == Some(&ticket);
            let fits = o.inside == 0 || (o.room == Some(self) && self != Room::Alone);
            if first && fits {
                break;
            }
            o = CHANGED.wait(o).unwrap_or_else(PoisonError::into_inner);
        }
        o.waiting.pop_front();
        o.room = Some(self);
        o.inside += 1;
        // The next in line may be of the same room.
        CHANGED.notify_all();
        Inside(self)
    }
}

/// A test inside a [`Room`]; leaves it on drop.
#[derive(Debug)]
pub struct Inside(Room);

impl Drop for Inside {
    fn drop(&mut self) {
        let mut o = occupancy();
        debug_assert_eq!(o.room, Some(self.0), "left a room the machine is not in");
        o.inside -= 1;
        if o.inside == 0 {
            o.room = None;
        }
        CHANGED.notify_all();
    }
}
