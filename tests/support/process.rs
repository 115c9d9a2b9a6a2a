//! The `portone-facade` binary as a child process: the facade serving, and
//! the emulator alone (`portone-facade sandbox`), each waited for until it
//! says it is ready.
//!
//! Every child is killed when its handle is dropped (also while a panic
//! unwinds). Should the test or bench process itself be killed (even with
//! SIGKILL), a small watchdog shell beside each child kills it within a
//! quarter of a second; `PR_SET_PDEATHSIG` is set too, but some kernels
//! clear it on exec, and it fires when the *thread* that spawned the child
//! ends: spawn from a thread that outlives the child (a test's own thread,
//! the bench's main thread).

use std::{
    io::{BufRead, BufReader, Read},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// The binary cargo built for these tests or this bench.
pub const BINARY: &str = env!("CARGO_BIN_EXE_portone-facade");

/// How long a child may take to print the line that says it is ready.
const START_LIMIT: Duration = Duration::from_secs(20);

/// The binary with an empty environment but for JSON logs at `info`.
pub fn binary() -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    command
}

/// [`binary`] serving on an ephemeral loopback port, in front of a PortOne
/// (both APIs) at `api_url` that takes these credentials.
pub fn facade_command(api_url: &str, imp_key: &str, imp_secret: &str) -> Command {
    let mut command = binary();
    command
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("PORTONE_API_URL", api_url)
        .env("PORTONE_LINK_API_URL", api_url)
        .env("PORTONE_IMP_KEY", imp_key)
        .env("PORTONE_IMP_SECRET", imp_secret);
    command
}

/// What becomes of a child's output.
#[derive(Clone, Copy, Debug)]
pub enum Output {
    /// Stdout and stderr read line by line, every line kept until read
    /// (tests read the logs).
    Logs,
    /// Stdout read line by line, its first 10,000 lines kept (later ones are
    /// read, so the child never blocks on a full pipe, and dropped); stderr
    /// passes through to this process's own (the bench).
    Stdout,
    /// Stdout left unread in its pipe, which fills, until
    /// [`Proc::release_stdout`]; then read as for `Logs`. Stderr as for `Logs`.
    Unread,
}

impl Output {
    fn kept_lines(self) -> usize {
        match self {
            Output::Logs | Output::Unread => usize::MAX,
            Output::Stdout => 10_000,
        }
    }
}

/// A loopback address with a port free a moment ago, for a child whose logs
/// are too quiet to say where it listens.
pub fn free_loopback_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
}

/// A child process whose output is read line by line; killed on drop.
pub struct Proc {
    child: Child,
    watchdog: Option<Child>,
    name: String,
    lines: mpsc::Receiver<String>,
    /// Stdout and a sender for its lines, while [`Output::Unread`] holds it.
    unread: Option<(ChildStdout, mpsc::Sender<String>)>,
}

/// Kills `$2` (the child) once `$1` (its parent) is gone or a zombie; ends
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

/// Sends the lines of `stream` to `lines` from a thread of its own, keeping
/// at most `kept`.
fn read_lines(
    name: String,
    stream: impl Read + Send + 'static,
    lines: mpsc::Sender<String>,
    kept: usize,
) -> std::io::Result<()> {
    thread::Builder::new().name(name).spawn(move || {
        let mut sent = 0;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if sent < kept && lines.send(line).is_ok() {
                sent += 1;
            }
        }
    })?;
    Ok(())
}

impl Proc {
    /// Starts `command` with stdin closed and its output read as `output` says.
    pub fn spawn(mut command: Command, name: &str, output: Output) -> Result<Proc, String> {
        command.stdin(Stdio::null()).stdout(Stdio::piped());
        match output {
            Output::Logs | Output::Unread => command.stderr(Stdio::piped()),
            Output::Stdout => command.stderr(Stdio::inherit()),
        };
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
        let mut child = command.spawn().map_err(|error| {
            let program = command.get_program().to_string_lossy().into_owned();
            format!("cannot start {name} ({program}): {error}")
        })?;
        let (sender, lines) = mpsc::channel();
        let mut readers = Ok(());
        let mut unread = None;
        if let Output::Unread = output {
            unread = child.stdout.take().map(|stdout| (stdout, sender.clone()));
        }
        if let Some(stdout) = child.stdout.take() {
            readers = read_lines(
                format!("{name}-stdout"),
                stdout,
                sender.clone(),
                output.kept_lines(),
            );
        }
        if let Some(stderr) = child.stderr.take() {
            readers = readers.and_then(|()| {
                read_lines(
                    format!("{name}-stderr"),
                    stderr,
                    sender,
                    output.kept_lines(),
                )
            });
        }
        if let Err(error) = readers {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{name}: cannot start the output reader: {error}"));
        }
        let watchdog = watchdog(child.id());
        Ok(Proc {
            child,
            watchdog,
            name: name.to_owned(),
            lines,
            unread,
        })
    }

    /// Starts reading the stdout that [`Output::Unread`] held.
    pub fn release_stdout(&mut self) -> Result<(), String> {
        let Some((stdout, sender)) = self.unread.take() else {
            return Err(format!("{}: stdout is not held", self.name));
        };
        read_lines(format!("{}-stdout", self.name), stdout, sender, usize::MAX)
            .map_err(|error| format!("{}: cannot start the stdout reader: {error}", self.name))
    }

