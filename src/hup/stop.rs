//! A stop request (SIGTERM), shared by the daemon loop, the poll and a running action: the poll
//! ends after the current hook, and a running action gets [`STOP_GRACE`] to finish before its
//! process group is killed.

use std::sync::Arc;

use tokio::sync::watch;

use super::action::STOP_GRACE;

#[derive(Clone)]
pub struct Stop(Arc<watch::Sender<bool>>);

impl Default for Stop {
    fn default() -> Self {
        Stop(Arc::new(watch::channel(false).0))
    }
}

impl Stop {
    pub fn request(&self) {
        self.0.send_replace(true);
    }

    pub fn requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once a stop is requested.
    pub async fn wait(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Resolves [`STOP_GRACE`] after a stop is requested.
    pub async fn grace_over(&self) {
        self.wait().await;
        tokio::time::sleep(STOP_GRACE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_grace_starts_at_the_request() {
        let stop = Stop::default();
        assert!(!stop.requested());
        let s = stop.clone();
        let t = tokio::spawn(async move { s.grace_over().await });
        tokio::time::sleep(STOP_GRACE * 2).await;
        assert!(!t.is_finished(), "no request, no end of grace");
        stop.request();
        assert!(stop.requested());
        let start = tokio::time::Instant::now();
        t.await.unwrap();
        assert_eq!(start.elapsed(), STOP_GRACE);
    }
}
