//! Request bodies counted against the memory budget as they arrive, and timed out when they
//! stall: a client that sends most of a large message and stops holds budget (so others are
//! refused rather than the pod OOM-killed) only until `limits.stream_idle_seconds` pass.
//!
//! gRPC bodies are read with their framing in mind (1 flag byte, 4 length bytes, message): what
//! is held is the message being assembled, since tonic buffers it whole before the handler
//! sees it; once complete it is the handler's to account for. Other bodies hold everything they
//! received until dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;

use crate::budget::{MemoryBudget, Reservation};
use crate::error::ServiceError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a gRPC body is within its length-prefixed messages.
#[derive(Debug, Default)]
struct Framing {
    header: [u8; 5],
    header_have: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
    /// Bytes of the current message (with its header) received so far.
    current: u64,
}

impl Framing {
    /// Feeds received bytes; returns the bytes of the message still being assembled.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        while !data.is_empty() {
            if self.remaining == 0 && self.header_have < 5 {
                let n = (5 - self.header_have).min(data.len());
                self.header[self.header_have..self.header_have + n].copy_from_slice(&data[..n]);
                self.header_have += n;
                self.current += n as u64;
                data = &data[n..];
                if self.header_have == 5 {
                    let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                    self.remaining = u64::from(len);
                    if self.remaining == 0 {
                        self.reset();
                    }
                }
                continue;
            }
            let n = (self.remaining as usize).min(data.len());
            self.remaining -= n as u64;
            self.current += n as u64;
            data = &data[n..];
            if self.remaining == 0 {
                self.reset();
            }
        }
        self.current
    }

    fn reset(&mut self) {
        *self = Self::default();
    }
}

pub struct Budgeted<B> {
    inner: B,
    reservation: Reservation,
    framing: Option<Framing>,
    received: u64,
    idle: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<B> Budgeted<B> {
    /// A gRPC body: holds the message being assembled.
    pub fn grpc(inner: B, budget: &Arc<MemoryBudget>, idle: Duration) -> Self {
        Self::new(inner, budget, idle, Some(Framing::default()))
    }

    /// Any other body: holds all it received.
    pub fn whole(inner: B, budget: &Arc<MemoryBudget>, idle: Duration) -> Self {
        Self::new(inner, budget, idle, None)
    }

    fn new(inner: B, budget: &Arc<MemoryBudget>, idle: Duration, framing: Option<Framing>) -> Self {
        Self { inner, reservation: budget.reservation(), framing, received: 0, idle, stalled: None }
    }
}

/// A refused or stalled body. tonic finds the status in the error's source chain and answers
/// with it; the HTTP handler downcasts and answers with the error.
#[derive(Debug)]
pub struct BodyRefused {
    pub error: ServiceError,
    status: tonic::Status,
}

impl std::fmt::Display for BodyRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for BodyRefused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.status)
    }
}

fn refusal(error: ServiceError) -> BoxError {
    let status = tonic::Status::from(error.clone());
    Box::new(BodyRefused { error, status })
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stalled = None;
                if let Some(data) = frame.data_ref() {
                    let held = match &mut this.framing {
                        Some(f) => f.feed(data.chunk()),
                        None => {
                            this.received += data.remaining() as u64;
                            this.received
                        }
                    };
                    if let Err(e) = this.reservation.set(held) {
                        return Poll::Ready(Some(Err(refusal(e.into()))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                let _ = this.reservation.set(0);
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                ready!(timer.as_mut().poll(cx));
                let seconds = idle.as_secs_f64();
                Poll::Ready(Some(Err(refusal(ServiceError::BodyStalled { seconds }))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    #[test]
    fn framing_holds_only_the_message_being_assembled() {
        let mut f = Framing::default();
        let mut msg = vec![0u8, 0, 0, 0, 10];
        msg.extend_from_slice(&[7; 10]);
        assert_eq!(f.feed(&msg[..3]), 3);
        assert_eq!(f.feed(&msg[3..9]), 9);
        // The message completes, and the next one's header begins in the same frame.
        let mut rest = msg[9..].to_vec();
        rest.extend_from_slice(&[0, 0, 0, 0, 2, 1]);
        assert_eq!(f.feed(&rest), 6);
        assert_eq!(f.feed(&[1]), 0);
        // An empty message is complete at its header.
        assert_eq!(f.feed(&[0, 0, 0, 0, 0]), 0);
    }
}
