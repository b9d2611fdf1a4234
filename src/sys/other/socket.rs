//! Other unix systems: no abstract unix socket addresses.

use std::io;
use std::os::unix::net::UnixDatagram;

/// Abstract unix socket names are Linux-only: unsupported here.
pub(in crate::sys) fn send_to_abstract(
    _socket: &UnixDatagram,
    _name: &[u8],
    _message: &[u8],
) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract unix socket addresses (@name) exist only on Linux",
    ))
}
