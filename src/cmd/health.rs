//! `skewguard health [URL]`: a probe client for images without curl.

use crate::config::Config;

/// GETs `url` (default: /healthz on the port of `SKEWGUARD_LISTEN`); 0 on 2xx, else 1.
pub fn run(config: &Config, url: Option<&str>) -> i32 {
    let _ = (config, url);
    eprintln!("skewguard: health is not implemented yet");
    super::EXIT_USAGE
}
