//! What `/readyz` and the systemd watchdog ask: are all the listeners still served, and is
//! the server on its way down. Each accept loop (and TURN UDP thread) holds a [`Serving`]
//! guard for as long as it runs, so a loop that ended early shows as a missing listener.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Health {
    expected: AtomicUsize,
    serving: AtomicUsize,
    stopping: AtomicBool,
}

/// Held by one running listener; dropping it says the listener is gone.
#[derive(Debug)]
pub struct Serving(Arc<Health>);

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.serving.fetch_sub(1, Relaxed);
    }
}

impl Health {
    /// How many listeners the server was handed (each one must be served to be ready).
    pub fn expect(&self, listeners: usize) {
        self.expected.store(listeners, Relaxed);
    }

    /// A guard for one listener, counted from now until it is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Relaxed);
        Serving(self.clone())
    }

    /// `(served, expected)` listeners.
    pub fn listeners(&self) -> (usize, usize) {
        (self.serving.load(Relaxed), self.expected.load(Relaxed))
    }

    /// From the start of the shutdown on, the server is not ready (load balancers move away
    /// while it drains).
    pub fn stopping(&self) {
        self.stopping.store(true, Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_that_ends_is_missing() {
        let h = Arc::new(Health::default());
        h.expect(2);
        let a = h.serving();
        let b = h.serving();
        assert_eq!(h.listeners(), (2, 2));
        drop(b);
        assert_eq!(h.listeners(), (1, 2));
        drop(a);
        assert_eq!(h.listeners(), (0, 2));
    }
}
