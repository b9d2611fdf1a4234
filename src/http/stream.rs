//! TCP and unix sockets behind one type each, so the server code does not care which it
//! serves. Everything here is std (an inherited socket is taken over in `sys`): no libc.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Listen;
use crate::sys;

/// An accepted connection. Shared (`Arc`) between its thread and the registry, which may shut
/// it down from another thread to evict it: every method takes `&self`.
#[derive(Debug)]
pub(super) enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A unix socket connection.
    Unix(UnixStream),
}

impl Stream {
    /// `read(2)`: `Ok(0)` at end of stream.
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).read(buf),
            Stream::Unix(s) => (&*s).read(buf),
        }
    }

    /// `write(2)`.
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => (&*s).write(buf),
            Stream::Unix(s) => (&*s).write(buf),
        }
    }

    /// `SO_RCVTIMEO`: a blocking read fails with `WouldBlock`/`TimedOut` after this long.
    pub(super) fn set_read_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_read_timeout(Some(timeout)),
        }
    }

    /// `SO_SNDTIMEO`: a blocking write fails with `WouldBlock`/`TimedOut` after this long.
    pub(super) fn set_write_timeout(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(Some(timeout)),
            Stream::Unix(s) => s.set_write_timeout(Some(timeout)),
        }
    }

    /// `O_NONBLOCK` on or off.
    pub(super) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(nonblocking),
            Stream::Unix(s) => s.set_nonblocking(nonblocking),
        }
    }

    /// Whether bytes have arrived that nobody has read yet (`FIONREAD`): a request begun on
    /// a connection whose thread has not read it yet.
    pub(super) fn has_unread(&self) -> bool {
        let fd = match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        };
        sys::unread_bytes(fd).is_ok_and(|n| n > 0)
    }

    /// `shutdown(2)`. From another thread, `Shutdown::Both` makes the owner's blocked read
    /// return end of stream and its blocked write fail, at once.
    pub(super) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// Readies a freshly accepted socket: blocking mode (BSDs pass the listener's
    /// `O_NONBLOCK` on to accepted sockets; Linux does not) and, for TCP, `TCP_NODELAY`, so a
    /// response that takes more than one segment is not held back by Nagle's algorithm
    /// waiting for the client's delayed ACK (~40 ms on Linux).
    pub(super) fn prepare(&self) -> io::Result<()> {
        self.set_nonblocking(false)?;
        if let Stream::Tcp(s) = self {
            s.set_nodelay(true)?;
        }
        Ok(())
    }
}

/// The listening socket. A unix socket file is removed when the listener is dropped, if it
/// is still the one we created.
#[derive(Debug)]
pub(super) enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A unix socket listener and the file it created.
    Unix {
        /// The socket.
        listener: UnixListener,
        /// The socket file.
        path: PathBuf,
        /// (device, inode) of the socket file, so that we never remove a file someone else
        /// has put there since.
        file_id: (u64, u64),
    },
    /// An inherited unix socket listener ([`Listen::Inherited`]): its file is not ours.
    InheritedUnix(UnixListener),
}

impl Listener {
    /// Binds, in nonblocking mode (the accept loop waits in `poll` so that shutdown can wake
    /// it).
    pub(super) fn bind(listen: &Listen) -> io::Result<Listener> {
        let listener = match listen {
            Listen::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr)?),
            Listen::Inherited(fd) => match sys::inherited_listener(*fd)? {
                sys::InheritedListener::Tcp(l) => Listener::Tcp(l),
                sys::InheritedListener::Unix(l) => Listener::InheritedUnix(l),
            },
            Listen::Unix(path) => {
                let listener = bind_unix(path)?;
                let meta = fs::symlink_metadata(path)?;
                Listener::Unix {
                    listener,
                    path: path.clone(),
                    file_id: (meta.dev(), meta.ino()),
                }
            }
        };
        match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true)?,
            Listener::Unix { listener, .. } | Listener::InheritedUnix(listener) => {
                listener.set_nonblocking(true)?;
            }
        }
        Ok(listener)
    }

    /// Accepts one pending connection: the stream and the peer, for logs.
    pub(super) fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => l
                .accept()
                .map(|(s, peer)| (Stream::Tcp(s), peer.to_string())),
            Listener::Unix { listener, .. } | Listener::InheritedUnix(listener) => listener
                .accept()
                .map(|(s, _)| (Stream::Unix(s), "unix".to_owned())),
        }
    }

    /// The fd to poll for pending connections.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Listener::Tcp(l) => l.as_fd(),
            Listener::Unix { listener, .. } | Listener::InheritedUnix(listener) => listener.as_fd(),
        }
    }

    /// `http://IP:PORT` (IPv6 in brackets) or `unix:/path`.
    pub(super) fn url(&self) -> io::Result<String> {
        match self {
            Listener::Tcp(l) => Ok(format!("http://{}", l.local_addr()?)),
            Listener::Unix { path, .. } => Ok(format!("unix:{}", path.display())),
            Listener::InheritedUnix(l) => {
                let addr = l.local_addr()?;
                Ok(match addr.as_pathname() {
                    Some(path) => format!("unix:{}", path.display()),
                    None => "unix:(inherited socket without a path)".to_owned(),
                })
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix { path, file_id, .. } = self {
            let ours = fs::symlink_metadata(&*path).is_ok_and(|m| (m.dev(), m.ino()) == *file_id);
            if ours {
                if let Err(e) = fs::remove_file(&*path) {
                    log::warn!("could not remove socket file {}: {e}", path.display());
                }
            }
        }
    }
}

/// Mode of a unix socket file, whatever the umask: only the server's own user may connect
/// (without a token, anyone who can connect can run commands).
pub const UNIX_SOCKET_MODE: u32 = 0o600;

/// Binds a unix socket at `path` with [`UNIX_SOCKET_MODE`], never reachable with a looser
/// mode: it is bound under a temporary name in the same directory, given its mode, then
/// renamed into place (a rename is atomic, so a client sees no socket or the finished one).
/// `AddrInUse` if something is at `path` already.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AddrInUse));
    }
    let name = format!(".procwarden-{}.sock", std::process::id());
    let staging = path
        .parent()
        .map_or_else(|| name.clone().into(), |dir| dir.join(&name));
    // A leftover of an earlier run with our pid: ours to replace.
    let _ = fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    let placed = fs::set_permissions(&staging, fs::Permissions::from_mode(UNIX_SOCKET_MODE))
        .and_then(|()| fs::rename(&staging, path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&staging);
        return Err(e);
    }
    Ok(listener)
}

/// Binds a unix socket at `path`. A socket file already there is replaced only if it is stale
/// (connecting to it is refused: nobody listens); a live socket, or a file that is not a
/// socket, is `AddrInUse`. (Between the refused connect and the new bind another server could
/// take the path; both would then believe they own it. Starting two servers on one path at the
/// same instant is not supported.)
fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    match bind_private(path) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
        other => return other,
    }
    let in_use = |why: String| {
        io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("address in use: {}: {why}", path.display()),
        )
    };
    let meta = fs::symlink_metadata(path)?;
    if !meta.file_type().is_socket() {
        return Err(in_use("the file exists and is not a socket".into()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(in_use("another server is listening there".into())),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            log::info!("removing stale socket file {}", path.display());
            fs::remove_file(path)?;
            bind_private(path)
        }
        Err(e) => Err(in_use(format!("cannot tell whether it is in use ({e})"))),
    }
}
