//! The one retry loop: attempt, classify the outcome (done, retry, give up), wait, again, until
//! the attempts or the time run out. Every hand-written loop of the crate (IMDS rounds,
//! downloads, the wait condition PUT, the join's polls) is this loop with its own [`Backoff`]
//! and classifier, so attempt counting, "is this the last attempt" and jitter are decided here
//! once. [`unit_random`] is also the jitter of the fleet's pacing (`boot/pace.rs`): one source
//! of randomness for everything that spreads instances out in time.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// How the wait grows from one failed attempt to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Growth {
    /// `initial × factor^(n−1)` after attempt `n`: 1, 2, 4, … × initial.
    Geometric,
    /// `initial × (factor^n − 1)` after attempt `n`: 1, 3, 7, 15, … × initial with factor 2:
    /// cfn-init's curve, `random() * min(max_sleep, 2^i - 1)`
    /// (`cfnbootstrap/util.py:55-59@25fabe91`).
    MinusOne,
}

/// How much of each wait is random.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    None,
    /// Uniform in `[floor, 1)` × the wait ("full jitter" with a floor, so that a wait is never
    /// nothing): instances that failed together do not come back together.
    Full {
        floor: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait after the first failed attempt (before jitter).
    pub initial: Duration,
    /// How much each wait grows (1: a fixed interval).
    pub factor: u32,
    pub growth: Growth,
    /// No wait is longer than this (before jitter).
    pub max: Duration,
    pub jitter: Jitter,
    /// `None`: as many as the time allows.
    pub max_attempts: Option<u32>,
}

impl Backoff {
    /// A poll: the same wait every time, no jitter, no attempt limit.
    pub const fn fixed(interval: Duration) -> Backoff {
        Backoff {
            initial: interval,
            factor: 1,
            growth: Growth::Geometric,
            max: interval,
            jitter: Jitter::None,
            max_attempts: None,
        }
    }

    /// `initial × factor^(n−1)`, capped at `max`, without jitter.
    pub const fn exponential(initial: Duration, factor: u32, max: Duration) -> Backoff {
        Backoff {
            initial,
            factor,
            growth: Growth::Geometric,
            max,
            jitter: Jitter::None,
            max_attempts: None,
        }
    }

    pub const fn attempts(self, n: u32) -> Backoff {
        Backoff {
            max_attempts: Some(n),
            ..self
        }
    }

    pub const fn jitter(self, jitter: Jitter) -> Backoff {
        Backoff { jitter, ..self }
    }

    /// The wait after failed attempt `attempt` (1-based), before jitter.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let n = attempt.max(1);
        let f = u64::from(self.factor.max(1));
        // Saturating: a long poll must not overflow into a short wait.
        let times = match self.growth {
            Growth::Geometric => f.saturating_pow(n - 1),
            Growth::MinusOne => f.saturating_pow(n).saturating_sub(1),
        };
        let nanos = (self.initial.as_nanos()).saturating_mul(u128::from(times));
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)).min(self.max)
    }

    /// The wait after failed attempt `attempt`, jitter applied.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full { floor } => {
                ceiling.mul_f64(unit_random(&attempt.to_string()).max(floor.clamp(0.0, 1.0)))
            }
        }
    }
}

/// What the classifier makes of one attempt's outcome.
#[derive(Debug)]
pub enum Verdict<T, E> {
    Done(T),
    /// Worth another attempt, if there is one.
    Retry(E),
    /// Waiting cannot change it.
    GiveUp(E),
}

/// What the classifier knows of the attempt it judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1-based.
    pub number: u32,
    /// The wait before the next attempt; `None` when this was the last one (attempts or time
    /// used up), so a "retrying" log line is written only when a retry will happen.
    pub next: Option<Duration>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Failed<E> {
    /// The classifier gave up.
    GaveUp(E),
    /// Every attempt failed, or the time ran out: the last error and how many attempts.
    Exhausted { last: E, attempts: u32 },
}

/// Runs `op` (given the attempt number) until `classify` says done or give up, the backoff's
/// attempts are used up, or an attempt ends at or after `until`. The time bound is checked
/// after each attempt (so there is always one attempt, and a wait already begun is not cut
/// short: the caller's own timeout, if any, is the hard bound).
///
/// `op` is a closure returning a future rather than an `async` closure: the futures of
/// `AsyncFnMut` cannot (yet) be proven `Send` in generic code, and the SDK's providers need it.
pub async fn retry_until<R, T, E, Fut>(
    backoff: &Backoff,
    until: Option<Instant>,
    mut op: impl FnMut(u32) -> Fut,
    mut classify: impl FnMut(R, &Attempt) -> Verdict<T, E>,
) -> Result<T, Failed<E>>
where
    Fut: std::future::Future<Output = R>,
{
    let mut number = 0u32;
    loop {
        number = number.saturating_add(1);
        let outcome = op(number).await;
        let last = backoff.max_attempts.is_some_and(|m| number >= m)
            || until.is_some_and(|u| Instant::now() >= u);
        let attempt = Attempt {
            number,
            next: (!last).then(|| backoff.delay(number)),
        };
        match classify(outcome, &attempt) {
            Verdict::Done(t) => return Ok(t),
            Verdict::GiveUp(e) => return Err(Failed::GaveUp(e)),
            Verdict::Retry(e) => match attempt.next {
                Some(wait) => tokio::time::sleep(wait).await,
                None => {
                    return Err(Failed::Exhausted {
                        last: e,
                        attempts: number,
                    })
                }
            },
        }
    }
}

