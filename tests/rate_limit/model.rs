//! A small reference model of the four algorithms, written from their
//! definitions (not from the scripts): `fits` is the rule, and `remaining`
//! and `retry_after` are found by search over it (the largest cost that
//! fits; the first whole microsecond at which the cost fits, which
//! `retry_after` rounds up to the millisecond). A denial names the quota with
//! the longest exact wait, the lowest index on an exact tie; a cost above a
//! quota's limit (burst) is "never" on every quota it exceeds, decided
//! without a round trip.

use redis_atomics::Algorithm;

const U: i128 = 1_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Lim {
    pub limit: u64,
    pub window_ms: u64,
    pub burst: u64,
}

impl Lim {
    fn w(&self) -> i128 {
        i128::from(self.window_ms) * 1000
    }
    pub fn max_cost(&self, algo: Algorithm) -> u64 {
        if algo == Algorithm::Gcra {
            self.burst
        } else {
            self.limit
        }
    }
}

/// One limit's state.
#[derive(Debug, Clone, Default)]
pub struct State {
    log: Vec<i128>,                 // sliding log: one timestamp per unit
    win: Option<(i128, i128)>,      // fixed window: (start, count)
    sw: Option<(i128, i128, i128)>, // sliding window: (aligned start, current, previous)
    tat: Option<i128>,              // gcra: TAT × limit, in µs
}

impl State {
    /// Sliding window: the (start, current, previous) seen at `now`.
    fn sw_at(&self, lim: &Lim, now: i128) -> (i128, i128, i128) {
        let w = lim.w();
        let start = now - now % w;
        match self.sw {
            Some((s, c, p)) if s == start => (start, c, p),
            Some((s, c, _)) if s == start - w => (start, 0, c),
            _ => (start, 0, 0),
        }
    }

    fn gcra_d(&self, lim: &Lim, now: i128) -> i128 {
        let l = i128::from(lim.limit);
        self.tat.map_or(0, |t| (t - now * l).max(0))
    }

    pub fn fits(&self, algo: Algorithm, lim: &Lim, now: i128, cost: u64) -> bool {
        let (l, cost) = (i128::from(lim.limit), i128::from(cost));
        match algo {
            Algorithm::SlidingLog => {
                let live = self.log.iter().filter(|&&t| now - t < lim.w()).count() as i128;
                live + cost <= l
            }
            Algorithm::FixedWindow => match self.win {
                Some((s, c)) if now < s + lim.w() => c + cost <= l,
                _ => cost <= l,
            },
            Algorithm::SlidingWindow => {
                let (start, c, p) = self.sw_at(lim, now);
                let e = now - start;
                // weight = (w - e) / w in ppm, rounded up
                let weight = (((lim.w() - e) * U + lim.w() - 1) / lim.w()).min(U);
                p * weight + (c + cost) * U <= l * U
            }
            Algorithm::Gcra => {
                let t = lim.w(); // the emission interval, scaled by the limit
                self.gcra_d(lim, now) + cost * t <= i128::from(lim.burst) * t
            }
            _ => unreachable!(),
        }
    }

    pub fn commit(&mut self, algo: Algorithm, lim: &Lim, now: i128, cost: u64) {
        let c64 = i128::from(cost);
        match algo {
            Algorithm::SlidingLog => {
                // Entries out of the window never count again (time only moves on).
                self.log.retain(|&t| now - t < lim.w());
                self.log.extend(std::iter::repeat_n(now, cost as usize));
            }
            Algorithm::FixedWindow => {
                self.win = match self.win {
                    Some((s, c)) if now < s + lim.w() => Some((s, c + c64)),
                    _ => Some((now, c64)),
                }
            }
            Algorithm::SlidingWindow => {
                let (start, c, p) = self.sw_at(lim, now);
                self.sw = Some((start, c + c64, p));
            }
            Algorithm::Gcra => {
                let l = i128::from(lim.limit);
                self.tat = Some(now * l + self.gcra_d(lim, now) + c64 * lim.w());
            }
            _ => unreachable!(),
        }
    }

    /// Milliseconds (rounded up) until this limit is fully replenished.
    pub fn reset_ms(&self, algo: Algorithm, lim: &Lim, now: i128) -> i128 {
        let ceil_ms = |us: i128| if us > 0 { (us + 999) / 1000 } else { 0 };
        match algo {
            Algorithm::SlidingLog => self
                .log
                .iter()
                .max()
                .map_or(0, |&newest| ceil_ms(newest + lim.w() - now)),
            Algorithm::FixedWindow => match self.win {
                Some((s, c)) if now < s + lim.w() && c > 0 => ceil_ms(s + lim.w() - now),
                _ => 0,
            },
            Algorithm::SlidingWindow => {
                let (start, c, p) = self.sw_at(lim, now);
                let ends = if c > 0 {
                    start + 2 * lim.w()
                } else if p > 0 {
                    start + lim.w()
                } else {
                    now
                };
                ceil_ms(ends - now)
            }
            Algorithm::Gcra => {
                let l = i128::from(lim.limit);
                let d = self.gcra_d(lim, now);
                (d + l * 1000 - 1) / (l * 1000)
            }
            _ => unreachable!(),
        }
    }

