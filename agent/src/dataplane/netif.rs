//! Network interfaces of the current network namespace.
//!
//! Uses `if_nameindex(3)` (netlink under the hood), which answers for the
//! calling thread's network namespace. `/sys/class/net` would not: it shows
//! the namespace `/sys` was mounted in, and the agent runs in a node netns
//! entered with `setns` but with the root mount namespace.

use std::ffi::CStr;

use super::DataplaneError;

/// An interface: kernel index and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Interface {
    pub index: u32,
    pub name: String,
}

/// Every interface of the current network namespace.
pub fn list() -> Result<Vec<Interface>, DataplaneError> {
    // SAFETY: if_nameindex has no preconditions; a null result is an error.
    let head = unsafe { libc::if_nameindex() };
    if head.is_null() {
        return Err(DataplaneError::ListInterfaces(
            std::io::Error::last_os_error(),
        ));
    }
    let mut out = Vec::new();
    let mut cur = head;
    // SAFETY: the array is terminated by an entry with index 0 and a null
    // name; every name before it is a valid C string until freed below.
    unsafe {
        while (*cur).if_index != 0 && !(*cur).if_name.is_null() {
            let name = CStr::from_ptr((*cur).if_name)
                .to_string_lossy()
                .into_owned();
            out.push(Interface {
                index: (*cur).if_index,
                name,
            });
            cur = cur.add(1);
        }
        libc::if_freenameindex(head);
    }
    out.sort();
    Ok(out)
}

/// The interfaces whose name starts with `prefix`.
pub fn with_prefix(prefix: &str) -> Result<Vec<Interface>, DataplaneError> {
    Ok(list()?
        .into_iter()
        .filter(|i| i.name.starts_with(prefix))
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_is_listed() {
        let all = super::list().unwrap();
        assert!(all.iter().any(|i| i.name == "lo"), "{all:?}");
    }
}
