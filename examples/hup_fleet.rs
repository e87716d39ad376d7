//! The hup fleet benchmark (issue 15; `scripts/bench --hup-fleet N` runs it): N instances of one
//! Auto Scaling group, booted within a few minutes of each other, each running a hup daemon, and
//! the stack's Metadata changed once. What it costs CloudFormation (DescribeStackResource calls
//! per second, peak and mean, seconds over the API's rate) and how long after a change its
//! instances see it (p50/p99/max over every instance and 100 change moments spread over an
//! interval), for our schedule and for cfn-hup's.
//!
//! What runs: our daemon's own schedule functions (`ecs_bootstrap::hup::schedule`: the first
//! poll over the first interval, then interval ± 10 %, ≤ 30 s), and cfn-hup's schedule as its
//! source has it (bin/cfn-hup:124-126, 168-169 @25fabe91: the first poll at once, then
//! `interval*60 + random.randint(-30, 30)`). What is modelled, not run: a poll is one
//! DescribeStackResource and takes no time (each timer starts when the previous poll ends, so a
//! real fleet drifts a little later); the daemons start when their instance's boot run ends,
//! spread uniformly over `--boot-spread` seconds; random numbers come from a seeded generator
//! (same figures on every run) instead of the clock. No AWS, no processes: the schedule alone
//! decides the load, which is what this measures.
//!
//! Usage: hup_fleet [--n 1000] [--interval 900] [--boot-spread 120] [--change-at 7200]
//! [--rate 25] [--seed 1]. Output: a table, then one JSON line (for tests/bench/suite.py).

use std::str::FromStr;

use ecs_bootstrap::hup::schedule::{first_delay, next_delay};

struct Args {
    n: usize,
    interval: u64,
    boot_spread: f64,
    change_at: f64,
    rate: f64,
    seed: u64,
}

fn args() -> Args {
    let mut a = Args {
        n: 1000,
        interval: 900,
        boot_spread: 120.0,
        change_at: 7200.0,
        rate: 25.0,
        seed: 1,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).map(String::as_str).unwrap_or("");
        match pair[0].as_str() {
            "--n" => a.n = num(&pair[0], value),
            "--interval" => a.interval = num(&pair[0], value),
            "--boot-spread" => a.boot_spread = num(&pair[0], value),
            "--change-at" => a.change_at = num(&pair[0], value),
            "--rate" => a.rate = num(&pair[0], value),
            "--seed" => a.seed = num(&pair[0], value),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn num<T: FromStr>(option: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{option}: not a number: {value:?}"))
}

/// splitmix64: a seeded stream of numbers in [0, 1).
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
enum Schedule {
    Ours,
    CfnHup,
}

impl Schedule {
    fn name(self) -> &'static str {
        match self {
            Schedule::Ours => "ecs-bootstrap hup",
            Schedule::CfnHup => "cfn-hup",
        }
    }

    /// Its key in the JSON line.
    fn key(self) -> &'static str {
        match self {
            Schedule::Ours => "ours",
            Schedule::CfnHup => "cfn_hup",
        }
    }

    fn first(self, interval: u64, rng: &mut Rng) -> f64 {
        match self {
            Schedule::Ours => first_delay(interval, rng.unit()).as_secs_f64(),
            Schedule::CfnHup => 0.0,
        }
    }

    fn next(self, interval: u64, rng: &mut Rng) -> f64 {
        match self {
            Schedule::Ours => next_delay(interval, rng.unit()).as_secs_f64(),
            // random.randint(-30, 30): a whole number of seconds, both ends included.
            Schedule::CfnHup => (interval as f64) + ((rng.unit() * 61.0).floor() - 30.0),
        }
    }
}

struct Figures {
    mean_per_s: f64,
    peak_first: usize,
    peak_steady: usize,
    secs_over_rate: usize,
    calls_over_rate: usize,
    applied_p50: f64,
    applied_p99: f64,
    applied_max: f64,
}

/// Changes made at this many moments spread over one interval from `--change-at`: the time to
/// apply depends on where the change falls between polls, so the percentiles pool them all.
const CHANGES: usize = 100;

fn simulate(a: &Args, s: Schedule) -> Figures {
    let horizon = a.change_at + 3.0 * a.interval as f64;
    let mut per_second = vec![0usize; horizon as usize + 1];
    let mut applied = Vec::with_capacity(a.n * CHANGES);
    for i in 0..a.n {
        let mut rng = Rng(a.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let start = rng.unit() * a.boot_spread;
        let mut polls = Vec::new();
        let mut t = start + s.first(a.interval, &mut rng);
        while t < horizon {
            per_second[t as usize] += 1;
            polls.push(t);
            t += s.next(a.interval, &mut rng);
        }
        for k in 0..CHANGES {
            let change = a.change_at + a.interval as f64 * k as f64 / CHANGES as f64;
            let next = polls.partition_point(|&p| p < change);
            let seen = polls
                .get(next)
                .expect("the horizon covers a poll after each change");
            applied.push(seen - change);
        }
    }
    applied.sort_by(f64::total_cmp);
    let pct =
        |p: f64| applied[((applied.len() as f64 * p).ceil() as usize).clamp(1, applied.len()) - 1];
    let first_round = (a.interval as f64 * 1.1 + a.boot_spread) as usize;
    let steady = (a.change_at as usize).max(first_round)..horizon as usize;
    let busy = per_second.iter().filter(|&&c| c > a.rate as usize);
    Figures {
        mean_per_s: per_second[steady.clone()].iter().sum::<usize>() as f64 / steady.len() as f64,
        peak_first: per_second[..first_round].iter().copied().max().unwrap_or(0),
        peak_steady: per_second[steady].iter().copied().max().unwrap_or(0),
        secs_over_rate: busy.clone().count(),
        calls_over_rate: busy.map(|&c| c - a.rate as usize).sum(),
        applied_p50: pct(0.50),
        applied_p99: pct(0.99),
        applied_max: *applied.last().expect("n > 0"),
    }
}

fn main() {
    let a = args();
    assert!(
        a.n > 0 && a.interval > 0,
        "--n and --interval must be positive"
    );
    println!(
        "hup fleet: {} instances, interval {} s, booted over {} s, Metadata changed {} times over \
         the interval from t={} s, CloudFormation rate {} req/s (seed {})",
        a.n, a.interval, a.boot_spread, CHANGES, a.change_at, a.rate, a.seed
    );
    println!(
        "{:<18} {:>10} {:>14} {:>15} {:>16} {:>10} {:>10} {:>10}",
        "schedule", "mean/s", "peak/s (boot)", "peak/s (later)", "s over rate", "p50", "p99", "max"
    );
    let mut json = serde_json::json!({"n": a.n, "interval": a.interval});
    for s in [Schedule::Ours, Schedule::CfnHup] {
        let f = simulate(&a, s);
        println!(
            "{:<18} {:>10.2} {:>14} {:>15} {:>9} ({:>4}) {:>9.0}s {:>9.0}s {:>9.0}s",
            s.name(),
            f.mean_per_s,
            f.peak_first,
            f.peak_steady,
            f.secs_over_rate,
            f.calls_over_rate,
            f.applied_p50,
            f.applied_p99,
            f.applied_max
        );
        json[s.key()] = serde_json::json!({
            "mean_per_s": f.mean_per_s, "peak_boot": f.peak_first, "peak_later": f.peak_steady,
            "secs_over_rate": f.secs_over_rate, "calls_over_rate": f.calls_over_rate,
            "applied_p50": f.applied_p50, "applied_p99": f.applied_p99,
            "applied_max": f.applied_max,
        });
    }
    println!("{json}");
}
