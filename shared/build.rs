//! Embeds every `migrations/NNNN_name.sql` of the workspace into the library, in order.

use std::{env, fmt::Write, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    let mut code = String::from("/// Every migration, in order.\npub static MIGRATIONS: &[Migration] = &[\n");
    let mut last = 0;
    for path in files {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let (num, name) = stem.split_once('_').unwrap_or_else(|| panic!("{stem}: expected NNNN_name.sql"));
        let version: i32 = num.parse().unwrap_or_else(|_| panic!("{stem}: expected a number before '_'"));
        assert!(version == last + 1, "{stem}: migrations must be numbered 1, 2, 3… without gaps");
        last = version;
        println!("cargo:rerun-if-changed={}", path.display());
        writeln!(
            code,
            "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({:?}) }},",
            path.canonicalize().unwrap()
        )
        .unwrap();
    }
    code.push_str("];\n");
    fs::write(PathBuf::from(env::var("OUT_DIR").unwrap()).join("migrations.rs"), code).unwrap();
}
