//! A hashed timer wheel for the shard's timers (Sleep, retry delays).
//!
//! Time is epoch milliseconds, passed in by the caller, so the wheel is
//! deterministic under test. Inserting and expiring cost O(1) per timer; a
//! timer further away than one turn of the wheel waits out whole turns in its
//! slot.

const SLOTS: usize = 512;

#[derive(Debug)]
struct Entry<T> {
    deadline_ms: i64,
    item: T,
}

/// Timers keyed by deadline, in 1 ms ticks.
#[derive(Debug)]
pub struct TimerWheel<T> {
    slots: Vec<Vec<Entry<T>>>,
    /// Every deadline before this one has been expired.
    cursor_ms: i64,
    len: usize,
}

impl<T> TimerWheel<T> {
    pub fn new(now_ms: i64) -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            cursor_ms: now_ms,
            len: 0,
        }
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Schedules `item` for `deadline_ms`; a deadline in the past fires on the
    /// next `expire`.
    pub fn insert(&mut self, deadline_ms: i64, item: T) {
        let deadline_ms = deadline_ms.max(self.cursor_ms);
        self.slots[slot_of(deadline_ms)].push(Entry { deadline_ms, item });
        self.len += 1;
    }

    /// Moves every timer due at or before `now_ms` into `out`, earliest first.
    pub fn expire(&mut self, now_ms: i64, out: &mut Vec<T>) {
        if self.len == 0 || now_ms < self.cursor_ms {
            self.cursor_ms = self.cursor_ms.max(now_ms);
            return;
        }
        let start = out.len();
        // One full turn visits every slot; more would visit some twice.
        let span = (now_ms - self.cursor_ms + 1).min(SLOTS as i64);
        let mut due: Vec<Entry<T>> = Vec::new();
        for offset in 0..span {
            let slot = &mut self.slots[slot_of(self.cursor_ms + offset)];
            let mut i = 0;
            while i < slot.len() {
                if slot[i].deadline_ms <= now_ms {
                    due.push(slot.swap_remove(i));
                } else {
                    i += 1;
                }
            }
        }
        self.len -= due.len();
        due.sort_by_key(|e| e.deadline_ms);
        out.extend(due.into_iter().map(|e| e.item));
        debug_assert!(out.len() >= start);
        self.cursor_ms = now_ms + 1;
    }

    /// When the shard must wake next: the earliest deadline within one turn,
    /// or one turn from now if every timer is further away.
    pub fn next_deadline(&self) -> Option<i64> {
        if self.len == 0 {
            return None;
        }
        for offset in 0..SLOTS as i64 {
            let at = self.cursor_ms + offset;
            if self.slots[slot_of(at)].iter().any(|e| e.deadline_ms <= at) {
                return Some(at);
            }
        }
        Some(self.cursor_ms + SLOTS as i64)
    }
}

fn slot_of(ms: i64) -> usize {
    ms.rem_euclid(SLOTS as i64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_each_timer_once_at_its_deadline_in_order() {
        let mut wheel = TimerWheel::new(1_000);
        wheel.insert(1_010, "b");
        wheel.insert(1_005, "a");
        wheel.insert(1_000 + 5 * SLOTS as i64, "far");
        let mut out = Vec::new();
        wheel.expire(1_004, &mut out);
        assert!(out.is_empty());
        assert_eq!(wheel.next_deadline(), Some(1_005));
        wheel.expire(1_010, &mut out);
        assert_eq!(out, vec!["a", "b"]);
        out.clear();
        wheel.expire(1_000 + 5 * SLOTS as i64 - 1, &mut out);
        assert!(out.is_empty(), "a timer several turns away waits its turns");
        wheel.expire(1_000 + 5 * SLOTS as i64, &mut out);
        assert_eq!(out, vec!["far"]);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn a_late_expire_catches_up_and_past_deadlines_fire_next() {
        let mut wheel = TimerWheel::new(0);
        for i in 0..2_000 {
            wheel.insert(i, i);
        }
        let mut out = Vec::new();
        wheel.expire(10_000, &mut out);
        assert_eq!(out, (0..2_000).collect::<Vec<_>>());
        wheel.insert(5, 99);
        out.clear();
        wheel.expire(10_001, &mut out);
        assert_eq!(out, vec![99]);
    }
}
