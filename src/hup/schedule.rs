//! When a hup daemon polls (bin/cfn-hup@25fabe91 differs, see below): the first poll at a random
//! point of the first interval, then every interval ± 10 % of it, at most ±30 s. Public for the
//! fleet benchmark (`examples/hup_fleet.rs`), which runs a thousand daemons' schedules.
//!
//! cfn-hup polls at once when it starts, then every `interval*60 + randint(-30, 30)` seconds
//! (bin/cfn-hup:124-126, the timer set after each poll), so a fleet booted together polls its
//! first round in lockstep. Here the first poll is spread over the whole first interval (the
//! boot run has just applied the Metadata, so nothing is late for it).

use std::time::Duration;

/// The first poll's delay: anywhere in the first interval.
pub fn first_delay(interval_secs: u64, unit: f64) -> Duration {
    Duration::from_secs(interval_secs).mul_f64(unit.clamp(0.0, 1.0))
}

/// Between polls: the interval ± 10 % of it, at most ±30 s (cfn-hup's jitter).
pub fn next_delay(interval_secs: u64, unit: f64) -> Duration {
    let interval = interval_secs as f64;
    let jitter = (interval / 10.0).min(30.0);
    Duration::from_secs_f64((interval + jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_sized_to_the_interval() {
        assert_eq!(first_delay(900, 0.0), Duration::ZERO);
        assert_eq!(first_delay(900, 0.5), Duration::from_secs(450));
        // 15 min: ±30 s, cfn-hup's jitter.
        assert_eq!(next_delay(900, 0.0), Duration::from_secs(870));
        assert_eq!(next_delay(900, 1.0), Duration::from_secs(930));
        // 1 min: ±6 s, not ±30 s.
        assert_eq!(next_delay(60, 0.0), Duration::from_secs(54));
        assert_eq!(next_delay(2, 0.5), Duration::from_secs(2));
    }
}
