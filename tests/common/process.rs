//! The real `portone-facade` binary, started as a child process.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

/// The binary cargo built for these tests.
pub fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_portone-facade"));
    command
        .env_clear()
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    command
}

/// A running facade process; killed when dropped.
pub struct FacadeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// Log lines (stdout and stderr) after the `listening` line.
    pub logs: mpsc::Receiver<String>,
    /// The log lines before it, the `listening` line included.
    pub startup_logs: Vec<String>,
}

impl FacadeProcess {
    /// Starts `command` with stdout piped and waits (at most 20 s) for its
    /// `listening` log line.
    pub fn start(mut command: Command) -> FacadeProcess {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        let (lines, logs) = mpsc::channel();
        let stderr_lines = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if stderr_lines.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut startup_logs = Vec::new();
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = logs
                .recv_timeout(left)
                .expect("a `listening` log line within 20 s");
            startup_logs.push(line.clone());
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if json["message"] == "listening" {
                break json["local_addr"]
                    .as_str()
                    .expect("local_addr")
                    .parse()
                    .expect("an address");
            }
        };
        FacadeProcess {
            child,
            addr,
            logs,
            startup_logs,
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits at most `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process still running after {limit:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl FacadeProcess {
    /// Every log line received so far.
    pub fn drain_logs(&self) -> Vec<String> {
        self.logs.try_iter().collect()
    }
}

impl Drop for FacadeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
