//! Exponential backoff with jitter: the one delay schedule of the workspace.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};

/// How a computed delay is randomised, so that many clients failing together do not retry
/// together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Jitter {
    /// Exactly the exponential delay.
    None,
    /// Uniform in `[0, delay]`.
    Full,
    /// Shortened by a random fraction of at most the given share (clamped to `0..=1`):
    /// uniform in `[delay · (1 − share), delay]`. `Fraction(0.5)` is "equal jitter".
    Fraction(f64),
    /// Decorrelated: uniform in `[base, 3 · previous delay]`, at most `max`.
    Decorrelated,
}

impl Jitter {
    /// Equal jitter: uniform in `[delay / 2, delay]`.
    pub const EQUAL: Jitter = Jitter::Fraction(0.5);
}

fn equal_jitter() -> Jitter {
    Jitter::EQUAL
}

/// Exponential backoff: `base · 2^(failures − 1)`, at most `max`, randomised by `jitter`.
///
/// The default (0.5 s doubling up to 5 min, equal jitter) is the job queue's; HTTP adapters
/// use [`super::RetryPolicy`]'s shorter one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Upper bound of every delay.
    pub max: Duration,
    /// Randomisation.
    #[serde(default = "equal_jitter")]
    pub jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(300))
    }
}

impl Backoff {
    /// Doubling from `base` up to `max`, with equal jitter.
    pub const fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            jitter: Jitter::EQUAL,
        }
    }

    /// The same schedule with another jitter.
    pub const fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay after `failures` failed attempts (0 counts as 1) before jitter:
    /// `min(max, base · 2^(failures − 1))`.
    pub fn ceiling(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The delay after `failures` failed attempts. [`Jitter::Decorrelated`] takes the
    /// previous un-jittered delay as its previous delay; loops that remember the delay they
    /// actually waited use [`Backoff::next_delay`].
    pub fn delay(&self, failures: u32) -> Duration {
        let previous = (failures > 1).then(|| self.ceiling(failures - 1));
        self.next_delay(failures, previous)
    }

    /// The delay after `failures` failed attempts when the last wait was `previous`.
    pub fn next_delay(&self, failures: u32, previous: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(failures);
        let mut rng = rand::thread_rng();
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => scale(ceiling, rng.gen::<f64>()),
            Jitter::Fraction(share) => {
                let share = if share.is_nan() {
                    0.0
                } else {
                    share.clamp(0.0, 1.0)
                };
                scale(ceiling, 1.0 - share * rng.gen::<f64>())
            }
            Jitter::Decorrelated => {
                let low = self.base.min(self.max);
                let high = previous
                    .unwrap_or(low)
                    .saturating_mul(3)
                    .clamp(low, self.max.max(low));
                low + scale(high - low, rng.gen::<f64>())
            }
        }
    }
}

/// `d · factor` for a factor in `[0, 1]`, never above `d` and never panicking.
fn scale(d: Duration, factor: f64) -> Duration {
    let factor = if factor.is_nan() {
        1.0
    } else {
        factor.clamp(0.0, 1.0)
    };
    Duration::try_from_secs_f64(d.as_secs_f64() * factor)
        .unwrap_or(d)
        .min(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::new(ms(500), ms(8000)).with_jitter(Jitter::None);
        let got: Vec<u128> = (0..7).map(|i| b.delay(i).as_millis()).collect();
        assert_eq!(got, vec![500, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(b.delay(u32::MAX), ms(8000));
        let huge = Backoff::new(Duration::MAX, Duration::MAX).with_jitter(Jitter::Full);
        assert!(huge.delay(40) <= Duration::MAX);
    }

    #[test]
    fn jitters_stay_in_their_ranges() {
        let base = Backoff::new(ms(1000), ms(10_000));
        for _ in 0..500 {
            let full = base.with_jitter(Jitter::Full).delay(2);
            assert!(full <= ms(2000), "{full:?}");
            let equal = base.delay(2);
            assert!(equal >= ms(1000) && equal <= ms(2000), "{equal:?}");
            let quarter = base.with_jitter(Jitter::Fraction(0.25)).delay(2);
            assert!(quarter >= ms(1500) && quarter <= ms(2000), "{quarter:?}");
            let odd = base.with_jitter(Jitter::Fraction(f64::NAN)).delay(2);
            assert_eq!(odd, ms(2000));
            let deco = base
                .with_jitter(Jitter::Decorrelated)
                .next_delay(5, Some(ms(3000)));
            assert!(deco >= ms(1000) && deco <= ms(9000), "{deco:?}");
            let capped = base
                .with_jitter(Jitter::Decorrelated)
                .next_delay(9, Some(ms(9000)));
            assert!(capped >= ms(1000) && capped <= ms(10_000), "{capped:?}");
        }
    }

    #[test]
    fn decorrelated_starts_from_base() {
        let b = Backoff::new(ms(100), ms(10_000)).with_jitter(Jitter::Decorrelated);
        for _ in 0..200 {
            let first = b.next_delay(1, None);
            assert!(first >= ms(100) && first <= ms(300), "{first:?}");
        }
        // A base above the cap is cut to the cap.
        let odd = Backoff::new(ms(500), ms(100)).with_jitter(Jitter::Decorrelated);
        assert_eq!(odd.next_delay(3, Some(ms(50))), ms(100));
    }

    #[test]
    fn old_serialised_backoffs_keep_equal_jitter() {
        let b: Backoff = serde_json::from_value(serde_json::json!({
            "base": {"secs": 1, "nanos": 0},
            "max": {"secs": 10, "nanos": 0}
        }))
        .unwrap();
        assert_eq!(b.jitter, Jitter::EQUAL);
        let round: Backoff =
            serde_json::from_value(serde_json::to_value(b.with_jitter(Jitter::Full)).unwrap())
                .unwrap();
        assert_eq!(round.jitter, Jitter::Full);
    }
}
