//! chronyd as an NTP (and NTS) server on loopback, its clock optionally
//! shifted by libfaketime.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::faketime::{faketime_env, shift_seconds};
use super::process::{Daemon, PEER_START_BOUND};
use super::sntp::sntp_query;
use super::{locate, prerequisite, Port, TempDir};

/// chronyd serving NTP on `127.0.0.1:PORT` from its own clock, which libfaketime
/// may shift. It never touches the system clock (`-x`).
///
/// Keep shifts at 1 s or more: chronyd takes its receive timestamp from the
/// kernel, which libfaketime cannot shift, and only falls back to its own clock
/// when the two differ by more than about a second.
pub struct Chrony {
    dir: TempDir,
    port: Port,
    shift: Option<String>,
    daemon: Option<Daemon>,
    /// Extra configuration lines (the NTS server's).
    extra: String,
    /// The NTS-KE port, for an NTS server.
    ke_port: Option<Port>,
}

impl Chrony {
    /// Starts chronyd (with its clock shifted by `shift` if given) and waits until
    /// it answers as a synchronised stratum-3 server. `None`: chronyd or libfaketime
    /// is missing and the test should return (see [`prerequisite`]).
    ///
    /// Panics if chronyd starts but does not answer, or answers with an offset
    /// that does not match `shift`.
    pub fn start(shift: Option<&str>) -> Option<Chrony> {
        if !prerequisite("chronyd", "install chrony") {
            return None;
        }
        let mut chrony = Chrony {
            dir: TempDir::new("chrony"),
            port: Port::free(),
            shift: None,
            daemon: None,
            extra: String::new(),
            ke_port: None,
        };
        chrony.restart(shift).then_some(chrony)
    }

    /// Starts chronyd as an NTS server too: NTS-KE on its own port with the
    /// leaf certificate and key given (PEM), NTP on the usual port.
    pub fn start_nts(shift: Option<&str>, cert_pem: &str, key_pem: &str) -> Option<Chrony> {
        Chrony::start_nts_with(shift, cert_pem, key_pem, "")
    }

    /// [`Chrony::start_nts`] with more configuration lines.
    pub fn start_nts_with(
        shift: Option<&str>,
        cert_pem: &str,
        key_pem: &str,
        more: &str,
    ) -> Option<Chrony> {
        if !prerequisite("chronyd", "install chrony") {
            return None;
        }
        let dir = TempDir::new("chrony-nts");
        let ke_port = Port::free();
        let (cert, key, dump) = (
            dir.path().join("cert.pem"),
            dir.path().join("key.pem"),
            dir.path().join("dump"),
        );
        fs::write(&cert, cert_pem).expect("write certificate");
        fs::write(&key, key_pem).expect("write key");
        // chronyd reads the key after dropping to its own user when started as root.
        let _ = fs::set_permissions(&key, fs::Permissions::from_mode(0o644));
        let _ = fs::create_dir(&dump);
        let _ = fs::set_permissions(&dump, fs::Permissions::from_mode(0o777));
        let extra = format!(
            "ntsserverkey {}\nntsservercert {}\nntsport {}\nntsdumpdir {}\n{more}",
            key.display(),
            cert.display(),
            ke_port.number(),
            dump.display()
        );
        let mut chrony = Chrony {
            dir,
            port: Port::free(),
            shift: None,
            daemon: None,
            extra,
            ke_port: Some(ke_port),
        };
        chrony.restart(shift).then_some(chrony)
    }

    /// `nts://localhost:KEPORT` for an NTS server (panics otherwise).
    pub fn nts_uri(&self) -> String {
        let port = self.ke_port.as_ref().expect("an NTS chronyd").number();
        format!("nts://localhost:{port}")
    }

    /// The NTS-KE port of an NTS server (panics otherwise).
    pub fn ke_port(&self) -> u16 {
        self.ke_port.as_ref().expect("an NTS chronyd").number()
    }

