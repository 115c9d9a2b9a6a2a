//! One accepted connection: the TLS handshake when TLS is on and the HTTP/2
//! preface, together within [`HANDSHAKE_TIMEOUT`] (§7); then HTTP/2 until
//! the client leaves, the connection ages out or the server stops.

use std::{
    convert::Infallible,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{Request, Response};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    service::TowerToHyperService,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::TcpStream,
    sync::watch,
    time::Instant,
};
use tokio_rustls::TlsAcceptor;
use tonic::body::Body;
use tower::Service;

use crate::{identity::Caller, tls::peer_caller};

/// A connection that has not finished its TLS handshake (when TLS is on)
/// and sent the HTTP/2 preface and its first SETTINGS frame by then is
/// closed (§7): half-open connections hold no resources for long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection of one listener shares.
#[derive(Clone)]
pub(super) struct ConnectionOptions {
    /// HTTP/2 with the server's limits.
    pub http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// GOAWAY after this long (already jittered; zero: never).
    pub age: Duration,
    /// How long calls may still take after GOAWAY.
    pub grace: Duration,
    /// Turns true when the server stops.
    pub stop: watch::Receiver<bool>,
}

/// Serves `stream` with `service`, over TLS from `tls` when given.
pub(super) async fn serve_connection<S>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    service: S,
    options: ConnectionOptions,
) where
    S: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let _ = stream.set_nodelay(true);
    // One bound for the TLS handshake and the preface together.
    let handshake_ends = Instant::now() + HANDSHAKE_TIMEOUT;
    match tls {
        None => serve_http2(stream, None, handshake_ends, service, options).await,
        Some(tls) => {
            let stream = match tokio::time::timeout_at(handshake_ends, tls.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    // Plaintext clients, unknown client certificates and
                    // scanners end here; each is the client's problem.
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("closed a connection that finished no TLS handshake in time");
                    return;
                }
            };
            // Computed once: every request of the connection is this caller's.
            let caller = peer_caller(stream.get_ref().1);
            serve_http2(stream, caller, handshake_ends, service, options).await
        }
    }
}

/// HTTP/2 on `io` (plaintext or TLS) once the client sent its preface by
/// `handshake_ends`, each request marked as `caller`'s.
async fn serve_http2<IO, S>(
    mut io: IO,
    caller: Option<Caller>,
    handshake_ends: Instant,
    service: S,
    options: ConnectionOptions,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<hyper::body::Incoming>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let ConnectionOptions {
        http2,
        age,
        grace,
        mut stop,
    } = options;
    let preface = match tokio::time::timeout_at(handshake_ends, read_http2_preface(&mut io)).await {
        Ok(Some(preface)) => preface,
        _ => {
            tracing::debug!("closed a connection that sent no HTTP/2 preface in time");
            return;
        }
    };
    let io = Rewind {
        prefix: preface,
        replayed: 0,
        io,
    };
    let service = TowerToHyperService::new(WithCaller {
        inner: service,
        caller,
    });
    let connection = http2.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        ended = connection.as_mut() => {
            if let Err(error) = ended {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        () = aged(age) => {}
        _ = stop.wait_for(|stopping| *stopping) => {}
    }
    // GOAWAY: no new streams; the calls under way finish.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, connection).await;
}

/// Reads the HTTP/2 connection preface and the whole first SETTINGS frame
/// from `io`, and returns the bytes read (for hyper to read again); `None`
/// when the client sends something else or leaves.
async fn read_http2_preface<IO: AsyncRead + Unpin>(io: &mut IO) -> Option<Vec<u8>> {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    const FRAME_HEADER: usize = 9;
    const SETTINGS: u8 = 0x4;
    /// A SETTINGS frame holds 6 bytes a setting; real clients send a few.
    const MOST_SETTINGS_BYTES: usize = 6 * 16;
    let mut start = [0u8; PREFACE.len() + FRAME_HEADER + MOST_SETTINGS_BYTES];
    let mut read = 0;
    // Each read waits for more bytes; the caller's timeout bounds the loop,
    // and the buffer holds the longest preface accepted, so it cannot fill
    // up before the loop returns.
    loop {
        match io.read(&mut start[read..]).await {
            Ok(0) | Err(_) => return None,
            Ok(more) => read += more,
        }
        let seen = &start[..read];
        if !PREFACE.starts_with(&seen[..read.min(PREFACE.len())]) {
            return None;
        }
        if let Some(header) = seen.get(PREFACE.len()..PREFACE.len() + FRAME_HEADER) {
            let length =
                usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
            if header[3] != SETTINGS || length > MOST_SETTINGS_BYTES {
                return None;
            }
            if read >= PREFACE.len() + FRAME_HEADER + length {
                return Some(seen.to_vec());
            }
        }
    }
}

/// `io` with `prefix` read again first: the preface bytes already read
/// reach hyper as if they had not been.
struct Rewind<IO> {
    prefix: Vec<u8>,
    replayed: usize,
    io: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(rest) = this
            .prefix
            .get(this.replayed..)
            .filter(|rest| !rest.is_empty())
        {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.prefix.len() {
                this.prefix = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Puts the connection's [`Caller`] into every request's extensions, when
/// a client certificate proved one; without it nothing is put there and
/// [`Caller::of`] says anonymous.
#[derive(Clone)]
struct WithCaller<S> {
    inner: S,
    caller: Option<Caller>,
}

impl<S, B> Service<Request<B>> for WithCaller<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        if let Some(caller) = &self.caller {
            request.extensions_mut().insert(caller.clone());
        }
        self.inner.call(request)
    }
}

/// Completes after `age`; never when `age` is zero (`MAX_CONNECTION_AGE=0s`
/// turns the limit off rather than closing every connection at once).
async fn aged(age: Duration) {
    if age.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(age).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_preface_is_read_in_pieces_and_replayed_whole() {
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // An empty SETTINGS frame, then the start of another frame.
        preface.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        preface.extend_from_slice(b"more");
        let (mut client, mut server) = tokio::io::duplex(256);
        let sent = preface.clone();
        let writer = tokio::spawn(async move {
            for piece in sent.chunks(5) {
                tokio::io::AsyncWriteExt::write_all(&mut client, piece)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            client
        });
        let read = read_http2_preface(&mut server).await.expect("a preface");
        let client = writer.await.unwrap();
        drop(client);
        let mut rewound = Rewind {
            prefix: read,
            replayed: 0,
            io: server,
        };
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, preface);
    }

    #[tokio::test]
    async fn anything_but_the_preface_is_refused() {
        let (mut client, mut server) = tokio::io::duplex(256);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_http2_preface(&mut server).await, None);
    }
}
