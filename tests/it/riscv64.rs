//! linux/riscv64 end to end (issue 16 item 8): rustup serves no rust-std for
//! `riscv64gc-unknown-linux-musl` here, so the example is built with cargo-zigbuild and
//! `-Zbuild-std`, its ELF must say RISC-V with the double-float ABI (lp64d), and the image runs
//! its checks under `qemu-riscv64-static -cpu sifive-u54` (RV64GC, the strict CPU). The first run
//! compiles the standard library for the target (minutes); the shared fixture keeps it warm.

use crate::support::fixture::{EPOCH, example, example_pipeline, example_variant};
use crate::support::{ok, shipit};
use std::process::Output;

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&o.stdout));
    })
}

#[test]
fn riscv64_musl_builds_with_build_std_and_runs_under_the_strict_cpu() {
    // The example's pipeline, riscv64 only, static musl on scratch.
    let pipeline = example_pipeline()
        .replace(
            "platforms: [linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6]",
            "platforms: [linux/riscv64]",
        )
        .replace(
            "  gnu:  { base: \"deb:bookworm\", platforms: [linux/amd64, linux/arm64, linux/arm/v7] }\n",
            "",
        )
        .replace(
            "  packages: [ca-certificates]   # added to the deb:bookworm base, with their dependencies\n",
            "",
        );
    assert!(
        pipeline.contains("platforms: [linux/riscv64]") && !pipeline.contains("gnu:"),
        "{pipeline}"
    );
    let flags = example_variant("riscv64", &pipeline);
    let run = |args: &[&str]| {
        shipit(example())
            .args(args)
            .args(&flags)
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .output()
            .unwrap()
    };

    let plan = json(&ok(run(&["plan", "--json"])));
    let p = &plan["images"][0]["platforms"][0];
    assert_eq!(p["target"], "riscv64gc-unknown-linux-musl");
    assert_eq!(p["backend"], "zigbuild", "{p}");
    assert_eq!(p["build_std"], true);
    assert_eq!(p["qemu"], "qemu-riscv64");
    assert_eq!(p["cpu"], "sifive-u54");
    assert_eq!(p["native"], false);

    let built = json(&ok(run(&["build", "--json"])));
    let elf = &built["built"][0]["elf"];
    assert_eq!(elf["machine"], 243, "EM_RISCV: {elf}");
    assert_eq!(elf["class"], "Elf64");
    assert_eq!(elf["riscv"]["float_abi"], "Double", "{elf}");
    assert_eq!(elf["interpreter"], serde_json::Value::Null, "static: {elf}");

    ok(run(&["package", "-q"]));
    let verified = ok(run(&["verify", "-v", "--json"]));
    let report = json(&verified);
    assert_eq!(report["passed"], true, "{report}");
    let checks = report["platforms"][0]["checks"].as_array().unwrap();
    let detail = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {report}"))["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert!(detail("elf").contains("double-float (lp64d)"), "{report}");
    assert!(detail("version").contains("hello-server 0.3.1"), "{report}");
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "serves" && c["passed"] == true)
    );
    let log = String::from_utf8_lossy(&verified.stderr);
    assert!(
        log.contains("qemu-riscv64-static -cpu sifive-u54 /usr/local/bin/hello-server"),
        "the checks did not run under the strict CPU:\n{log}"
    );
}