    /// The largest cost that fits now.
    pub fn remaining(&self, algo: Algorithm, lim: &Lim, now: i128) -> u64 {
        (0..=lim.max_cost(algo))
            .rev()
            .find(|&k| self.fits(algo, lim, now, k))
            .unwrap_or(0)
    }

    /// The exact wait: the first whole microsecond after `now` at which
    /// `cost` fits (binary search: once a cost fits, it keeps fitting while
    /// nothing is counted; the result is checked at its edge).
    pub fn retry_us(&self, algo: Algorithm, lim: &Lim, now: i128, cost: u64) -> i128 {
        let (mut lo, mut hi) = (0, 4 * lim.w() * i128::from(lim.burst.max(1)));
        assert!(self.fits(algo, lim, now + hi, cost), "fits eventually");
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if self.fits(algo, lim, now + mid, cost) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        assert!(!self.fits(algo, lim, now + hi - 1, cost), "monotone");
        hi
    }
}

/// What the model expects from one check or peek.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub allowed: bool,
    pub never: bool,
    pub denied_by: Option<usize>,
    /// Per limit: (remaining, retry_after_ms or 0, reset_after_ms, never).
    pub limits: Vec<(u64, i128, i128, bool)>,
}

/// Several limits checked all-or-nothing, like the scripts.
pub struct Model {
    pub algo: Algorithm,
    pub lims: Vec<Lim>,
    pub states: Vec<State>,
    /// Denials where two quotas wait exactly as long (the lowest index wins).
    pub exact_ties: usize,
    /// Denials where the longest waits round to the same millisecond but
    /// differ in microseconds (the longer one wins).
    pub near_ties: usize,
    /// Per limit: the allowed (time, cost) pairs, for the bounds.
    pub history: Vec<Vec<(i128, u64)>>,
}

impl Model {
    pub fn new(algo: Algorithm, lims: Vec<Lim>) -> Self {
        let states = vec![State::default(); lims.len()];
        Model {
            algo,
            history: vec![Vec::new(); lims.len()],
            lims,
            states,
            exact_ties: 0,
            near_ties: 0,
        }
    }

    pub fn step(&mut self, now: i128, cost: u64, commit: bool) -> Expect {
        let algo = self.algo;
        let never: Vec<bool> = self.lims.iter().map(|l| cost > l.max_cost(algo)).collect();
        if let Some(first) = never.iter().position(|&n| n) {
            // Decided without a round trip: the state is not read (0s).
            return Expect {
                allowed: false,
                never: true,
                denied_by: Some(first),
                limits: never.iter().map(|&n| (0, 0, 0, n)).collect(),
            };
        }
        let mut retry = vec![0; self.lims.len()];
        let (mut deny, mut worst) = (None, 0);
        for (i, (st, lim)) in self.states.iter().zip(&self.lims).enumerate() {
            if !st.fits(algo, lim, now, cost) {
                let us = st.retry_us(algo, lim, now, cost);
                retry[i] = (us + 999) / 1000;
                if us == worst {
                    self.exact_ties += 1;
                } else if (us + 999) / 1000 == (worst + 999) / 1000 {
                    self.near_ties += 1;
                }
                if us > worst {
                    (deny, worst) = (Some(i), us);
                }
            }
        }
        let allowed = deny.is_none();
        if allowed && commit {
            for (i, (st, lim)) in self.states.iter_mut().zip(&self.lims).enumerate() {
                st.commit(algo, lim, now, cost);
                self.history[i].push((now, cost));
            }
        }
        let limits = self
            .states
            .iter()
            .zip(&self.lims)
            .zip(&retry)
            .map(|((st, lim), &r)| {
                // After a peek that would pass, the numbers are those of the check.
                let mut st = st.clone();
                if allowed && !commit {
                    st.commit(algo, lim, now, cost);
                }
                let r = if allowed { 0 } else { r };
                (
                    st.remaining(algo, lim, now),
                    r,
                    st.reset_ms(algo, lim, now),
                    false,
                )
            })
            .collect();
        Expect {
            allowed,
            never: false,
            denied_by: deny,
            limits,
        }
    }

    /// Per limit: the most units allowed within any interval of one window
    /// (`(t - window, t]`), and the bound the docs state for it.
    pub fn window_peaks(&self) -> Vec<(u64, u64)> {
        self.history
            .iter()
            .zip(&self.lims)
            .map(|(h, lim)| {
                let peak = h
                    .iter()
                    .map(|&(t, _)| {
                        h.iter()
                            .filter(|&&(u, _)| u <= t && t - u < lim.w())
                            .map(|&(_, c)| c)
                            .sum::<u64>()
                    })
                    .max()
                    .unwrap_or(0);
                let bound = match self.algo {
                    Algorithm::SlidingLog => lim.limit,
                    Algorithm::FixedWindow => 2 * lim.limit,
                    Algorithm::SlidingWindow => 2 * lim.limit - 1,
                    _ => lim.burst + lim.limit,
                };
                (peak, bound)
            })
            .collect()
    }
}
