//! Forward-decayed weights in event time: the same arithmetic as `features/decay.py`,
//! operation for operation, so native and Python folds agree to the last bit.

use rustc_hash::FxHashMap as HashMap;

use serde::{Deserialize, Serialize};

const RESCALE_AT: f64 = 60.0;

/// `2.0 ** e` as CPython computes it (libm `pow`). The base is hidden from the optimizer:
/// LLVM would otherwise turn `pow(2, e)` into `exp2(e)`, which rounds differently.
#[inline]
pub fn pow2(e: f64) -> f64 {
    std::hint::black_box(2f64).powf(e)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DecayedMap {
    pub hl: f64,
    pub landmark: i64,
    pub w: HashMap<String, f64>,
}

impl DecayedMap {
    pub fn new(half_life_ms: f64) -> Self {
        DecayedMap { hl: half_life_ms, landmark: 0, w: HashMap::default() }
    }

    fn rebase(&mut self, ts: i64) {
        let f = pow2((-(ts - self.landmark)) as f64 / self.hl);
        for v in self.w.values_mut() {
            *v *= f;
        }
        self.landmark = ts;
    }

    /// `2**((ts - landmark) / hl)`, moving the landmark first if that grew too large.
    pub fn growth(&mut self, ts: i64) -> f64 {
        if self.w.is_empty() {
            self.landmark = ts;
        }
        let mut e = (ts - self.landmark) as f64 / self.hl;
        if e > RESCALE_AT {
            self.rebase(ts);
            e = 0.0;
        }
        pow2(e)
    }

    pub fn add(&mut self, key: &str, amount: f64, ts: i64) {
        let inc = amount * self.growth(ts);
        match self.w.get_mut(key) {
            Some(v) => *v += inc,
            None => {
                self.w.insert(key.to_owned(), 0.0 + inc);
            }
        }
    }

    pub fn set(&mut self, key: &str, value: f64, ts: i64) {
        let g = value * self.growth(ts);
        self.w.insert(key.to_owned(), g);
    }

    pub fn add_all<'a>(&mut self, keys: impl Iterator<Item = &'a str>, amount: f64, ts: i64) {
        let inc = amount * self.growth(ts);
        for key in keys {
            match self.w.get_mut(key) {
                Some(v) => *v += inc,
                None => {
                    self.w.insert(key.to_owned(), 0.0 + inc);
                }
            }
        }
    }

    pub fn decay(&self, as_of: i64) -> f64 {
        pow2((-(as_of - self.landmark).max(0)) as f64 / self.hl)
    }

    pub fn value(&self, key: &str, as_of: i64) -> f64 {
        match self.w.get(key) {
            None => 0.0,
            Some(g) => g * self.decay(as_of),
        }
    }

    /// The `k` strongest as of `as_of`, ties by key.
    pub fn top(&self, k: usize, as_of: i64) -> Vec<(String, f64)> {
        let f = self.decay(as_of);
        strongest(self.w.iter().map(|(k, v)| (k.as_str(), *v)), k)
            .into_iter()
            .map(|(key, g)| (key.to_owned(), g * f))
            .collect()
    }

    pub fn bound(&mut self, max_size: usize, slack: usize) {
        if self.w.len() > max_size + slack {
            let keep: Vec<(String, f64)> = strongest(self.w.iter().map(|(k, v)| (k.as_str(), *v)), max_size)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            self.w = keep.into_iter().collect();
        }
    }
}

/// The `k` largest `(key, weight)` pairs, ties by key (as `features.decay.strongest`).
pub fn strongest<'a>(items: impl Iterator<Item = (&'a str, f64)>, k: usize) -> Vec<(&'a str, f64)> {
    let mut v: Vec<(&str, f64)> = items.collect();
    v.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.cmp(b.0)));
    v.truncate(k);
    v
}

/// Python's `f"{x:.4f}"`.
pub fn fmt4(x: f64) -> String {
    format!("{:.4}", x)
}

/// Python's `round(x, n)` for floats (correctly rounded through the decimal string).
pub fn round_n(x: f64, n: usize) -> f64 {
    if !x.is_finite() {
        return x;
    }
    format!("{:.*}", n, x).parse::<f64>().unwrap_or(x)
}

/// `",".join(f"{k}:{w * factor:.4f}" ...)` of the `k` strongest.
pub fn encode_top<'a>(items: impl Iterator<Item = (&'a str, f64)>, k: usize, factor: f64) -> String {
    let mut s = String::new();
    for (i, (key, g)) in strongest(items, k).into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(key);
        s.push(':');
        s.push_str(&fmt4(g * factor));
    }
    s
}

/// Python's floor division of event times by a bucket size.
pub fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_halves_every_half_life_and_rescaling_keeps_values() {
        let hl = 1000.0;
        let mut m = DecayedMap::new(hl);
        m.add("a", 1.0, 0);
        assert!((m.value("a", 1000) - 0.5).abs() < 1e-12);
        assert!((m.value("a", 3000) - 0.125).abs() < 1e-12);
        // far past the rescaling point: the landmark moves, relative weights do not
        m.add("b", 1.0, 100_000);
        assert!((m.value("b", 100_000) - 1.0).abs() < 1e-12);
        assert!(m.value("a", 100_000) < 1e-20);
        let top = m.top(1, 100_000);
        assert_eq!(top[0].0, "b");
    }

    #[test]
    fn floor_division_rounds_towards_negative_infinity_like_python() {
        assert_eq!(floor_div(7, 5), 1);
        assert_eq!(floor_div(-1, 5), -1);
        assert_eq!(floor_div(-5, 5), -1);
    }
}
