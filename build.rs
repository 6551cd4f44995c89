//! Generates the typed script handles (`scripts::GET_OR_LOCK`, …) from the
//! files of `lua/`: one `LuaScript` static per file, its SHA1 computed here,
//! so a script the code names but `lua/` lacks is a compile error.
//! `rerun-if-changed=lua` also catches added and removed files.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=lua");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let lua = Path::new(&manifest).join("lua");
    let mut names: Vec<String> = std::fs::read_dir(&lua)
        .expect("read lua/")
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".lua").map(str::to_owned)
        })
        .collect();
    names.sort();
    let mut out = String::new();
    for name in &names {
        let path = lua.join(format!("{name}.lua"));
        println!("cargo:rerun-if-changed={}", path.display());
        let source = std::fs::read_to_string(&path).expect("read a script");
        let sha1 = sha1_smol::Sha1::from(source.as_bytes())
            .digest()
            .to_string();
        let summary = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- "))
            .unwrap_or(name.as_str())
            .replace('`', "'");
        writeln!(
            out,
            "/// `lua/{name}.lua`: {summary}\npub static {upper}: LuaScript = LuaScript {{ \
             name: {name:?}, source: include_str!({path:?}), sha1: {sha1:?} }};",
            upper = name.to_uppercase(),
            path = path.display().to_string(),
        )
        .expect("write to a String");
    }
    let all: Vec<String> = names
        .iter()
        .map(|n| format!("&{}", n.to_uppercase()))
        .collect();
    writeln!(
        out,
        "/// Every embedded script, sorted by name.\nstatic ALL: [&LuaScript; {}] = [{}];",
        names.len(),
        all.join(", ")
    )
    .expect("write to a String");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("scripts.rs");
    std::fs::write(dest, out).expect("write the generated scripts");
}
