//! Who is on the other end of a control connection, and may they talk to us.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

/// Credentials of the process that opened a connection, as the kernel saw
/// them at `connect(2)` time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerCred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Reads the peer credentials of a connected Unix socket (`SO_PEERCRED`).
pub(crate) fn peer_cred(stream: &UnixStream) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a valid, writable `ucred` and `len` holds its size,
    // as SO_PEERCRED requires; the fd is owned by `stream` and open.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Which peers may issue control requests.
#[derive(Debug, Clone)]
pub(crate) struct AccessPolicy {
    allowed_uids: Vec<u32>,
}

impl AccessPolicy {
    /// Root, plus the user the daemon runs as (who owns the socket anyway).
    pub fn root_and_self() -> AccessPolicy {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        AccessPolicy::uids(vec![0, euid])
    }

    /// Exactly the given users.
    pub fn uids(mut allowed_uids: Vec<u32>) -> AccessPolicy {
        allowed_uids.sort_unstable();
        allowed_uids.dedup();
        AccessPolicy { allowed_uids }
    }

    /// Ok if `peer` may talk to the daemon, else the message to send it.
    pub fn check(&self, peer: &PeerCred) -> Result<(), String> {
        if self.allowed_uids.contains(&peer.uid) {
            return Ok(());
        }
        Err(format!(
            "permission denied: tierfs control requests are for root only \
             (you are uid {}); run tierctl as root, e.g. with sudo",
            peer.uid
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_credentials() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cred = peer_cred(&a).unwrap();
        assert_eq!(cred.pid, std::process::id() as i32);
        assert_eq!(cred.uid, unsafe { libc::geteuid() });
        assert_eq!(cred.gid, unsafe { libc::getegid() });
    }

    #[test]
    fn policy_allows_listed_uids_only() {
        let policy = AccessPolicy::uids(vec![0, 0, 1000]);
        let peer = |uid| PeerCred {
            pid: 1,
            uid,
            gid: 1,
        };
        assert!(policy.check(&peer(0)).is_ok());
        assert!(policy.check(&peer(1000)).is_ok());
        let e = policy.check(&peer(1001)).unwrap_err();
        assert!(e.contains("root only") && e.contains("uid 1001"), "{e}");
    }
}