    /// Starts one chronyd per shift.
    pub fn start_all(shifts: &[Option<&str>]) -> Option<Vec<Chrony>> {
        shifts.iter().map(|s| Chrony::start(*s)).collect()
    }

    /// Stops chronyd and starts it again on the same port with a new shift.
    /// `false`: libfaketime is missing and the test should return.
    #[must_use]
    pub fn restart(&mut self, shift: Option<&str>) -> bool {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
        let dir = self.dir.path();
        let conf = dir.join("chrony.conf");
        let text = format!(
            "port {port}\n\
             bindaddress 127.0.0.1\n\
             allow 127.0.0.1\n\
             local stratum 3\n\
             cmdport 0\n\
             bindcmdaddress /\n\
             pidfile {dir}/chronyd.pid\n\
             driftfile {dir}/chrony.drift\n\
             {extra}",
            port = self.port.number(),
            dir = dir.display(),
            extra = self.extra,
        );
        fs::write(&conf, text).expect("write chrony.conf");

        let mut cmd = Command::new(locate("chronyd").expect("checked by start"));
        // -d: foreground, -x: leave the system clock alone.
        cmd.arg("-d").arg("-x");
        if !is_root() {
            // chrony ≥ 4.1 runs as an ordinary user when asked to.
            cmd.arg("-U");
        }
        cmd.arg("-f").arg(&conf);
        if let Some(shift) = shift {
            let Some(env) = faketime_env(shift) else {
                return false;
            };
            cmd.envs(env);
        }
        self.shift = shift.map(str::to_string);
        self.daemon = Some(Daemon::spawn(cmd, dir.join("chronyd.log")));
        self.wait_until_serving();
        true
    }

    fn wait_until_serving(&mut self) {
        let what = format!("chronyd on port {} (shift {:?})", self.port(), self.shift);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port()));
        let deadline = Instant::now() + PEER_START_BOUND;
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            if let Some(d) = self.daemon.as_mut() {
                d.assert_alive(&what);
            }
            match sntp_query(addr, Duration::from_millis(200)) {
                Ok(reply) if reply.leap != 3 && (1..16).contains(&reply.stratum) => {
                    self.check_shift(&what, reply.offset);
                    return;
                }
                Ok(reply) => last = format!("not synchronised yet: {reply:?}"),
                Err(e) => last = e,
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what} did not answer within {PEER_START_BOUND:?} ({last}); log:\n{}",
            self.log()
        );
    }

    /// A peer that does not show its shift would make every test on it fail for
    /// a reason far from the assertion; say so here.
    fn check_shift(&self, what: &str, offset: f64) {
        let Some(expected) = shift_seconds(self.shift.as_deref()) else {
            return;
        };
        // Below ~1 s chronyd's receive timestamp stays unshifted (see the type's docs).
        if expected != 0.0 && expected.abs() < 1.1 {
            return;
        }
        assert!(
            // Generous: this only tells a shifted peer from an unshifted one, and
            // the probe's own timing suffers on a loaded CI machine.
            (offset - expected).abs() < 0.5,
            "{what} answers with offset {offset:+.6} s; libfaketime did not take effect. Log:\n{}",
            self.log()
        );
    }

    /// Stops chronyd (the port stays reserved); [`Chrony::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            d.stop();
        }
    }

    /// The UDP port.
    pub fn port(&self) -> u16 {
        self.port.number()
    }

    /// `ntp://127.0.0.1:PORT`, as skewguard spells the source.
    pub fn uri(&self) -> String {
        self.port.ntp_uri()
    }

    /// The shift chronyd runs with.
    pub fn shift(&self) -> Option<&str> {
        self.shift.as_deref()
    }

    /// chronyd's output so far.
    pub fn log(&self) -> String {
        self.daemon
            .as_ref()
            .map(Daemon::log_text)
            .unwrap_or_default()
    }
}

fn is_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
