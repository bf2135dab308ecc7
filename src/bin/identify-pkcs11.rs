//! The operator's tool. Subcommands: `demo`, `pin-hash`.
fn main() {
    println!("identify-pkcs11");
}
