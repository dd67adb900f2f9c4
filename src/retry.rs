//! Waiting out failures that pass: one backoff (exponential, jittered, capped) and one retry
//! loop bounded by a total deadline, modelled on the `object_store` crate's
//! `client/backoff.rs` and `client/retry.rs`.
//!
//! Used by the catalog for every storage request, by its index compare-and-swap loop (a lost
//! race is retried after a backoff), and by the watcher between rounds while storage is down.
//! Whatever happens, one operation gives up after [`RetryConfig::retry_timeout`]: a hung
//! endpoint costs that long, not attempts × request timeout.

use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How delays grow between tries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// The first delay's ceiling.
    pub init: Duration,
    /// No delay is longer.
    pub max: Duration,
    /// Each delay's ceiling is the previous one times this.
    pub base: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            init: Duration::from_millis(100),
            max: Duration::from_secs(15),
            base: 2.0,
        }
    }
}

/// The delays of one run of tries. Each delay is drawn at random below a ceiling that grows
/// by `base` up to `max` ("full jitter"), so that many clients failing together do not retry
/// together.
#[derive(Debug)]
pub struct Backoff {
    config: BackoffConfig,
    ceiling: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Delays that start at `config.init`.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            ceiling: config.init,
            config,
            rng: fastrand::Rng::new(),
        }
    }

    /// The same delays every run: for tests.
    pub fn with_seed(config: BackoffConfig, seed: u64) -> Self {
        Backoff {
            rng: fastrand::Rng::with_seed(seed),
            ..Backoff::new(config)
        }
    }

    /// The next delay, and a higher ceiling for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling.min(self.config.max);
        let floor = (self.config.init / 2).min(ceiling);
        let span = (ceiling - floor).as_nanos() as u64;
        let delay =
            floor + Duration::from_nanos(if span == 0 { 0 } else { self.rng.u64(0..=span) });
        self.ceiling = ceiling.mul_f64(self.config.base).min(self.config.max);
        delay
    }

    /// Back to the first delay (after a success).
    pub fn reset(&mut self) {
        self.ceiling = self.config.init;
    }

    /// The ceiling of the next delay: what a log line can promise.
    pub fn ceiling(&self) -> Duration {
        self.ceiling.min(self.config.max)
    }
}

/// A signal that ends retrying (the watcher sends it on SIGTERM): retries stop, so a service
/// shutting down during a storage outage does not wait out the storage timeout.
#[derive(Debug, Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

/// What sends a [`Stop`].
#[derive(Debug)]
pub struct StopHandle(tokio::sync::watch::Sender<bool>);

impl Stop {
    /// A signal and what sends it.
    pub fn pair() -> (StopHandle, Stop) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (StopHandle(tx), Stop(rx))
    }

    /// Whether it was sent.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until it is sent (forever, if it never is).
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        if rx.wait_for(|stopped| *stopped).await.is_err() {
            // The handle is gone without sending: it never will.
            std::future::pending::<()>().await;
        }
    }
}

impl StopHandle {
    /// Sends the signal.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

/// What an operation's errors must tell the retry loop.
pub trait Retryable: Sized {
    /// Worth another try: the cause may pass (a timeout, a 503, a refused connection).
    fn is_transient(&self) -> bool;
    /// One try took longer than the request timeout.
    fn timed_out(after: Duration) -> Self;
    /// The last transient error, once the tries or the time ran out.
    fn gave_up(self, attempts: u32, elapsed: Duration) -> Self;
}

/// How long an operation may be retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// How delays grow between tries.
    pub backoff: BackoffConfig,
    /// Tries after the first.
    pub max_retries: u32,
    /// The whole operation, all tries and delays included, gives up after this.
    pub retry_timeout: Duration,
    /// One try gives up after this (or when the operation's time is up, if sooner).
    pub request_timeout: Duration,
}

