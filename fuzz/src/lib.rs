//! Properties of skewguard's parsers and offset math, one module per fuzz
//! target (`fuzz_targets/*.rs` call `check`).
//!
//! They live in a library so that `cargo test` (stable, no libFuzzer needed
//! at run time) replays the committed seeds in `corpus/` and the minimised
//! crashes in `regressions/`.
#![forbid(unsafe_code)]

pub mod config;
pub mod http_date;
pub mod node_file;
pub mod ntp_packet;
pub mod nts_ext;
pub mod nts_ke;
pub mod roughtime;

/// Text that reaches logs and reports from the outside world must not carry
/// control characters (terminal escapes, forged log lines).
pub fn assert_printable(text: &str) {
    assert!(
        !text.chars().any(char::is_control),
        "control character in {text:?}"
    );
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Runs `check` on every file under `corpus/<target>` and `regressions/<target>`.
    fn replay(target: &str, check: fn(&[u8])) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut n = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
                continue;
            };
            let mut paths: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
            paths.sort();
            for path in paths {
                let data = std::fs::read(&path).unwrap();
                eprintln!("{target}: {}", path.display());
                check(&data);
                n += 1;
            }
        }
        assert!(n > 0, "no seeds for {target}");
    }

    #[test]
    fn ntp_packet() {
        replay("ntp_packet", super::ntp_packet::check);
    }

    #[test]
    fn http_date() {
        replay("http_date", super::http_date::check);
    }

    #[test]
    fn nts_ke() {
        replay("nts_ke", super::nts_ke::check);
    }

    #[test]
    fn nts_ext() {
        replay("nts_ext", super::nts_ext::check);
    }

    #[test]
    fn roughtime() {
        replay("roughtime", super::roughtime::check);
    }

    #[test]
    fn node_file() {
        replay("node_file", super::node_file::check);
    }

    #[test]
    fn config() {
        replay("config", super::config::check);
    }
}
