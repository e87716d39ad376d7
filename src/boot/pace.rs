//! Spreading a group's first CloudFormation calls over time (issue 18).
//!
//! CloudFormation throttles per account, and every instance of a group that scales out boots in
//! the same second and makes the same two calls (DescribeStackResource, then SignalResource).
//! Sent at once, all but a rate's worth are throttled, and the SDK's backoff, counted per call
//! (≤ 1 s, ≤ 2 s, … capped at 20 s), sends them back in crowds: measured, 1,000 instances
//! against 25 req/s made several times the calls needed (bench/RESULTS.md). The retries cannot
//! learn the crowd's size; the group can tell it. Given the group's size (`--group-size`, e.g.
//! `${DesiredCapacity}` in the UserData: free, no API call) each instance waits a random time in
//! `[0, W)` before its first call, `W = 1.1 × 2 × size ÷ rate`, the time the group's calls take
//! at `--cfn-rate` requests/s (the rate the fleet may count on; 10 % headroom). Throttles that
//! remain are the SDK's to retry, as before. A group of one, or no size given, waits nothing.

use std::hash::{Hash, Hasher};
use std::time::Duration;

/// CloudFormation calls one run makes when nothing fails.
pub const CALLS_PER_INSTANCE: f64 = 2.0;
/// The window is this much longer than the calls take at the rate: a random spread is not
/// perfectly even, and an account's bucket is shared with other tools.
pub const HEADROOM: f64 = 1.1;
/// The default of `--cfn-rate`: what issue 18's model account admits.
pub const DEFAULT_CFN_RATE: f64 = 25.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Instances booting together (the group's desired capacity).
    pub group_size: u32,
    /// CloudFormation requests per second the whole group may count on.
    pub cfn_rate: f64,
}

impl Pace {
    /// The spread: never more than a third of the run, so that a wrong size or rate cannot
    /// cost the run its deadline.
    pub fn window(&self, run: Duration) -> Duration {
        if self.group_size <= 1 || self.cfn_rate.is_nan() || self.cfn_rate <= 0.0 {
            return Duration::ZERO;
        }
        let secs = HEADROOM * CALLS_PER_INSTANCE * f64::from(self.group_size) / self.cfn_rate;
        Duration::from_secs_f64(secs.min(86_400.0)).min(run / 3)
    }

    /// This instance's wait: uniform in the window, seeded by the instance id and the clock.
    pub fn delay(&self, run: Duration, instance_id: &str) -> Duration {
        self.window(run).mul_f64(unit_random(instance_id))
    }
}

/// Waits this instance's share of the window before its first CloudFormation call.
pub async fn before_first_call(pace: Option<Pace>, run: Duration, instance_id: &str) {
    let Some(p) = pace else { return };
    let wait = p.delay(run, instance_id);
    if wait.is_zero() {
        return;
    }
    tracing::info!(
        wait_ms = wait.as_millis() as u64,
        group_size = p.group_size,
        cfn_rate = p.cfn_rate,
        window_ms = p.window(run).as_millis() as u64,
        "spreading the group's CloudFormation calls: waiting before the first one"
    );
    tokio::time::sleep(wait).await;
}

/// A number in [0, 1) from `seed` and the clock (splitmix64): instances of one group start in
/// the same second with different ids.
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

    const RUN: Duration = Duration::from_secs(840);

    #[test]
    fn the_window_is_the_groups_calls_at_the_rate_with_headroom() {
        let p = Pace {
            group_size: 1000,
            cfn_rate: 25.0,
        };
        assert_eq!(p.window(RUN), Duration::from_secs(88));
        for id in ["i-0", "i-1", "i-2"] {
            assert!(p.delay(RUN, id) < Duration::from_secs(88));
        }
    }

    #[test]
    fn one_instance_or_no_rate_waits_nothing() {
        for (group_size, cfn_rate) in [(1, 25.0), (0, 25.0), (10, 0.0), (10, f64::NAN)] {
            let p = Pace {
                group_size,
                cfn_rate,
            };
            assert_eq!(p.window(RUN), Duration::ZERO);
        }
    }

    #[test]
    fn the_window_never_takes_more_than_a_third_of_the_run() {
        let p = Pace {
            group_size: 100_000,
            cfn_rate: 1.0,
        };
        assert_eq!(p.window(RUN), RUN / 3);
    }

    #[test]
    fn waits_are_spread_over_the_window() {
        let n = 2000;
        let mean = (0..n)
            .map(|i| unit_random(&format!("i-{i:017x}")))
            .inspect(|u| assert!((0.0..1.0).contains(u)))
            .sum::<f64>()
            / f64::from(n);
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }
}
