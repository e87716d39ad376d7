//! One deadline for the whole run, and the budget each phase gets out of it.
//!
//! A CreationPolicy gives an instance one chance to answer; an instance that says nothing costs
//! the user the whole policy timeout. So the run has a deadline below the usual PT15M, work stops
//! a little before it (the `reserve`), and that reserve is kept for the FAILURE signal.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// Below the usual `PT15M` CreationPolicy timeout, with a minute to spare.
pub const DEFAULT_DEADLINE_SECS: u64 = 840;

/// Time kept back for SignalResource (and its retries under throttling) once work stops.
const MAX_RESERVE: Duration = Duration::from_secs(60);
const MIN_RESERVE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    started: Instant,
    total: Duration,
    /// When work must stop so that the signal still fits.
    work_end: Instant,
    /// When everything, the signal included, must be over.
    end: Instant,
}

impl Deadline {
    pub fn new(total: Duration) -> Self {
        Self::starting_at(Instant::now(), total)
    }

    pub fn starting_at(started: Instant, total: Duration) -> Self {
        // A sixth of the run, between 2 s and a minute: a short test deadline still leaves work
        // most of its time, a production one keeps a full minute for a throttled signal.
        let reserve = (total / 6).clamp(MIN_RESERVE, MAX_RESERVE).min(total / 2);
        Deadline {
            started,
            total,
            work_end: started + total - reserve,
            end: started + total,
        }
    }

    pub fn total(&self) -> Duration {
        self.total
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// When work must stop (the signal's reserve excluded).
    pub fn work_end(&self) -> Instant {
        self.work_end
    }

    /// When the signal must be sent by.
    pub fn end(&self) -> Instant {
        self.end
    }

    /// The end of a phase allowed `budget`: never past the point where work must stop.
    pub fn phase_end(&self, budget: Option<Duration>) -> Instant {
        match budget {
            Some(b) => (Instant::now() + b).min(self.work_end),
            None => self.work_end,
        }
    }

    /// Runs `fut` until it finishes or its phase time runs out; the error says which limit it
    /// ran into, so the FAILURE reason tells "the phase's own budget" from "the run's deadline".
    pub async fn bound<T, F>(&self, what: &str, budget: Option<Duration>, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let phase_started = Instant::now();
        let until = self.phase_end(budget);
        match tokio::time::timeout_at(until, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::DeadlineExceeded {
                waiting_for: what.to_string(),
                waited_secs: phase_started.elapsed().as_secs(),
                run_deadline_secs: self.total.as_secs(),
                phase_budget_secs: budget
                    .filter(|_| until < self.work_end)
                    .map(|b| b.as_secs()),
            }),
        }
    }

    /// Like [`bound`](Self::bound) for the signal: it may use the reserve.
    pub async fn bound_signal<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        let phase_started = Instant::now();
        match tokio::time::timeout_at(self.end.max(Instant::now() + MIN_RESERVE), fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::DeadlineExceeded {
                waiting_for: "SignalResource".to_string(),
                waited_secs: phase_started.elapsed().as_secs(),
                run_deadline_secs: self.total.as_secs(),
                phase_budget_secs: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn phase_ends_never_pass_the_work_end() {
        let d = Deadline::new(Duration::from_secs(840));
        assert_eq!(d.end() - d.work_end(), Duration::from_secs(60));
        let short = d.phase_end(Some(Duration::from_secs(10)));
        assert_eq!(short - Instant::now(), Duration::from_secs(10));
        assert_eq!(d.phase_end(Some(Duration::from_secs(10_000))), d.work_end());
        assert_eq!(d.phase_end(None), d.work_end());

        let tiny = Deadline::new(Duration::from_secs(3));
        assert!(tiny.work_end() < tiny.end());
        assert!(tiny.work_end() > Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn a_phase_that_waits_too_long_names_itself() {
        let d = Deadline::new(Duration::from_secs(12));
        let e = d
            .bound("the cluster join", None, async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("the cluster join"), "{text}");
        assert!(text.contains("12s"), "{text}");
        assert_eq!(e.exit_code(), 9);

        let d = Deadline::new(Duration::from_secs(12));
        let e = d
            .bound("IMDS", Some(Duration::from_secs(1)), async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("budget of 1s"), "{e}");

        let ok: Result<u8> = d.bound("x", None, async { Ok(7) }).await;
        assert_eq!(ok.unwrap(), 7);
    }
}
