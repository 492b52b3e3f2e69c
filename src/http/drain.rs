//! Request bodies a handler answered without reading.
//!
//! A handler may answer before it reads the body: a 401 or 503 from authentication, a 404 for
//! an id, a 413. hyper then drains what it has already buffered; if the rest of the body has
//! not arrived yet, it closes the connection after the response without saying so, and the
//! client's next request on that keep-alive connection fails (a broken pipe). So the body is
//! watched, and whatever a handler leaves unread is read and discarded on a task of its own
//! while the response goes out (hyper reads the next request once the body is done). The
//! response is not held back for it: a client that sends its body in a packet of its own may
//! be waiting for the server to acknowledge the head first (Nagle's algorithm meeting delayed
//! ACKs, up to 40 ms), and the response is what acknowledges it. A body larger than any body
//! taken, or not sent within a second, is given up, and hyper closes the connection.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Body as _, Frame, SizeHint};

use super::extract::MAX_BODY_BYTES;

/// How long a client may take to send the rest of a body nobody reads.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Wraps `body` (unless it is already at its end: no body at all, the usual GET) so that
/// whatever of it the handler drops unread is read and discarded on a task of its own.
pub fn discard_what_is_left_unread(body: &mut Body) {
    if body.is_end_stream() {
        return;
    }
    let inner = std::mem::take(body);
    *body = Body::new(Watched {
        inner: Some(inner),
        finished: false,
    });
}

/// Whether the whole body arrived (and was no larger than `MAX_BODY_BYTES`).
async fn discard(mut body: Body) -> bool {
    let mut read = 0usize;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                read += frame.data_ref().map_or(0, Bytes::len);
                if read > MAX_BODY_BYTES {
                    return false;
                }
            }
        }
    }
}

/// The request body as the handler sees it; dropped unread, it hands the rest to `discard`.
struct Watched {
    inner: Option<Body>,
    finished: bool,
}

impl Watched {
    /// What is left to read, once: `None` when the body was read to its end.
    fn left(&mut self) -> Option<Body> {
        let inner = self.inner.take()?;
        (!self.finished && !inner.is_end_stream()).then_some(inner)
    }
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().map_or(true, Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let Some(left) = self.left() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, discard(left)).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(body: Body) -> Watched {
        Watched {
            inner: Some(body),
            finished: false,
        }
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_leaves_nothing() {
        let mut body = watched(Body::from("{}"));
        let mut read = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Some(data) = frame.expect("a frame").data_ref() {
                read.extend_from_slice(data);
            }
        }
        assert_eq!(read, b"{}");
        assert!(body.left().is_none());
    }

    #[tokio::test]
    async fn an_unread_body_is_left_whole_to_discard() {
        let mut body = watched(Body::from("{\"never\":\"read\"}"));
        let left = body.left().expect("left unread");
        assert!(discard(left).await);
    }

    #[tokio::test]
    async fn a_body_too_large_to_discard_is_given_up() {
        let mut body = watched(Body::from(vec![b'x'; MAX_BODY_BYTES + 1]));
        assert!(!discard(body.left().expect("left unread")).await);
    }
}
