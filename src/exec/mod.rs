//! The one place shipit runs processes. A command is data first ([`Cmd`]: program, args, env,
//! cwd, purpose), printed shell-quoted for `-v` and `--dry-run`; it runs through duct in its own
//! process group with a timeout and its output in a log file. The run's [`Cancel`] token is
//! passed to every run function: SIGINT/SIGTERM/SIGHUP set it and terminate every process group
//! registered in it (TERM, then KILL after a grace period), so no compiler, linker, emulated
//! program or credential helper outlives a cancelled run; `main` then exits 130/143.
//!
//! - `cmd`: the command as data and its shell-quoted display;
//! - `cancel`: the cancel token, the signal handlers and the registry of live process groups;
//! - `run`: running a command (logged, captured, or in the background) and how it failed;
//! - `sandbox`: the chroot/namespace confinement of verification runs.

mod cancel;
mod cmd;
pub mod priority;
mod run;
mod sandbox;

pub use cancel::{CHECK_EVERY, Cancel, Cancelled, GRACE, Interruptible, cancelled_in, signal_name};
pub use cmd::Cmd;
pub use run::{
    ExecError, Finished, Output, Running, capture, describe_status, output, run_logged,
    run_logged_until,
};
pub use sandbox::Sandbox;
pub use sandbox::connect_in_netns;