/// A number in [0, 1) from `seed`, the clock and the process id (splitmix64): instances of one
/// group start in the same second with different ids, and retry in different moments.
pub fn unit_random(seed: &str) -> f64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut h);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = h.finish() ^ nanos ^ u64::from(std::process::id()).rotate_left(32);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn curves() {
        let imds = Backoff::exponential(Duration::from_millis(250), 2, Duration::from_secs(2));
        let waits: Vec<u128> = (1..=6).map(|n| imds.delay(n).as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 2000, 2000]);
        let cfn = Backoff {
            growth: Growth::MinusOne,
            ..Backoff::exponential(S, 2, 20 * S)
        };
        let caps: Vec<u64> = (1..=6).map(|n| cfn.ceiling(n).as_secs()).collect();
        assert_eq!(caps, [1, 3, 7, 15, 20, 20]);
        assert_eq!(Backoff::fixed(S).delay(1000), S);
        // No overflow into a short wait.
        assert_eq!(Backoff::exponential(S, 10, 30 * S).delay(200), 30 * S);
    }

    #[test]
    fn jitter_stays_between_the_floor_and_the_ceiling() {
        let b = Backoff::exponential(S, 2, 20 * S).jitter(Jitter::Full { floor: 0.05 });
        for n in 1..200 {
            let d = b.delay(n % 8 + 1);
            assert!(d <= b.ceiling(n % 8 + 1), "{d:?}");
            assert!(d >= b.ceiling(n % 8 + 1).mul_f64(0.05), "{d:?}");
        }
    }

    #[test]
    fn unit_random_is_spread_over_zero_to_one() {
        let n = 2000;
        let mean = (0..n)
            .map(|i| unit_random(&format!("i-{i:017x}")))
            .inspect(|u| assert!((0.0..1.0).contains(u)))
            .sum::<f64>()
            / f64::from(n);
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_counted_and_waits_taken() {
        let b = Backoff::exponential(S, 2, 20 * S).attempts(4);
        let started = Instant::now();
        let mut seen = Vec::new();
        let r: Result<(), _> = retry_until(
            &b,
            None,
            |n| async move { n },
            |n, a| {
                seen.push((a.number, a.next));
                Verdict::Retry(format!("no {n}"))
            },
        )
        .await;
        assert_eq!(
            r,
            Err(Failed::Exhausted {
                last: "no 4".to_string(),
                attempts: 4
            })
        );
        // 1 + 2 + 4 s of waits, none after the last attempt.
        assert_eq!(started.elapsed(), 7 * S);
        assert_eq!(
            seen,
            [(1, Some(S)), (2, Some(2 * S)), (3, Some(4 * S)), (4, None)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn done_and_give_up_end_at_once() {
        let b = Backoff::fixed(S).attempts(10);
        let r = retry_until(
            &b,
            None,
            |n| async move { n },
            |n, _| {
                if n == 3 {
                    Verdict::Done(n)
                } else {
                    Verdict::Retry(())
                }
            },
        )
        .await;
        assert_eq!(r, Ok(3));
        let started = Instant::now();
        let r: Result<(), _> =
            retry_until(&b, None, |n| async move { n }, |n, _| Verdict::GiveUp(n)).await;
        assert_eq!(r, Err(Failed::GaveUp(1)));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_bound_ends_the_attempts() {
        let started = Instant::now();
        let until = started + Duration::from_millis(1050);
        let b = Backoff::fixed(Duration::from_millis(100));
        let r: Result<(), _> = retry_until(
            &b,
            Some(until),
            |n| async move { n },
            |n, _| Verdict::Retry(n),
        )
        .await;
        // Attempts at 0, 100, …, 1000 ms, then one at 1100 ms, past the bound: the last.
        assert_eq!(
            r,
            Err(Failed::Exhausted {
                last: 12,
                attempts: 12
            })
        );
        assert_eq!(started.elapsed(), Duration::from_millis(1100));
    }

    #[tokio::test(start_paused = true)]
    async fn op_may_borrow_state() {
        let calls = std::sync::Mutex::new(Vec::new());
        let b = Backoff::fixed(S).attempts(3);
        let _: Result<(), Failed<()>> = retry_until(
            &b,
            None,
            |n| {
                let calls = &calls;
                async move { calls.lock().unwrap().push(n) }
            },
            |_, _| Verdict::Retry(()),
        )
        .await;
        assert_eq!(*calls.lock().unwrap(), [1, 2, 3]);
    }
}
