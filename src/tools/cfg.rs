//! Which dependency edges apply to a target, decided the way cargo decides it: the `target` of a
//! `[target.'cfg(…)'.dependencies]` edge (`cfg(windows)`, `cfg(all(unix, not(target_os =
//! "macos")))`, or a plain triple) parsed into a [`Platform`] and evaluated against the target's
//! cfg set, which `rustc --print cfg --target T` prints ([`print_cfg`], one run per target). This
//! lets one unfiltered `cargo metadata` serve every target (`tools::cargo::graph_for_targets`)
//! instead of one `--filter-platform` run each. Pure, apart from the command it returns as data.

use crate::exec::Cmd;
use std::collections::BTreeSet;
use std::path::Path;

/// A cfg expression: `all(…)`, `any(…)`, `not(…)`, a bare name (`unix`, `miri`), a
/// `key = "value"` pair, or the literals `true`/`false`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CfgExpr {
    All(Vec<CfgExpr>),
    Any(Vec<CfgExpr>),
    Not(Box<CfgExpr>),
    Name(String),
    KeyValue(String, String),
    Bool(bool),
}

/// A dependency edge's `target`: a triple (`aarch64-pc-windows-gnullvm`) or `cfg(EXPR)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Platform {
    Name(String),
    Cfg(CfgExpr),
}

/// One line of `rustc --print cfg`: `unix` or `target_os="linux"`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cfg {
    Name(String),
    KeyValue(String, String),
}

/// A target's cfg set, as `rustc --print cfg --target T` prints it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cfgs(BTreeSet<Cfg>);

impl Cfgs {
    /// Reads `rustc --print cfg` output (one `name` or `key="value"` per line).
    pub fn parse(text: &str) -> Result<Cfgs, String> {
        let mut set = BTreeSet::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let cfg = match line.split_once('=') {
                None => Cfg::Name(line.to_string()),
                Some((k, v)) => {
                    let v = v
                        .trim()
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .ok_or_else(|| format!("rustc --print cfg: unexpected line {line:?}"))?;
                    Cfg::KeyValue(k.trim().to_string(), v.to_string())
                }
            };
            set.insert(cfg);
        }
        Ok(Cfgs(set))
    }

    pub fn contains(&self, cfg: &Cfg) -> bool {
        self.0.contains(cfg)
    }
}

impl CfgExpr {
    /// Whether the expression holds for `cfgs` (`all()` holds, `any()` does not).
    pub fn matches(&self, cfgs: &Cfgs) -> bool {
        match self {
            CfgExpr::All(es) => es.iter().all(|e| e.matches(cfgs)),
            CfgExpr::Any(es) => es.iter().any(|e| e.matches(cfgs)),
            CfgExpr::Not(e) => !e.matches(cfgs),
            CfgExpr::Name(n) => cfgs.contains(&Cfg::Name(n.clone())),
            CfgExpr::KeyValue(k, v) => cfgs.contains(&Cfg::KeyValue(k.clone(), v.clone())),
            CfgExpr::Bool(b) => *b,
        }
    }
}

impl Platform {
    /// Parses a dependency's `target` as cargo writes it into `cargo metadata`.
    pub fn parse(text: &str) -> Result<Platform, String> {
        let t = text.trim();
        match t.strip_prefix("cfg(").and_then(|r| r.strip_suffix(')')) {
            Some(inner) => {
                let mut p = Parser::new(inner);
                let e = p.expr()?;
                p.skip_ws();
                if p.rest().is_empty() {
                    Ok(Platform::Cfg(e))
                } else {
                    Err(format!("{text:?}: unexpected {:?}", p.rest()))
                }
            }
            None if !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
            {
                Ok(Platform::Name(t.to_string()))
            }
            None => Err(format!("{text:?} is neither a target triple nor cfg(…)")),
        }
    }

    /// Whether an edge with this `target` is compiled for `triple`, whose cfg set is `cfgs`.
    pub fn matches(&self, triple: &str, cfgs: &Cfgs) -> bool {
        match self {
            Platform::Name(n) => n == triple,
            Platform::Cfg(e) => e.matches(cfgs),
        }
    }
}

