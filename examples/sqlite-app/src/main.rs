//! shipit's SQLite example: `--version`, and `--self-test`, which opens an in-memory database
//! through the system libsqlite3 and prints `sqlite_version()` and a round trip.

fn self_test() -> rusqlite::Result<()> {
    let db = rusqlite::Connection::open_in_memory()?;
    let version: String = db.query_row("SELECT sqlite_version()", [], |r| r.get(0))?;
    db.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (40), (2);")?;
    let sum: i64 = db.query_row("SELECT sum(x) FROM t", [], |r| r.get(0))?;
    println!("sqlite_version: {version}");
    println!("sum: {sum}");
    Ok(())
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("--version") => println!("sqliteapp {}", env!("CARGO_PKG_VERSION")),
        Some("--self-test") => {
            if let Err(e) = self_test() {
                eprintln!("self-test failed: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: sqliteapp --version | --self-test");
            std::process::exit(2);
        }
    }
}
