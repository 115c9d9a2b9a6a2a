//! The sandbox and the facade as child processes of the bench, and what
//! `/proc` tells about them (CPU time, resident memory).
//!
//! Every child is killed when its handle is dropped (also while a panic
//! unwinds). Should the bench itself be killed (even with SIGKILL), a small
//! watchdog shell beside each child kills it within a quarter of a second;
//! `PR_SET_PDEATHSIG` is set too, but some kernels clear it on exec.

use std::{
    fs,
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// The release-profile binary cargo built for this bench.
pub const BINARY: &str = env!("CARGO_BIN_EXE_portone-facade");

/// Most stdout lines of one child kept for the bench to read; later lines are
/// still read (so the child never blocks on a full pipe) but dropped.
const MAX_KEPT_LINES: usize = 10_000;
/// How long a child may take to print its first useful line.
const START_LIMIT: Duration = Duration::from_secs(20);

/// A child process whose stdout is read line by line; killed on drop.
pub struct Proc {
    child: Child,
    watchdog: Option<Child>,
    name: String,
    lines: mpsc::Receiver<String>,
}

/// Kills `$2` (the child) once `$1` (the bench) is gone or a zombie; ends
/// with the child, and after an hour at most (14,400 checks, 0.25 s apart).
const WATCHDOG: &str = r#"alive() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }
i=0
while [ "$i" -lt 14400 ] && alive "$1" && alive "$2"; do sleep 0.25; i=$((i + 1)); done
alive "$1" || kill -KILL "$2" 2>/dev/null
exit 0"#;

/// Starts the watchdog of `child` (none if `sh` is missing).
fn watchdog(child: u32) -> Option<Child> {
    Command::new("sh")
        .args(["-c", WATCHDOG, "watchdog"])
        .arg(std::process::id().to_string())
        .arg(child.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

impl Proc {
    fn spawn(mut command: Command, name: &str) -> Result<Proc, String> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: between fork and exec the closure makes one
        // async-signal-safe system call and allocates nothing.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                );
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|error| format!("cannot start {name} ({BINARY}): {error}"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: stdout not piped"));
        };
        let (sender, lines) = mpsc::channel();
        let reader = thread::Builder::new()
            .name(format!("{name}-stdout"))
            .spawn(move || {
                let mut kept = 0;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if kept < MAX_KEPT_LINES && sender.send(line).is_ok() {
                        kept += 1;
                    }
                }
            });
        if let Err(error) = reader {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: cannot start the stdout reader: {error}"));
        }
        let watchdog = watchdog(child.id());
        Ok(Proc {
            child,
            watchdog,
            name: name.to_owned(),
            lines,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, waiting at most until `deadline`.
    fn next_line(&mut self, deadline: Instant) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).map_err(|_| {
            let exited = match self.child.try_wait() {
                Ok(Some(status)) => format!("it exited: {status}"),
                _ => "it is still running".to_owned(),
            };
            format!(
                "{}: the expected line did not appear within {START_LIMIT:?} ({exited})",
                self.name
            )
        })
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: plain kill(2) on our own child.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        for _ in 0..10_000 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        if let Some(watchdog) = self.watchdog.as_mut() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// `portone-facade sandbox`: the PortOne emulator in its own process.
pub struct SandboxProc {
    pub proc: Proc,
    pub url: String,
    pub imp_key: String,
    pub imp_secret: String,
}

impl SandboxProc {
    /// Starts the emulator on an ephemeral loopback port, with `latency`
    /// (e.g. `"2s"`) added to every API answer when given.
    pub fn start(latency: Option<&str>) -> Result<SandboxProc, String> {
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .args(["sandbox", "--listen-addr", "127.0.0.1:0"]);
        if let Some(latency) = latency {
            command.args(["--latency", latency]);
        }
        let mut proc = Proc::spawn(command, "sandbox")?;
        let deadline = Instant::now() + START_LIMIT;
        for _ in 0..100 {
            let line = proc.next_line(deadline)?;
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let field = |name: &str| json[name].as_str().map(str::to_owned);
            if let (Some(url), Some(imp_key), Some(imp_secret)) =
                (field("url"), field("imp_key"), field("imp_secret"))
            {
                return Ok(SandboxProc {
                    proc,
                    url,
                    imp_key,
                    imp_secret,
                });
            }
        }
        Err("sandbox: no JSON line with url, imp_key and imp_secret".to_owned())
    }
}

/// `portone-facade` serving, in front of a [`SandboxProc`].
pub struct FacadeProc {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Just before the spawn.
    pub spawned_at: Instant,
    /// From the spawn to the `listening` log line.
    pub listening_after: Duration,
}

impl FacadeProc {
    /// Starts the facade on an ephemeral loopback port with `extra_env`
    /// beside the standard settings, and waits for its `listening` line.
    pub fn start(
        sandbox: &SandboxProc,
        extra_env: &[(&str, String)],
    ) -> Result<FacadeProc, String> {
        FacadeProc::start_binary(BINARY, sandbox, extra_env)
    }

    /// [`FacadeProc::start`] with another build's `binary`.
    pub fn start_binary(
        binary: &str,
        sandbox: &SandboxProc,
        extra_env: &[(&str, String)],
    ) -> Result<FacadeProc, String> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("PORTONE_API_URL", &sandbox.url)
            .env("PORTONE_LINK_API_URL", &sandbox.url)
            .env("PORTONE_IMP_KEY", &sandbox.imp_key)
            .env("PORTONE_IMP_SECRET", &sandbox.imp_secret)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn,portone_facade::server=info");
        for (name, value) in extra_env {
            command.env(name, value);
        }
        // For experiments: `BENCH_FACADE_ENV="TOKIO_WORKER_THREADS=1 MAX_IN_FLIGHT=64"`.
        if let Ok(pairs) = std::env::var("BENCH_FACADE_ENV") {
            for pair in pairs.split_whitespace() {
                if let Some((name, value)) = pair.split_once('=') {
                    command.env(name, value);
                }
            }
        }
        let spawned_at = Instant::now();
        let mut proc = Proc::spawn(command, "facade")?;
        let deadline = spawned_at + START_LIMIT;
        for _ in 0..1_000 {
            let line = proc.next_line(deadline)?;
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if json["message"] == "listening" {
                let listening_after = spawned_at.elapsed();
                let addr = json["local_addr"]
                    .as_str()
                    .and_then(|addr| addr.parse().ok())
                    .ok_or_else(|| {
                        format!("facade: `listening` line without local_addr: {line}")
                    })?;
                return Ok(FacadeProc {
                    proc,
                    addr,
                    spawned_at,
                    listening_after,
                });
            }
        }
        Err("facade: no `listening` log line".to_owned())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

/// utime + stime of `pid` in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state), so field n is `fields[n - 3]`.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy clock ticks of the whole machine, all cores (`/proc/stat`: user,
/// nice, system, irq, softirq, steal).
pub fn system_busy_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .map(|field| field.parse().unwrap_or(0))
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    Some(field(0) + field(1) + field(2) + field(5) + field(6) + field(7))
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        line.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Resets the peak RSS (`VmHWM`) of `pid` to its current RSS; false when
/// the kernel refuses.
pub fn reset_peak_rss(pid: u32) -> bool {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
