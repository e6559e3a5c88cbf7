//! systemd's readiness protocol (`sd_notify`), spoken directly: one datagram to the socket
//! named by `NOTIFY_SOCKET`, when systemd set it (`Type=notify`). Without it, nothing
//! happens, so the same binary runs anywhere.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;

/// Tells systemd the service's state, such as `READY=1` or `STOPPING=1`; does nothing when
/// not started by systemd with `Type=notify`. A failure is logged, never fatal.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    if let Err(error) = send(path.as_bytes(), state) {
        tracing::warn!(%error, state, "cannot notify systemd");
    }
}

fn send(path: &[u8], state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    match path.strip_prefix(b"@") {
        // An abstract socket, as systemd names it: `@` stands for the leading NUL.
        #[cfg(target_os = "linux")]
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &address)?;
        }
        _ => {
            socket.send_to(state.as_bytes(), std::ffi::OsStr::from_bytes(path))?;
        }
    }
    Ok(())
}
