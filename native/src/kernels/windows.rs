//! Sliding-window counts by event type (as `features/windows.py`): three rings of buckets.

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

use super::decay::floor_div;

const MIN: i64 = 60_000;
/// (bucket size, buckets per window) of the 1h, 24h and 7d windows
pub const RINGS: [(i64, i64); 3] = [(5 * MIN, 12), (60 * MIN, 24), (1440 * MIN, 7)];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WindowCounts {
    pub rings: [HashMap<i64, [i64; 3]>; 3],
    pub retain: i64,
}

impl WindowCounts {
    pub fn new(retain: i64) -> Self {
        WindowCounts { rings: [HashMap::default(), HashMap::default(), HashMap::default()], retain }
    }

    pub fn add(&mut self, type_idx: usize, ts: i64) {
        for (i, (size, _)) in RINGS.iter().enumerate() {
            let c = self.rings[i].entry(floor_div(ts, *size)).or_insert([0; 3]);
            c[type_idx] += 1;
        }
    }

    pub fn prune(&mut self, now: i64) {
        for (i, (size, n)) in RINGS.iter().enumerate() {
            let oldest = floor_div(now - self.retain, *size) - n;
            self.rings[i].retain(|b, _| *b > oldest);
        }
    }

    pub fn counts(&self, ring: usize, as_of: i64) -> [i64; 3] {
        let (size, n) = RINGS[ring];
        let hi = floor_div(as_of, size);
        let lo = hi - n;
        let mut out = [0i64; 3];
        for (b, c) in &self.rings[ring] {
            if lo < *b && *b <= hi {
                out[0] += c[0];
                out[1] += c[1];
                out[2] += c[2];
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cover_the_window_and_prune_drops_older_buckets() {
        let mut w = WindowCounts::new(0);
        let t0 = 10 * 3_600_000;
        w.add(0, t0);
        w.add(0, t0 + 30 * MIN);
        w.add(1, t0 + 59 * MIN);
        // the 1 h ring at t0 + 59 min holds all three (5 min buckets, 12 of them)
        assert_eq!(w.counts(0, t0 + 59 * MIN), [2, 1, 0]);
        // at t0 + 110 min the 1 h window holds buckets after t0 + 50 min: the first two have
        // left it, not the 24 h one
        assert_eq!(w.counts(0, t0 + 110 * MIN), [0, 1, 0]);
        assert_eq!(w.counts(1, t0 + 110 * MIN), [2, 1, 0]);
        w.prune(t0 + 8 * 1440 * MIN);
        assert!(w.rings.iter().all(|r| r.is_empty()));
    }
}
