//! The `socket` audit device: lines over TCP or a Unix socket. A connection
//! whose peer went away is noticed before writing (the socket reads as
//! closed) and replaced; if no new connection can be made the device fails
//! that entry, and the broker decides whether the request may go on.

use std::time::Duration;

use coffer_core::audit::AuditSink;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UnixStream};

/// TCP or Unix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// `host:port`.
    Tcp,
    /// A socket file path.
    Unix,
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// True when the peer closed or reset the connection.
    fn peer_gone(&self) -> bool {
        let mut buf = [0u8; 64];
        let r = match self {
            Conn::Tcp(s) => s.try_read(&mut buf),
            Conn::Unix(s) => s.try_read(&mut buf),
        };
        match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }

    async fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => s.write_all(line).await,
            Conn::Unix(s) => s.write_all(line).await,
        }
    }
}

/// A socket device's destination.
pub struct SocketSink {
    address: String,
    kind: SocketKind,
    timeout: Duration,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl SocketSink {
    /// A sink that connects on first use.
    pub fn new(address: String, kind: SocketKind, timeout: Duration) -> Self {
        Self {
            address,
            kind,
            timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let connect = async {
            match self.kind {
                SocketKind::Tcp => TcpStream::connect(&self.address).await.map(|s| {
                    let _ = s.set_nodelay(true);
                    Conn::Tcp(s)
                }),
                SocketKind::Unix => UnixStream::connect(&self.address).await.map(Conn::Unix),
            }
        };
        match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(format!("connecting to {}: {e}", self.address)),
            Err(_) => Err(format!("connecting to {}: timed out", self.address)),
        }
    }
}

#[async_trait::async_trait]
impl AuditSink for SocketSink {
    async fn write(&self, line: &[u8]) -> Result<(), String> {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_some_and(Conn::peer_gone) {
            *slot = None;
        }
        let mut conn = match slot.take() {
            Some(c) => c,
            None => self.connect().await?,
        };
        match tokio::time::timeout(self.timeout, conn.write_all(line)).await {
            Ok(Ok(())) => {
                *slot = Some(conn);
                Ok(())
            }
            Ok(Err(e)) => Err(format!("writing to {}: {e}", self.address)),
            Err(_) => Err(format!("writing to {}: timed out", self.address)),
        }
    }

    async fn reopen(&self) -> Result<(), String> {
        *self.conn.lock().await = None;
        Ok(())
    }
}
