//! Files re-read when their contents change: the TLS pair, the client CAs
//! and the authorization policy (DESIGN §8) all reload through [`watch`].
//!
//! The files are polled, not watched with inotify (the `notify` crate): a
//! Kubernetes Secret or ConfigMap volume replaces its files by swapping a
//! `..data` symlink, which inotify reports on the directory and not on the
//! watched path (and a watch on the path itself follows the old inode), so
//! an event-based watcher must re-arm itself on every swap. Reading a few
//! small files every two seconds through their paths sees whatever the
//! symlinks resolve to now, on every filesystem, costs nothing measurable,
//! and leaves no state that a missed event could wedge. Two seconds keeps a
//! change in force well within the 10 s that §8 allows.

use std::{fmt, io, path::PathBuf, time::Duration};

use tokio::task::JoinHandle;

/// How often the files are read again.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A file named by a setting, so that errors can name both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingFile {
    /// The environment variable that names the file, e.g. `TLS_CERT_FILE`.
    pub variable: &'static str,
    /// The file.
    pub path: PathBuf,
}

/// A file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {variable} {path}: {source}", path = .path.display())]
pub struct ReadError {
    /// The variable naming the file.
    pub variable: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl SettingFile {
    /// The file named by `variable`.
    pub fn new(variable: &'static str, path: impl Into<PathBuf>) -> SettingFile {
        SettingFile {
            variable,
            path: path.into(),
        }
    }

    /// The file's whole contents, through any symlinks.
    pub fn read(&self) -> Result<Vec<u8>, ReadError> {
        std::fs::read(&self.path).map_err(|source| ReadError {
            variable: self.variable,
            path: self.path.clone(),
            source,
        })
    }
}

impl fmt::Display for SettingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.variable, self.path.display())
    }
}

/// Reads every file, in order.
pub fn read_all(files: &[SettingFile]) -> Result<Vec<Vec<u8>>, ReadError> {
    files.iter().map(SettingFile::read).collect()
}

/// Stops its watch when dropped.
#[derive(Debug)]
pub struct Watch(JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads `files` every [`POLL_INTERVAL`] and, whenever what they hold
/// differs from the last look (`seen` at first: the contents the caller has
/// loaded), calls `changed` with the new contents, or with the error when
/// one cannot be read. A change is reported once, however many polls see
/// it, so a broken file logs one error, not one every poll. Must be called
/// inside the tokio runtime.
pub fn watch(
    files: Vec<SettingFile>,
    seen: Vec<Vec<u8>>,
    changed: impl FnMut(Result<Vec<Vec<u8>>, ReadError>) + Send + 'static,
) -> Watch {
    watch_every(POLL_INTERVAL, files, seen, changed)
}

/// [`watch`], reading every `interval`.
fn watch_every(
    interval: Duration,
    files: Vec<SettingFile>,
    seen: Vec<Vec<u8>>,
    mut changed: impl FnMut(Result<Vec<Vec<u8>>, ReadError>) + Send + 'static,
) -> Watch {
    Watch(tokio::spawn(async move {
        // `None`: the files could not be read at the last look.
        let mut seen = Some(seen);
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            let read = {
                let files = files.clone();
                tokio::task::spawn_blocking(move || read_all(&files)).await
            };
            let Ok(read) = read else { continue };
            let now = read.as_ref().ok();
            if now == seen.as_ref() {
                continue;
            }
            seen = now.cloned();
            changed(read);
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn a_change_is_reported_once_and_an_unchanged_file_never() {
        const EVERY: Duration = Duration::from_millis(20);
        let dir = std::env::temp_dir().join(format!("portone-facade-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = SettingFile::new("SOME_FILE", dir.join("some"));
        std::fs::write(&file.path, "one").unwrap();
        let reports = Arc::new(Mutex::new(Vec::new()));
        let _watch = watch_every(EVERY, vec![file.clone()], vec![b"one".to_vec()], {
            let reports = Arc::clone(&reports);
            move |read| {
                reports
                    .lock()
                    .unwrap()
                    .push(read.map_err(|error| error.to_string()))
            }
        });
        // Ten polls: time to see each change, and to report it again if it would.
        let polls = |n: u32| tokio::time::sleep(EVERY * n);
        polls(10).await;
        assert!(reports.lock().unwrap().is_empty());
        std::fs::write(&file.path, "two").unwrap();
        polls(10).await;
        std::fs::remove_file(&file.path).unwrap();
        polls(10).await;
        let reports = reports.lock().unwrap().clone();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(reports.len(), 2, "{reports:?}");
        assert_eq!(reports[0].as_ref().unwrap(), &vec![b"two".to_vec()]);
        let error = reports[1].as_ref().unwrap_err();
        assert!(
            error.contains("SOME_FILE") && error.contains("some"),
            "{error}"
        );
    }
}
