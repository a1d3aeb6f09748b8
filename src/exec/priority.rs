//! The CPU priority of the run's own threads: early work runs at `SCHED_IDLE` while builds use
//! the CPU, and the work that only has to be ready by a later stage (archives, attestation
//! inputs) yields to the verification that decides when the run ends.

/// The calling thread's id, to change its priority from another thread.
pub fn thread_id() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Puts a thread (0: the calling one) on a scheduling policy: `SCHED_IDLE` runs it (and what it
/// starts afterwards: threads and processes inherit it) only when nothing else wants the CPU;
/// `SCHED_OTHER` is the run's own. False where refused: leaving `SCHED_IDLE` needs root or
/// `RLIMIT_NICE` room.
pub fn set_policy(thread: libc::pid_t, policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for both policies (priority 0); a thread id that
    // has ended makes the call fail.
    unsafe { libc::sched_setscheduler(thread, policy, &param) == 0 }
}

/// Lowers the calling thread (and what it starts afterwards) to nice 10: under contention it
/// gets about a tenth of what a thread of the run gets, and all of an idle CPU. Unlike
/// `SCHED_IDLE` it is never starved, so nothing waits on it for long behind other load.
pub fn yield_to_the_run() {
    // SAFETY: PRIO_PROCESS with a thread id sets that thread's nice value on Linux; lowering
    // a priority is always allowed, and a failure is ignored.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, thread_id() as libc::id_t, 10);
    }
}

/// Puts every thread on `SCHED_IDLE` back on `SCHED_OTHER`: this process's own, and those of
/// every process descending from it (guests started at `SCHED_IDLE` keep it otherwise: a
/// policy is inherited when a thread or process starts, and changed one thread at a time).
/// False when one of them was refused (leaving `SCHED_IDLE` needs root or `RLIMIT_NICE` room).
pub fn leave_idle() -> bool {
    let mut ok = true;
    let mut boost = |tid: libc::pid_t| {
        // SAFETY: sched_getscheduler only reads the policy of a thread id (an ended one fails).
        if unsafe { libc::sched_getscheduler(tid) } == libc::SCHED_IDLE
            && !set_policy(tid, libc::SCHED_OTHER)
        {
            ok = false;
        }
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    for pid in std::iter::once(me).chain(descendants(me)) {
        for tid in ids_in(&format!("/proc/{pid}/task")) {
            boost(tid);
        }
    }
    ok
}

/// The numeric entries of a /proc directory.
fn ids_in(dir: &str) -> Vec<libc::pid_t> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Every process descending from `root`, from each process's parent in /proc/<pid>/stat.
fn descendants(root: libc::pid_t) -> Vec<libc::pid_t> {
    let parents: Vec<(libc::pid_t, libc::pid_t)> = ids_in("/proc")
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(pid, ppid)| *ppid == parent && !found.contains(pid))
                .map(|(pid, _)| *pid)
                .collect::<Vec<_>>(),
        );
        i += 1;
    }
    found.remove(0);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaving_idle_reaches_the_threads_and_children_started_while_idle() {
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            if !set_policy(0, libc::SCHED_IDLE) {
                return None; // refused here: nothing to test
            }
            // A thread and a child process started while idle inherit it.
            let (ttx, trx) = std::sync::mpsc::channel::<()>();
            let inner = std::thread::spawn(move || {
                let tid = thread_id();
                tx.send(tid).unwrap();
                let _ = trx.recv();
            });
            let child = std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap();
            Some((inner, ttx, child))
        });
        let inner_tid = rx.recv().unwrap();
        let Some((inner, ttx, mut child)) = worker.join().unwrap() else {
            return;
        };
        let policy = |tid: libc::pid_t| unsafe { libc::sched_getscheduler(tid) };
        let child_pid = child.id() as libc::pid_t;
        assert_eq!(policy(inner_tid), libc::SCHED_IDLE);
        assert_eq!(policy(child_pid), libc::SCHED_IDLE);
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let left = leave_idle();
        if root {
            assert!(left);
            assert_eq!(policy(inner_tid), libc::SCHED_OTHER);
            assert_eq!(policy(child_pid), libc::SCHED_OTHER);
        }
        let _ = child.kill();
        let _ = child.wait();
        drop(ttx);
        inner.join().unwrap();
    }
}
