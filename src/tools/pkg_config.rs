//! pkg-config: whether this machine has a library's development files (`pkg-config --exists`),
//! for native builds that link the host's own libraries.

use crate::exec::Cmd;

/// `pkg-config --exists MODULE`: exit 0 when the host has the module's `.pc` file.
pub fn exists(module: &str) -> Cmd {
    Cmd::new("pkg-config", format!("look for {module} on this machine")).args(["--exists", module])
}
