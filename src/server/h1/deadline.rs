//! One timer per fast-path connection. Each phase of a connection has a
//! deadline (the idle wait for a request, a request head, the upstream's
//! answer); setting one is a clock reading and a comparison, not a timer
//! registration. The timer stays armed for the earliest deadline it has
//! been asked for; when it fires before the deadline now in force, it is
//! re-armed for that one. A busy connection thus touches the timer wheel
//! about once per timeout length, not twice per request.

use std::pin::Pin;
use tokio::time::{Instant, Sleep};

pub struct Deadline {
    timer: Pin<Box<Sleep>>,
    /// The deadline in force.
    at: Instant,
}

impl Deadline {
    pub fn new(at: Instant) -> Deadline {
        Deadline {
            timer: Box::pin(tokio::time::sleep_until(at)),
            at,
        }
    }

    /// The deadline in force from now on.
    pub fn set(&mut self, at: Instant) {
        self.at = at;
        if at < self.timer.deadline() {
            self.timer.as_mut().reset(at);
        }
    }

    /// Completes once the deadline in force has passed.
    pub async fn passed(&mut self) {
        loop {
            self.timer.as_mut().await;
            if Instant::now() >= self.at {
                return;
            }
            let at = self.at;
            self.timer.as_mut().reset(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn the_deadline_in_force_decides_whether_earlier_or_later() {
        let start = Instant::now();
        let mut d = Deadline::new(start + Duration::from_secs(10));
        // Later: the timer fires at 10 s and is re-armed for 30 s.
        d.set(start + Duration::from_secs(30));
        d.passed().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(30));
        // Earlier than the armed timer: it is moved.
        d.set(Instant::now() + Duration::from_secs(60));
        d.set(Instant::now() + Duration::from_secs(5));
        d.passed().await;
        assert_eq!(Instant::now(), start + Duration::from_secs(35));
        // A phase that ends before its deadline leaves nothing pending.
        d.set(Instant::now() + Duration::from_secs(5));
        let quick = tokio::select! {
            biased;
            () = std::future::ready(()) => true,
            () = d.passed() => false,
        };
        assert!(quick);
        assert_eq!(Instant::now(), start + Duration::from_secs(35));
    }
}
