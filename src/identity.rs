//! Who a caller is: user and group names and ids from the system's user database (NSS, through
//! libc's reentrant calls), for the audit log's "who" and for granting roles by name.

/// A user as the audit log names them: the uid, and its name when the system knows one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub uid: u32,
    pub name: String,
}

impl Actor {
    /// The user `uid`, named by the user database (the number itself when it has no entry).
    pub fn of_uid(uid: u32) -> Actor {
        Actor {
            uid,
            name: user_name(uid).unwrap_or_else(|| uid.to_string()),
        }
    }

    /// The real user of this process (the offline CLI's caller).
    pub fn process() -> Actor {
        // SAFETY: getuid has no preconditions and cannot fail.
        Actor::of_uid(unsafe { libc::getuid() })
    }
}

/// Run a `get*_r` lookup with a growing buffer; `None` when there is no such entry.
fn lookup<T>(mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, bool, T)) -> Option<T> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        let (rc, found, v) = call(&mut buf);
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        return (rc == 0 && found).then_some(v);
    }
}

fn c_str(p: *const libc::c_char) -> String {
    // SAFETY: a non-null name from getpw*/getgr* is a NUL-terminated string in our buffer.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

/// The name of user `uid`.
pub fn user_name(uid: u32) -> Option<String> {
    lookup(|buf| {
        // SAFETY: getpwuid_r writes into `pw` and `buf` (its length given) only.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        let name = (!out.is_null()).then(|| c_str(pw.pw_name));
        (rc, name.is_some(), name.unwrap_or_default())
    })
}

/// The uid and primary gid of user `name`.
pub fn user_by_name(name: &str) -> Option<(u32, u32)> {
    let c = std::ffi::CString::new(name).ok()?;
    lookup(|buf| {
        // SAFETY: getpwnam_r writes into `pw` and `buf` (its length given) only.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc =
            unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        (rc, !out.is_null(), (pw.pw_uid, pw.pw_gid))
    })
}

/// The gid of group `name`.
pub fn group_by_name(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    lookup(|buf| {
        // SAFETY: getgrnam_r writes into `gr` and `buf` (its length given) only.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc =
            unsafe { libc::getgrnam_r(c.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        (rc, !out.is_null(), gr.gr_gid)
    })
}

/// The name of group `gid`.
pub fn group_name(gid: u32) -> Option<String> {
    lookup(|buf| {
        // SAFETY: getgrgid_r writes into `gr` and `buf` (its length given) only.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        let name = (!out.is_null()).then(|| c_str(gr.gr_name));
        (rc, name.is_some(), name.unwrap_or_default())
    })
}

/// Every group of user `uid` (primary `gid` included), from the group database.
pub fn groups_of(uid: u32, gid: u32) -> Vec<u32> {
    let Some(name) = user_name(uid).and_then(|n| std::ffi::CString::new(n).ok()) else {
        return vec![gid];
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let before = n;
        // SAFETY: getgrouplist writes at most `n` gids into `groups` and sets `n`.
        let r = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if r >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if n <= before {
            n = before * 2;
        }
        if n > 65_536 {
            return vec![gid];
        }
    }
}
