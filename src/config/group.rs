//! `control_group`: the group whose members may use `tierctl` besides root.

use std::ffi::CString;

/// Resolves a group name (or a numeric gid) to its gid.
pub(super) fn resolve(name: &str) -> Result<u32, String> {
    let name = name.trim();
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let c_name = CString::new(name).map_err(|_| format!("`{name}` contains a NUL byte"))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: `group` is plain data that getgrnam_r fills in.
    let mut group: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    loop {
        // SAFETY: every pointer is valid for the sizes given; getgrnam_r is
        // the reentrant variant and writes only into `group` and `buf`.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(format!(
                "cannot look up group `{name}`: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        if result.is_null() {
            return Err(format!(
                "no group named `{name}` (create it with groupadd, or give a numeric gid)"
            ));
        }
        return Ok(group.gr_gid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_resolve() {
        assert_eq!(resolve("root"), Ok(0));
        assert_eq!(resolve("4242"), Ok(4242));
        let e = resolve("no-such-group-tierfs").unwrap_err();
        assert!(e.contains("no group named `no-such-group-tierfs`"), "{e}");
    }
}
