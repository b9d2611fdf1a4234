//! Linux: abstract unix socket addresses (`@name` in `$NOTIFY_SOCKET`).

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `message` to the abstract unix socket `name` (without its leading `@`).
pub(in crate::sys) fn send_to_abstract(
    socket: &UnixDatagram,
    name: &[u8],
    message: &[u8],
) -> io::Result<usize> {
    let addr = SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &addr)
}
