fn main() {
    std::process::exit(shipit::cli::main());
}
