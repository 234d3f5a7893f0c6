//! `skewguard serve`: the sidecar and node agent (see [`crate::serve`]). The
//! command sets up what belongs to the process: the runtime, the signals that
//! end it, the descriptor limit, the listener, how a round's verdict is logged
//! and the exit code.

use std::sync::Arc;

use crate::config::Config;
use crate::core::report::Report;
use crate::core::verdict::Verdict;
use crate::os::clock::Clock;
use crate::serve::state::Health;

use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};

/// Highest soft descriptor limit `serve` asks for (the hard limit may be lower).
const MAX_NOFILE: u64 = 65_536;

/// Runs `serve` until SIGTERM/SIGINT; returns the exit code.
pub fn run(config: &Config) -> i32 {
    let runtime = match super::runtime() {
        Ok(r) => r,
        Err(e) => {
            let message = format!("cannot start the runtime: {e}");
            super::say_error(config.log_format, &message, &[]);
            return EXIT_FAIL;
        }
    };
    let code = runtime.block_on(serve(Arc::new(config.clone()), super::system_clock()));
    // Exit promptly on SIGTERM even if a name lookup is stuck in getaddrinfo.
    runtime.shutdown_background();
    code
}

/// `serve` on the runtime: until SIGTERM or SIGINT, then the exit code.
async fn serve(config: Arc<Config>, clock: &'static dyn Clock) -> i32 {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            let message = format!("cannot handle signals: {e}");
            super::say_error(config.log_format, &message, &[]);
            return EXIT_FAIL;
        }
    };
    // Every descriptor the hard limit allows, less a reserve for the
    // measurement, may hold a connection; a flood never starves a round.
    let nofile = crate::os::sys::raise_nofile_limit(MAX_NOFILE);
    let cap = crate::serve::conn::connection_cap(nofile);
    tracing::debug!(
        nofile,
        connections = cap,
        "descriptor limit and connection cap"
    );
    let listener = match listen(config.listen) {
        Ok(l) => l,
        Err(e) => {
            let message = format!("cannot listen on SKEWGUARD_LISTEN={}: {e}", config.listen);
            let listen = config.listen.to_string();
            super::say_error(config.log_format, &message, &[("listen", &listen)]);
            return EXIT_USAGE;
        }
    };
    let shutdown = async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
    };
    crate::serve::run(config, clock, listener, cap, shutdown, log_round).await;
    EXIT_OK
}

/// Logs a round as `wait` and `exec` log theirs, with the holdover in force.
fn log_round(served: &Health, report: &Report, previous: Option<Verdict>) {
    super::log_verdict(
        served.verdict,
        &served.headline,
        report,
        super::LogContext {
            holdover_age_seconds: served.holdover.map(|h| h.age_seconds),
            holdover_bound_seconds: served.holdover.map(|h| h.bound_seconds),
            previous,
            explain: true,
            ..Default::default()
        },
    );
}

/// Pending connections the kernel may queue for `accept` (capped by
/// `net.core.somaxconn`): a deep queue rides out a burst of connects or a
/// moment without CPU instead of dropping a probe's SYN (retried only after 1 s).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with [`LISTEN_BACKLOG`] (and SO_REUSEADDR, as std does).
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
