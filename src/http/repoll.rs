//! Wake-ups a connection gives itself while it is being polled become an immediate re-poll.
//!
//! hyper hands a request body to the handler through a channel: the handler polls it before
//! hyper has read the body, then hyper, in the same poll of the connection's task, reads it and
//! wakes the handler — that is, the task that is running. tokio treats a task woken while it runs
//! as having yielded: it goes to the back of the run queue and a parked worker is woken to help
//! (tokio's `schedule_local` with `is_yield`), only for the task to find its work already done.
//! Wrapping the connection future, a wake-up that arrives while it is being polled is recorded
//! instead, and the future is polled again at once; wake-ups at any other time go to tokio.
//! Measured on cached `POST /auth/check`: 54.7k → 52.9k instructions per request (callgrind),
//! 0.42 → 0.38–0.40 context switches per request (perf).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Re-polls in a row before a self-wake is handed to tokio after all (a future that keeps waking
/// itself must still let others run).
const MAX_REPOLLS: usize = 4;

pub struct Repoll<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

struct Signal {
    polling: AtomicBool,
    woken: AtomicBool,
    /// tokio's waker for the task, from the last poll.
    outer: Mutex<Option<Waker>>,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        if self.polling.load(Ordering::SeqCst) {
            // The poll in progress will see `woken` and poll again.
            return;
        }
        if let Ok(outer) = self.outer.lock() {
            if let Some(waker) = outer.as_ref() {
                waker.wake_by_ref();
            }
        }
    }
}

impl<F: Future> Repoll<F> {
    pub fn new(inner: F) -> Self {
        let signal = Arc::new(Signal {
            polling: AtomicBool::new(false),
            woken: AtomicBool::new(false),
            outer: Mutex::new(None),
        });
        Repoll {
            inner: Box::pin(inner),
            waker: Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        if let Ok(mut outer) = this.signal.outer.lock() {
            if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *outer = Some(cx.waker().clone());
            }
        }
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..MAX_REPOLLS {
            this.signal.woken.store(false, Ordering::SeqCst);
            this.signal.polling.store(true, Ordering::SeqCst);
            let poll = this.inner.as_mut().poll(&mut inner_cx);
            this.signal.polling.store(false, Ordering::SeqCst);
            if poll.is_ready() {
                return poll;
            }
            if !this.signal.woken.load(Ordering::SeqCst) {
                return Poll::Pending;
            }
        }
        // Still waking itself: let tokio schedule it like any other task.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// tokio's waker, as far as these tests care: how often it was woken.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Pending with a self-wake `self_wakes` times (like hyper's body hand-over), then ready;
    /// counts its polls.
    struct WakesItself {
        self_wakes: usize,
        polls: Arc<AtomicUsize>,
    }

    impl Future for WakesItself {
        type Output = &'static str;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<&'static str> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.self_wakes == 0 {
                return Poll::Ready("done");
            }
            self.self_wakes -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(future: &mut Repoll<F>, outer: &Arc<Counting>) -> Poll<F::Output> {
        let waker = Waker::from(outer.clone());
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_wake_during_the_poll_is_a_repoll_not_a_reschedule() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut future = Repoll::new(WakesItself {
            self_wakes: 1,
            polls: polls.clone(),
        });
        let outer = Arc::new(Counting::default());
        assert_eq!(poll_once(&mut future, &outer), Poll::Ready("done"));
        assert_eq!(polls.load(Ordering::SeqCst), 2, "polled again at once");
        assert_eq!(
            outer.0.load(Ordering::SeqCst),
            0,
            "tokio was not asked to reschedule"
        );
    }

    #[test]
    fn a_wake_after_the_poll_goes_to_the_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u8>();
        let mut future = Repoll::new(rx);
        let outer = Arc::new(Counting::default());
        assert!(poll_once(&mut future, &outer).is_pending());
        assert_eq!(outer.0.load(Ordering::SeqCst), 0);
        tx.send(7).expect("receiver alive");
        assert_eq!(
            outer.0.load(Ordering::SeqCst),
            1,
            "woken from outside the poll"
        );
        assert_eq!(poll_once(&mut future, &outer), Poll::Ready(Ok(7)));
    }

    #[test]
    fn a_future_that_keeps_waking_itself_still_yields() {
        let polls = Arc::new(AtomicUsize::new(0));
        let mut future = Repoll::new(WakesItself {
            self_wakes: usize::MAX,
            polls: polls.clone(),
        });
        let outer = Arc::new(Counting::default());
        assert!(poll_once(&mut future, &outer).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_REPOLLS);
        assert_eq!(outer.0.load(Ordering::SeqCst), 1, "handed back to tokio");
    }
}
