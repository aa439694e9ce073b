//! The open-files limit, and how many connections fit in it.

/// Descriptors kept back for storage, audit files, database pools and the
/// outgoing connections engines make.
const RESERVED: u64 = 128;
/// Connections allowed when the limit is very large (or unlimited).
const MAX_BUDGET: u64 = 16_384;

/// Raises the soft limit on open files to the hard limit (as Go programs,
/// Vault among them, do at start) and returns the limit now in force.
pub fn raise() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Connections to allow under a limit of `fds` open files: the limit less a
/// reserve (at least a quarter of it), never more than [`MAX_BUDGET`].
pub fn connection_budget(fds: u64) -> usize {
    let reserve = RESERVED.max(fds / 4);
    let budget = fds.saturating_sub(reserve).clamp(16, MAX_BUDGET);
    usize::try_from(budget).unwrap_or(16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_leave_room_for_the_server() {
        assert_eq!(connection_budget(256), 128);
        assert_eq!(connection_budget(1024), 768);
        assert_eq!(connection_budget(1 << 20), 16_384);
        assert_eq!(connection_budget(20), 16);
    }
}
