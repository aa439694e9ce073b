//! What a connection is doing, seen from its socket and its requests, and
//! the deadline that follows: a request that has begun must finish its
//! headers within the header timeout; a connection with nothing under way
//! is closed after the idle timeout; while a request is being served there
//! is no deadline (the handler bounds its own work).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

#[derive(Debug)]
struct State {
    in_flight: usize,
    /// When the first byte of a request not yet handed to the service came.
    reading_since: Option<Instant>,
    /// The last byte read or written.
    last: Instant,
}

/// Shared by a connection's socket wrapper, its service and its watchdog.
#[derive(Debug)]
pub(crate) struct Activity {
    state: Mutex<State>,
    changed: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                in_flight: 0,
                reading_since: None,
                last: Instant::now(),
            }),
            changed: Notify::new(),
        })
    }

    fn read(&self) {
        let mut notify = false;
        if let Ok(mut s) = self.state.lock() {
            s.last = Instant::now();
            if s.in_flight == 0 && s.reading_since.is_none() {
                s.reading_since = Some(s.last);
                notify = true;
            }
        }
        if notify {
            self.changed.notify_one();
        }
    }

    fn wrote(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.last = Instant::now();
        }
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        if let Ok(mut s) = self.state.lock() {
            s.in_flight += 1;
            s.reading_since = None;
        }
        InFlight(self.clone())
    }

    /// Resolves with the reason once a deadline has passed.
    pub(crate) async fn expired(&self, header: Duration, idle: Duration) -> &'static str {
        loop {
            let (deadline, why) = {
                let Ok(s) = self.state.lock() else {
                    return "connection state lock poisoned";
                };
                match (s.in_flight, s.reading_since) {
                    (0, Some(t)) => (Some(t + header), "request headers not received in time"),
                    (0, None) => (Some(s.last + idle), "idle"),
                    _ => (None, ""),
                }
            };
            match deadline {
                Some(at) if Instant::now() >= at => {
                    // Activity may have moved the deadline since it was read.
                    if self.still_due(header, idle) {
                        return why;
                    }
                }
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = self.changed.notified() => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    fn still_due(&self, header: Duration, idle: Duration) -> bool {
        let Ok(s) = self.state.lock() else {
            return true;
        };
        let now = Instant::now();
        match (s.in_flight, s.reading_since) {
            (0, Some(t)) => now >= t + header,
            (0, None) => now >= s.last + idle,
            _ => false,
        }
    }
}

/// A request being served; dropping it (answered, or abandoned) ends it.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.last = Instant::now();
        }
        self.0.changed.notify_one();
    }
}

/// A socket that reports its reads and writes to an [`Activity`].
pub(crate) struct Watched<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Watched<IO> {
    pub(crate) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A service that marks each request in flight while it is served.
#[derive(Clone)]
pub(crate) struct CountRequests<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> CountRequests<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S, R> tower::Service<R> for CountRequests<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let guard = self.activity.request_started();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let out = fut.await;
            drop(guard);
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn deadlines_follow_what_the_connection_does() {
        let a = Activity::new();
        let (header, idle) = (Duration::from_secs(10), Duration::from_secs(300));
        // Nothing sent: the idle deadline.
        let t0 = tokio::time::Instant::now();
        assert_eq!(a.expired(header, idle).await, "idle");
        assert!(t0.elapsed() >= idle);
        // A request began: its headers have 10 s.
        a.read();
        let t1 = tokio::time::Instant::now();
        assert_eq!(
            a.expired(header, idle).await,
            "request headers not received in time"
        );
        assert!(t1.elapsed() >= header && t1.elapsed() < idle);
        // While a request is served there is no deadline.
        let g = a.request_started();
        let waited = tokio::time::timeout(Duration::from_secs(3600), a.expired(header, idle)).await;
        assert!(waited.is_err());
        drop(g);
        assert_eq!(a.expired(header, idle).await, "idle");
    }
}