/// A recursive-descent parser over the inside of `cfg(…)`.
struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Parser { s, at: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.s[self.at..]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        self.at += r.len() - r.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Result<&'a str, String> {
        self.skip_ws();
        let r = self.rest();
        let r_raw = r.strip_prefix("r#").unwrap_or(r);
        let len = r_raw
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(r_raw.len());
        let starts_well = r_raw
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        if len == 0 || !starts_well {
            return Err(format!("expected a cfg name at {r:?}"));
        }
        self.at += r.len() - r_raw.len() + len;
        Ok(&r_raw[..len])
    }

    fn string(&mut self) -> Result<&'a str, String> {
        self.skip_ws();
        let r = self.rest();
        let body = r
            .strip_prefix('"')
            .ok_or_else(|| format!("expected a string at {r:?}"))?;
        let end = body
            .find('"')
            .ok_or_else(|| format!("unterminated string at {r:?}"))?;
        self.at += 1 + end + 1;
        Ok(&body[..end])
    }

    fn expr(&mut self) -> Result<CfgExpr, String> {
        let name = self.ident()?;
        if matches!(name, "all" | "any" | "not") && self.eat('(') {
            let mut items = Vec::new();
            loop {
                if self.eat(')') {
                    break;
                }
                items.push(self.expr()?);
                if !self.eat(',') {
                    if self.eat(')') {
                        break;
                    }
                    return Err(format!("expected `,` or `)` at {:?}", self.rest()));
                }
            }
            return match name {
                "all" => Ok(CfgExpr::All(items)),
                "any" => Ok(CfgExpr::Any(items)),
                _ if items.len() == 1 => Ok(CfgExpr::Not(Box::new(items.remove(0)))),
                _ => Err(format!("not(…) takes one expression, not {}", items.len())),
            };
        }
        if self.eat('=') {
            return Ok(CfgExpr::KeyValue(
                name.to_string(),
                self.string()?.to_string(),
            ));
        }
        Ok(match name {
            "true" => CfgExpr::Bool(true),
            "false" => CfgExpr::Bool(false),
            n => CfgExpr::Name(n.to_string()),
        })
    }
}

