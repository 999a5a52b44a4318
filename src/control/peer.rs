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

/// Supplementary groups of the process that opened a connection, as the
/// kernel saw them at `connect(2)` time (`SO_PEERGROUPS`).
pub(crate) fn peer_groups(stream: &UnixStream) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is writable for `len` bytes; the fd is open.
        let rc = unsafe {
            libc::getsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && n > groups.len() {
            groups.resize(n, 0);
            continue;
        }
        return Err(err);
    }
}

/// Which peers may issue control requests.
#[derive(Debug, Clone)]
pub(crate) struct AccessPolicy {
    allowed_uids: Vec<u32>,
    /// Members of this group (primary or supplementary) may also talk to us
    /// (`control_group` in the config).
    group: Option<u32>,
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
        AccessPolicy {
            allowed_uids,
            group: None,
        }
    }

    /// Also admits members of group `gid` (if given).
    pub fn with_group(mut self, gid: Option<u32>) -> AccessPolicy {
        self.group = gid;
        self
    }

    /// The admin group, if one is configured.
    pub fn group(&self) -> Option<u32> {
        self.group
    }

    /// Like [`check`](Self::check), also admitting members of the admin
    /// group; `groups` yields the peer's supplementary groups (asked only
    /// when needed).
    pub fn check_with_groups(
        &self,
        peer: &PeerCred,
        groups: impl FnOnce() -> Vec<u32>,
    ) -> Result<(), String> {
        let refused = match self.check(peer) {
            Ok(()) => return Ok(()),
            Err(message) => message,
        };
        let Some(gid) = self.group else {
            return Err(refused);
        };
        if peer.gid == gid || groups().contains(&gid) {
            return Ok(());
        }
        Err(format!(
            "permission denied: tierfs control requests are for root and members of \
             group {gid} (you are uid {}); run tierctl as root or join that group",
            peer.uid
        ))
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
    fn reads_own_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let groups = peer_groups(&a).unwrap();
        let mut own = vec![0 as libc::gid_t; 256];
        // SAFETY: `own` has room for 256 gids.
        let n = unsafe { libc::getgroups(256, own.as_mut_ptr()) };
        assert!(n >= 0);
        own.truncate(n as usize);
        for g in &own {
            assert!(groups.contains(g), "{groups:?} lacks {g}");
        }
    }

    #[test]
    fn group_members_are_admitted_when_a_group_is_configured() {
        let peer = PeerCred {
            pid: 1,
            uid: 1000,
            gid: 1000,
        };
        let plain = AccessPolicy::uids(vec![0]);
        assert!(plain.check_with_groups(&peer, || vec![4242]).is_err());
        let grouped = AccessPolicy::uids(vec![0]).with_group(Some(4242));
        assert!(grouped.check_with_groups(&peer, || vec![7, 4242]).is_ok());
        let e = grouped.check_with_groups(&peer, || vec![7]).unwrap_err();
        assert!(e.contains("group 4242") && e.contains("uid 1000"), "{e}");
        let primary = PeerCred { gid: 4242, ..peer };
        assert!(grouped.check_with_groups(&primary, Vec::new).is_ok());
        // Root needs no group.
        let root = PeerCred { uid: 0, ..peer };
        assert!(grouped.check_with_groups(&root, Vec::new).is_ok());
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