impl Default for RetryConfig {
    /// 30 s per operation, 10 s per try, up to 10 retries.
    fn default() -> Self {
        RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 10,
            retry_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// A config whose every bound fits in `total` (the `--storage-timeout` setting).
    pub fn with_timeout(total: Duration) -> Self {
        let default = RetryConfig::default();
        RetryConfig {
            retry_timeout: total,
            request_timeout: default.request_timeout.min(total),
            ..default
        }
    }

    /// Runs `op` until it succeeds, fails for good, or the retries or the time run out.
    pub async fn run<T, E, F, Fut>(&self, op: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.run_until(None, op).await
    }

    /// Like [`RetryConfig::run`], but once `stop` fires no further try is made: a wait between
    /// tries, or a try after a failed one, ends at once with the last error. A first try is
    /// let finish (bounded by the request timeout), so work on a healthy storage completes;
    /// work on a failing one stops without waiting out its retries.
    pub async fn run_until<T, E, F, Fut>(&self, stop: Option<&Stop>, mut op: F) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = Instant::now();
        let deadline = start + self.retry_timeout;
        let mut backoff = Backoff::new(self.backoff);
        let mut attempts = 0;
        let mut last: Option<E> = None;
        loop {
            attempts += 1;
            let left = deadline.saturating_duration_since(Instant::now());
            let limit = self.request_timeout.min(left);
            let attempt = tokio::time::timeout(limit, op());
            let result = match (&last, stop) {
                (Some(_), Some(stop)) => tokio::select! {
                    r = attempt => r,
                    _ = stop.stopped() => {
                        let error = last.take().unwrap_or_else(|| E::timed_out(limit));
                        return Err(error.gave_up(attempts, start.elapsed()));
                    }
                },
                _ => attempt.await,
            };
            let error = match result {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if !e.is_transient() => return Err(e),
                Ok(Err(e)) => e,
                Err(_) => E::timed_out(limit),
            };
            let delay = backoff.next_delay();
            let now = Instant::now();
            let stopped = stop.is_some_and(Stop::is_stopped);
            if stopped || attempts > self.max_retries || now + delay >= deadline {
                return Err(error.gave_up(attempts, now - start));
            }
            tracing::debug!(attempt = attempts, retry_in = ?delay, "transient storage error, retrying");
            match stop {
                Some(stop) => tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.stopped() => return Err(error.gave_up(attempts, start.elapsed())),
                },
                None => tokio::time::sleep(delay).await,
            }
            last = Some(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, PartialEq)]
    enum Fake {
        Transient,
        Permanent,
        TimedOut(Duration),
        GaveUp(u32, Box<Fake>),
    }

    impl Retryable for Fake {
        fn is_transient(&self) -> bool {
            matches!(self, Fake::Transient | Fake::TimedOut(_))
        }
        fn timed_out(after: Duration) -> Self {
            Fake::TimedOut(after)
        }
        fn gave_up(self, attempts: u32, _: Duration) -> Self {
            Fake::GaveUp(attempts, Box::new(self))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_retries_of_a_failing_operation_at_once() {
        let (handle, stop) = Stop::pair();
        let tries = AtomicU32::new(0);
        let config = RetryConfig::default();
        let started = Instant::now();
        let run = config.run_until(Some(&stop), || {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>(Fake::Transient) }
        });
        tokio::pin!(run);
        // Let it fail a few times, then stop.
        tokio::select! {
            _ = &mut run => panic!("it cannot succeed"),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        handle.stop();
        let err = run.await.unwrap_err();
        assert!(matches!(err, Fake::GaveUp(_, _)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        let before = tries.load(Ordering::SeqCst);
        assert!(before >= 1);
        // A healthy first try still completes after the stop.
        let ok = config
            .run_until(Some(&stop), || async { Ok::<_, Fake>(7) })
            .await;
        assert_eq!(ok, Ok(7));
    }

    #[test]
    fn delays_grow_with_jitter_and_stay_under_the_cap() {
        let config = BackoffConfig {
            init: Duration::from_millis(100),
            max: Duration::from_secs(2),
            base: 2.0,
        };
        let mut b = Backoff::with_seed(config, 7);
        let mut ceilings = Vec::new();
        for _ in 0..8 {
            let ceiling = b.ceiling();
            let d = b.next_delay();
            assert!(
                d <= ceiling && d >= Duration::from_millis(50),
                "{d:?} vs {ceiling:?}"
            );
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 2000, 2000, 2000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
        // Two clients seeded apart do not retry in step.
        let mut a = Backoff::with_seed(config, 1);
        let mut c = Backoff::with_seed(config, 2);
        assert!((0..5).any(|_| a.next_delay() != c.next_delay()));
    }

    #[tokio::test(start_paused = true)]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, Fake> = RetryConfig::default()
            .run(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(Fake::Transient),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(r, Ok(2));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let r: Result<(), Fake> = RetryConfig::default()
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Fake::Permanent)
            })
            .await;
        assert_eq!(r, Err(Fake::Permanent));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_endpoint_costs_the_operation_deadline_not_attempts_times_timeout() {
        let config = RetryConfig::default();
        let start = Instant::now();
        let r: Result<(), Fake> = config.run(std::future::pending).await;
        let took = start.elapsed();
        assert!(
            matches!(r, Err(Fake::GaveUp(_, ref last)) if matches!(**last, Fake::TimedOut(_))),
            "{r:?}"
        );
        assert!(took <= config.retry_timeout, "{took:?}");
        assert!(
            took >= config.retry_timeout - config.backoff.max,
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_counted() {
        let config = RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(3600),
            ..RetryConfig::default()
        };
        let calls = AtomicU32::new(0);
        let r: Result<(), Fake> = config
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Fake::Transient)
            })
            .await;
        assert_eq!(r, Err(Fake::GaveUp(4, Box::new(Fake::Transient))));
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }
}