/// `rustc --print cfg --target T` (`rustc`: cargo's `RUSTC`, default `rustc`), with the rustflags
/// cargo would pass (`tools::cargo::rustflags`: a `--cfg` or `-C target-feature` there changes
/// which edges apply, as it does for cargo), run in `dir` (the project: rustup picks the project's
/// toolchain there, as for cargo).
pub fn print_cfg(target: &str, dir: &Path, rustc: Option<&str>, flags: &[String]) -> Cmd {
    Cmd::new(
        rustc.unwrap_or("rustc"),
        format!("read the cfg set of {target}"),
    )
    .args(["--print", "cfg", "--target", target])
    .args(flags)
    .cwd(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rustc --print cfg --target aarch64-unknown-linux-musl` (1.95).
    const AARCH64_MUSL: &str = "debug_assertions\npanic=\"unwind\"\ntarget_abi=\"\"\ntarget_arch=\"aarch64\"\ntarget_endian=\"little\"\ntarget_env=\"musl\"\ntarget_family=\"unix\"\ntarget_feature=\"crt-static\"\ntarget_feature=\"neon\"\ntarget_has_atomic=\"128\"\ntarget_has_atomic=\"16\"\ntarget_has_atomic=\"32\"\ntarget_has_atomic=\"64\"\ntarget_has_atomic=\"8\"\ntarget_has_atomic=\"ptr\"\ntarget_os=\"linux\"\ntarget_pointer_width=\"64\"\ntarget_vendor=\"unknown\"\nunix\n";
    /// `rustc --print cfg --target x86_64-pc-windows-msvc` (1.95, abridged).
    const X86_64_MSVC: &str = "debug_assertions\npanic=\"unwind\"\ntarget_abi=\"\"\ntarget_arch=\"x86_64\"\ntarget_endian=\"little\"\ntarget_env=\"msvc\"\ntarget_family=\"windows\"\ntarget_has_atomic=\"64\"\ntarget_os=\"windows\"\ntarget_pointer_width=\"64\"\ntarget_vendor=\"pc\"\nwindows\n";
    /// `rustc --print cfg --target wasm32-unknown-unknown` (1.95, abridged).
    const WASM32: &str = "debug_assertions\npanic=\"abort\"\ntarget_abi=\"\"\ntarget_arch=\"wasm32\"\ntarget_endian=\"little\"\ntarget_env=\"\"\ntarget_family=\"wasm\"\ntarget_os=\"unknown\"\ntarget_pointer_width=\"32\"\ntarget_vendor=\"unknown\"\n";
    /// armv7-unknown-linux-gnueabihf (abridged).
    const ARMV7_GNU: &str = "target_arch=\"arm\"\ntarget_endian=\"little\"\ntarget_env=\"gnu\"\ntarget_abi=\"eabihf\"\ntarget_family=\"unix\"\ntarget_os=\"linux\"\ntarget_pointer_width=\"32\"\ntarget_vendor=\"unknown\"\nunix\n";

    fn on(target: &str, cfgs: &str, edge: &str) -> bool {
        Platform::parse(edge)
            .unwrap()
            .matches(target, &Cfgs::parse(cfgs).unwrap())
    }

    #[test]
    fn parses_rustc_print_cfg() {
        let c = Cfgs::parse(AARCH64_MUSL).unwrap();
        assert!(c.contains(&Cfg::Name("unix".into())));
        assert!(c.contains(&Cfg::KeyValue("target_abi".into(), "".into())));
        assert!(c.contains(&Cfg::KeyValue("target_feature".into(), "neon".into())));
        assert!(Cfgs::parse("target_os=linux").is_err());
    }

    #[test]
    fn parses_every_shape() {
        assert_eq!(
            Platform::parse("cfg(all(unix, not(target_os = \"macos\")))").unwrap(),
            Platform::Cfg(CfgExpr::All(vec![
                CfgExpr::Name("unix".into()),
                CfgExpr::Not(Box::new(CfgExpr::KeyValue(
                    "target_os".into(),
                    "macos".into()
                )))
            ]))
        );
        assert_eq!(
            Platform::parse("x86_64-pc-windows-gnullvm").unwrap(),
            Platform::Name("x86_64-pc-windows-gnullvm".into())
        );
        assert_eq!(
            Platform::parse("cfg(any())").unwrap(),
            Platform::Cfg(CfgExpr::Any(vec![]))
        );
        // A trailing comma, as some manifests write it.
        assert!(Platform::parse("cfg(any(unix, windows,))").is_ok());
        assert!(Platform::parse("cfg(true)").is_ok());
        for bad in [
            "cfg(all(unix)",
            "cfg(not(unix, windows))",
            "cfg(target_os = linux)",
            "cfg(unix windows)",
            "cfg()",
            "not a target",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    /// Edges from real Cargo.lock graphs (windows-sys, libc, getrandom, rustix, ring,
    /// wasm-bindgen, …) against real targets.
    #[test]
    fn real_edges() {
        let (musl, msvc, wasm, armv7) = (
            ("aarch64-unknown-linux-musl", AARCH64_MUSL),
            ("x86_64-pc-windows-msvc", X86_64_MSVC),
            ("wasm32-unknown-unknown", WASM32),
            ("armv7-unknown-linux-gnueabihf", ARMV7_GNU),
        );
        // (edge target, the targets it holds on, the targets it does not)
        type Targets<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(&str, Targets, Targets)] = &[
            // windows-sys, winapi-util, anstream
            ("cfg(windows)", &[msvc], &[musl, wasm, armv7]),
            // libc in getrandom, tempfile, …
            ("cfg(unix)", &[musl, armv7], &[msvc, wasm]),
            ("cfg(not(windows))", &[musl, armv7, wasm], &[msvc]),
            (
                "cfg(all(unix, not(target_os = \"macos\")))",
                &[musl, armv7],
                &[msvc, wasm],
            ),
            // wasm-bindgen / js-sys in getrandom
            (
                "cfg(all(target_family = \"wasm\", target_os = \"unknown\"))",
                &[wasm],
                &[musl, msvc, armv7],
            ),
            ("cfg(target_arch = \"wasm32\")", &[wasm], &[musl, msvc]),
            // windows-targets: the per-triple import libraries
            (
                "cfg(all(target_arch = \"x86_64\", target_env = \"msvc\", not(windows_raw_dylib)))",
                &[msvc],
                &[musl, wasm],
            ),
            (
                "cfg(all(target_arch = \"x86_64\", target_env = \"gnu\", not(target_abi = \"llvm\"), not(windows_raw_dylib)))",
                &[],
                &[msvc, musl, armv7],
            ),
            ("x86_64-pc-windows-gnullvm", &[], &[msvc, musl]),
            // ring / cpufeatures
            (
                "cfg(all(any(all(target_arch = \"aarch64\", target_endian = \"little\"), all(target_arch = \"arm\", target_endian = \"little\")), any(target_os = \"android\", target_os = \"linux\")))",
                &[musl, armv7],
                &[msvc, wasm],
            ),
            (
                "cfg(any(target_arch = \"aarch64\", target_arch = \"x86\", target_arch = \"x86_64\"))",
                &[musl, msvc],
                &[armv7, wasm],
            ),
            // getrandom 0.3: linux_raw unless target_env is empty (no libc)
            (
                "cfg(all(any(target_os = \"linux\", target_os = \"android\"), not(any(all(target_os = \"linux\", target_env = \"\"), getrandom_backend = \"custom\", getrandom_backend = \"linux_raw\", getrandom_backend = \"rdrand\", getrandom_backend = \"rndr\"))))",
                &[musl, armv7],
                &[msvc, wasm],
            ),
            // rustix: libc backend where linux_raw is not supported
            (
                "cfg(all(not(rustix_use_libc), not(miri), target_os = \"linux\", any(target_endian = \"little\", any(target_arch = \"s390x\", target_arch = \"powerpc\")), any(target_arch = \"arm\", all(target_arch = \"aarch64\", target_pointer_width = \"64\"), target_arch = \"riscv64\", target_arch = \"x86\", all(target_arch = \"x86_64\", target_pointer_width = \"64\"))))",
                &[musl, armv7],
                &[msvc, wasm],
            ),
            (
                "cfg(any(unix, target_os = \"wasi\"))",
                &[musl],
                &[wasm, msvc],
            ),
            ("cfg(any())", &[], &[musl, msvc, wasm, armv7]),
            ("cfg(all())", &[musl, msvc, wasm, armv7], &[]),
            ("cfg(target_has_atomic = \"64\")", &[musl, msvc], &[armv7]),
            ("cfg(target_feature = \"crt-static\")", &[musl], &[msvc]),
            ("cfg(panic = \"abort\")", &[wasm], &[musl]),
        ];
        for (edge, yes, no) in cases {
            for (t, c) in *yes {
                assert!(on(t, c, edge), "{edge} should hold on {t}");
            }
            for (t, c) in *no {
                assert!(!on(t, c, edge), "{edge} should not hold on {t}");
            }
        }
    }

    #[test]
    fn print_cfg_command() {
        let c = print_cfg("aarch64-unknown-linux-musl", Path::new("/p"), None, &[]);
        assert_eq!(c.program, "rustc");
        assert_eq!(
            c.args,
            ["--print", "cfg", "--target", "aarch64-unknown-linux-musl"]
        );
        assert_eq!(c.cwd.as_deref(), Some(Path::new("/p")));
        let flags = ["--cfg".to_string(), "tokio_unstable".to_string()];
        let c = print_cfg("x", Path::new("/p"), Some("/opt/rustc"), &flags);
        assert_eq!(c.program, "/opt/rustc");
        assert_eq!(&c.args[4..], flags);
    }
}
