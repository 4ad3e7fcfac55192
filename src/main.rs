//! The `stslib` command.

fn main() {
    println!("stslib {}", env!("CARGO_PKG_VERSION"));
}