    /// Every line not read yet, up to the end of the output (the process
    /// has exited and both streams were read to their end), waiting at most
    /// `limit` for it.
    pub fn lines_to_the_end(&self, limit: Duration) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + limit;
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(lines),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "{}: the output did not end within {limit:?} ({} lines read)",
                        self.name,
                        lines.len()
                    ));
                }
            }
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads lines until one is a JSON object for which `ready` gives a
    /// value, for at most [`START_LIMIT`] after `since`.
    fn wait_for_json<T>(
        &mut self,
        since: Instant,
        mut ready: impl FnMut(&serde_json::Value, &str) -> Result<Option<T>, String>,
    ) -> Result<(T, Vec<String>), String> {
        let mut read = Vec::new();
        let deadline = since + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|_| {
                let exited = match self.child.try_wait() {
                    Ok(Some(status)) => format!("it exited: {status}"),
                    _ => "it is still running".to_owned(),
                };
                format!(
                    "{}: the expected line did not appear within {START_LIMIT:?} ({exited})",
                    self.name
                )
            })?;
            read.push(line);
            let Some(line) = read.last() else { continue };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(value) = ready(&json, line)? {
                return Ok((value, read));
            }
        }
    }

    /// Every line received and not read yet.
    pub fn drain_lines(&self) -> Vec<String> {
        self.lines.try_iter().collect()
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
    pub fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(format!("{} still running after {limit:?}", self.name));
            }
            thread::sleep(Duration::from_millis(10));
        }
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
    /// (e.g. `"2s"`) added to every API answer when given, and waits for the
    /// line with its URL and credentials.
    pub fn start(latency: Option<&str>, output: Output) -> Result<SandboxProc, String> {
        let mut command = Command::new(BINARY);
        command
            .env_clear()
            .args(["sandbox", "--listen-addr", "127.0.0.1:0"]);
        if let Some(latency) = latency {
            command.args(["--latency", latency]);
        }
        SandboxProc::from_command(command, "sandbox", output)
    }

    /// Starts `command`, another PortOne stand-in (the bench's fixed
    /// upstream), and waits for its line with the URL and credentials, as
    /// the emulator prints it.
    pub fn from_command(
        command: Command,
        name: &str,
        output: Output,
    ) -> Result<SandboxProc, String> {
        let mut proc = Proc::spawn(command, name, output)?;
        let ((url, imp_key, imp_secret), _) = proc.wait_for_json(Instant::now(), |json, _| {
            let field = |name: &str| json[name].as_str().map(str::to_owned);
            Ok(
                match (field("url"), field("imp_key"), field("imp_secret")) {
                    (Some(url), Some(imp_key), Some(imp_secret)) => {
                        Some((url, imp_key, imp_secret))
                    }
                    _ => None,
                },
            )
        })?;
        Ok(SandboxProc {
            proc,
            url,
            imp_key,
            imp_secret,
        })
    }
}

/// `portone-facade` serving.
pub struct FacadeProc {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// Just before the spawn.
    pub spawned_at: Instant,
    /// From the spawn to the `listening` log line.
    pub listening_after: Duration,
    /// The lines before it, the `listening` line included.
    pub startup_lines: Vec<String>,
}

impl FacadeProc {
    /// The `local_addr` of the start-up log line whose message is `message`
    /// (`serving metrics at /metrics`, `serving grpc.health.v1 in plaintext`).
    pub fn logged_addr(&self, message: &str) -> Option<SocketAddr> {
        self.startup_lines.iter().find_map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).ok()?;
            (json["message"] == message)
                .then(|| json["local_addr"].as_str()?.parse().ok())
                .flatten()
        })
    }

    /// Starts `command` (JSON logs, such as [`facade_command`]'s) and waits
    /// for its `listening` log line.
    pub fn start(command: Command, output: Output) -> Result<FacadeProc, String> {
        FacadeProc::start_as(command, "facade", output)
    }

    /// [`FacadeProc::start`] for another server that prints the same
    /// `listening` line (the bench's floor), named `name` in errors.
    pub fn start_as(command: Command, name: &str, output: Output) -> Result<FacadeProc, String> {
        let spawned_at = Instant::now();
        let mut proc = Proc::spawn(command, name, output)?;
        let ((addr, listening_after), startup_lines) =
            proc.wait_for_json(spawned_at, |json, line| {
                if json["message"] != "listening" {
                    return Ok(None);
                }
                let listening_after = spawned_at.elapsed();
                let addr = json["local_addr"]
                    .as_str()
                    .and_then(|addr| addr.parse().ok())
                    .ok_or_else(|| {
                        format!("{name}: `listening` line without local_addr: {line}")
                    })?;
                Ok(Some((addr, listening_after)))
            })?;
        Ok(FacadeProc {
            proc,
            addr,
            spawned_at,
            listening_after,
            startup_lines,
        })
    }

    /// Starts `command` on a free loopback port (it sets `LISTEN_ADDR`) and
    /// waits until the port takes connections: for a facade whose log level
    /// hides the `listening` line. Its output is left unread for the test.
    pub fn start_quietly(mut command: Command, output: Output) -> Result<FacadeProc, String> {
        let addr = free_loopback_addr();
        command.env("LISTEN_ADDR", addr.to_string());
        let spawned_at = Instant::now();
        let mut proc = Proc::spawn(command, "facade", output)?;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = proc.child.try_wait() {
                return Err(format!(
                    "facade exited before it listened on {addr}: {status}"
                ));
            }
            if spawned_at.elapsed() > START_LIMIT {
                return Err(format!(
                    "facade: {addr} took no connection within {START_LIMIT:?}"
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(FacadeProc {
            proc,
            addr,
            spawned_at,
            listening_after: spawned_at.elapsed(),
            startup_lines: Vec::new(),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}
