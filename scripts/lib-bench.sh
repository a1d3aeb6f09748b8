# Shared by the scripts/bench-*.sh benchmarks: source it after setting `repo` (the checkout's
# root). It defines functions only.

# bench_project DIR MARKER: prints the project to measure, as an absolute path. That is DIR when
# it is given. Otherwise it is the test fixture's built copy of the example
# ($SHIPIT_FIXTURE_DIR/hello-server) when that copy has MARKER (a path inside it, e.g. target or
# dist/bin), and examples/hello-server when it does not.
bench_project() {
    local dir=$1 marker=$2
    if [ -z "$dir" ]; then
        if [ -n "${SHIPIT_FIXTURE_DIR:-}" ] && [ -e "$SHIPIT_FIXTURE_DIR/hello-server/$marker" ]; then
            dir=$SHIPIT_FIXTURE_DIR/hello-server
        else
            dir=$repo/examples/hello-server
        fi
    fi
    (cd "$dir" && pwd)
}

# bench_shipit PATH: prints the shipit binary to measure, as an absolute path: PATH when it is
# given, else target/release/shipit, built first (cargo does nothing when it is fresh).
bench_shipit() {
    local bin=$1
    if [ -z "$bin" ]; then
        (cd "$repo" && cargo build --release --quiet --bin shipit) >&2
        bin=$repo/target/release/shipit
    fi
    printf '%s/%s\n' "$(cd "$(dirname "$bin")" && pwd)" "$(basename "$bin")"
}
