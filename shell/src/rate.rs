//! The serving cap: one budget of bytes per second shared by every transfer.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Paces transfers so that together they send at most `rate` bytes per second, with a burst of
/// about one second.
///
/// Each chunk books the next free slot on a virtual timeline; its sender waits until then. That
/// keeps the long-run rate exact without a refill task.
#[derive(Debug)]
pub struct RateLimiter {
    rate: u64,
    next_free: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter of `rate` bytes per second (at least 1).
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            next_free: Mutex::new(Instant::now()),
        }
    }

    /// Books `bytes` and says how long to wait before sending more.
    pub fn reserve(&self, bytes: u64) -> Duration {
        self.reserve_at(bytes, Instant::now())
    }

    fn reserve_at(&self, bytes: u64, now: Instant) -> Duration {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate as f64);
        let mut next = self.next_free.lock().unwrap_or_else(|e| e.into_inner());
        // Idle time earns at most a second of credit.
        let burst_floor = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        let start = (*next).max(burst_floor);
        *next = start + cost;
        next.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paces_to_the_rate_after_a_burst() {
        let limiter = RateLimiter::new(1000);
        let t0 = Instant::now() + Duration::from_secs(10);
        // The first second's worth goes out at once (the burst).
        assert_eq!(limiter.reserve_at(1000, t0), Duration::ZERO);
        // Then each 500 bytes waits half a second more.
        assert_eq!(limiter.reserve_at(500, t0), Duration::from_millis(500));
        assert_eq!(limiter.reserve_at(500, t0), Duration::from_secs(1));
        // After waiting, the debt is paid.
        assert_eq!(
            limiter.reserve_at(0, t0 + Duration::from_secs(1)),
            Duration::ZERO
        );
    }
}
