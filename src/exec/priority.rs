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
