//! Rebuild when a Lua script is added, removed or edited: `include_dir!` does
//! not tell cargo about new files on its own.
fn main() {
    println!("cargo:rerun-if-changed=lua");
}
