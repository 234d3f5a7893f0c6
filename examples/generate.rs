//! Writes the man page and the shell completions generated from the settings
//! table (`skewguard::config::generate`) into the repository:
//! `cargo run --example generate`. An example rather than a subcommand, so
//! the release binary carries none of it.

use std::path::Path;

fn main() -> std::process::ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (path, text) in skewguard::config::generate::files() {
        let path = root.join(path);
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, text));
        if let Err(e) = written {
            eprintln!("generate: cannot write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    std::process::ExitCode::SUCCESS
}
