//! Sockets handed to us by a service manager (systemd's socket activation): taking over a
//! listening socket by its descriptor number, and the readiness datagram (`sd_notify`).

use std::ffi::OsStr;
use std::io;
use std::mem::MaybeUninit;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixListener};

use super::platform;

/// A listening socket taken over from the process's parent.
#[derive(Debug)]
pub(crate) enum InheritedListener {
    /// An `AF_INET` or `AF_INET6` stream socket.
    Tcp(TcpListener),
    /// An `AF_UNIX` stream socket.
    Unix(UnixListener),
}

/// Reads an `int` socket option.
fn int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which is that large.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Takes over the listening stream socket at descriptor `fd`, which this process inherited
/// (socket activation passes them from fd 3 on). It is marked close-on-exec, so children do
/// not inherit it. Refuses (without taking it) a descriptor that is not open, not a socket,
/// not a stream socket, not listening, or of another family than IPv4, IPv6 or unix.
///
/// The caller must not use `fd` otherwise afterwards: on success it belongs to the returned
/// listener, which closes it when dropped.
pub(crate) fn inherited_listener(fd: RawFd) -> io::Result<InheritedListener> {
    let invalid =
        |why: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd}: {why}"));
    // SAFETY: F_GETFD only reads the descriptor's flags (EBADF if it is not open).
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if int_option(fd, libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(invalid("not a stream socket"));
    }
    if int_option(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return Err(invalid("the socket is not listening"));
    }
    let mut addr = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname writes at most `len` bytes into the storage, which is that large.
    if unsafe { libc::getsockname(fd, addr.as_mut_ptr().cast(), &mut len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised and (partly) written by getsockname: every bit pattern is a
    // valid sockaddr_storage.
    let family = libc::c_int::from(unsafe { addr.assume_init() }.ss_family);
    if ![libc::AF_INET, libc::AF_INET6, libc::AF_UNIX].contains(&family) {
        return Err(invalid("not an IPv4, IPv6 or unix socket"));
    }
    // SAFETY: F_SETFD sets the descriptor's own flags; `flags` came from F_GETFD above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (F_GETFD succeeded) and, by this function's contract, ours from
    // here on: nothing else in the process uses or closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(if family == libc::AF_UNIX {
        InheritedListener::Unix(UnixListener::from(owned))
    } else {
        InheritedListener::Tcp(TcpListener::from(owned))
    })
}

/// Sends `message` (e.g. `READY=1`) as one datagram to the service manager's notification
/// socket `address`, as `$NOTIFY_SOCKET` names it: a path, or `@name` for a Linux abstract
/// socket.
pub(crate) fn notify(address: &OsStr, message: &str) -> io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = address.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => platform::send_to_abstract(&socket, name, message.as_bytes())?,
        None => socket.send_to(message.as_bytes(), address)?,
    };
    if sent != message.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "the notification was cut short",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    #[test]
    fn a_listening_tcp_socket_is_taken_over_and_marked_cloexec() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let fd = listener.into_raw_fd();
        let Ok(InheritedListener::Tcp(taken)) = inherited_listener(fd) else {
            panic!("not taken over as TCP");
        };
        assert_eq!(taken.local_addr().expect("addr"), addr);
        // SAFETY: F_GETFD only reads the flags of a descriptor we own.
        let flags = unsafe { libc::fcntl(taken.as_raw_fd(), libc::F_GETFD) };
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[test]
    fn what_is_not_a_listening_stream_socket_is_refused() {
        let dir = std::env::temp_dir().join(format!("pw-sock-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let datagram = UnixDatagram::bind(dir.join("d")).expect("bind");
        assert!(inherited_listener(datagram.as_raw_fd()).is_err());
        let file = std::fs::File::open("/dev/null").expect("open");
        assert!(inherited_listener(file.as_raw_fd()).is_err());
        let unlistened = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        assert!(inherited_listener(unlistened.as_raw_fd()).is_err());
        assert!(inherited_listener(-1).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn notifications_arrive_as_one_datagram() {
        let dir = std::env::temp_dir().join(format!("pw-notify-{}", std::process::id()));
        let _ = std::fs::create_dir(&dir);
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        notify(path.as_os_str(), "READY=1").expect("sent");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1");
        assert!(notify(dir.join("nobody").as_os_str(), "READY=1").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
