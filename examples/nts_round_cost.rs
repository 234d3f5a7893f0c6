//! Cost of one measurement round against an NTS source, with the cookies of
//! one key exchange reused (as `serve` does) and with a key exchange every
//! round. Used by bench/nts.sh:
//!
//!     cargo run --release --example nts_round_cost -- nts://localhost:PORT CA_FILE ROUNDS
//!
//! Prints wall and CPU time per round for both, and the key exchanges made.

use std::time::{Duration, Instant};

use skewguard::config::Config;
use skewguard::os::clock::SystemClock;
use skewguard::round::Rounds;

fn cpu() -> Duration {
    // SAFETY: getrusage writes only into the struct we pass.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000);
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: nts_round_cost nts://HOST:PORT CA_FILE ROUNDS");
        std::process::exit(2);
    }
    let rounds: u32 = args[3].parse().unwrap_or(50);
    let vars = vec![
        ("SKEWGUARD_SOURCES".to_string(), args[1].clone()),
        ("SKEWGUARD_CA_FILE".to_string(), args[2].clone()),
    ];
    let config = match Config::from_vars(vars) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    let clock = SystemClock;
    rt.block_on(async {
        for (label, reuse) in [("cookies reused", true), ("key exchange every round", false)] {
            let mut kept = Rounds::new(&config, &clock);
            let (mut exchanges, mut failed) = (0u64, 0u32);
            // One warm-up round outside the timing (the reused case's key exchange).
            let _ = kept.round().await;
            let (wall, cpu0) = (Instant::now(), cpu());
            for _ in 0..rounds {
                let report = if reuse {
                    kept.round().await
                } else {
                    let mut fresh = Rounds::new(&config, &clock);
                    let r = fresh.round().await;
                    exchanges += fresh.nts_key_exchanges();
                    r
                };
                if report.offset_seconds.is_none() {
                    failed += 1;
                }
            }
            let (wall, cpu) = (wall.elapsed() / rounds, (cpu() - cpu0) / rounds);
            if reuse {
                exchanges = kept.nts_key_exchanges() - 1;
            }
            println!(
                "{label}: {:.3} ms wall, {:.3} ms CPU per round; {exchanges} key exchanges in {rounds} rounds; {failed} rounds without a result",
                wall.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3
            );
        }
    });
}
