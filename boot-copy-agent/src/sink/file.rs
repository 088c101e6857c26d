//! The alert log: NDJSON, append-only, never through a symlink, one complete line per write,
//! rotated by size, and reopened when logrotate renames it, when it is deleted or moved, and
//! on SIGHUP.
use super::{DEFAULT_QUEUE_CAPACITY, Record, Shared, SinkError, Worker, one_line};
use nix::{
    errno::Errno,
    fcntl::{OFlag, open, openat, renameat},
    sys::{
        inotify::{AddWatchFlags, InitFlags, Inotify},
        stat::Mode,
    },
    unistd::{UnlinkatFlags, unlinkat},
};
use serde::Deserialize;
use std::{
    ffi::{OsStr, OsString},
    fs::{self, DirBuilder, File, Permissions},
    io::{self, IoSlice, Write},
    os::{
        fd::OwnedFd,
        unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

const DIR_MODE: u32 = 0o750;
const FILE_MODE: u32 = 0o640;
/// How long to wait before retrying to open the log, or to rotate it, after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// How long a record waits for a log moved away from its path to be recreated there (by
/// logrotate) before we recreate it.
const MOVE_GRACE: Duration = Duration::from_secs(1);

/// `[sinks.alert_log]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertLogConfig {
    /// Default true.
    pub enabled: bool,
    /// Default `/var/log/boot-copy/alerts.ndjson`. The directory is created 0750 and the file
    /// 0640 if missing; a symlink as the file or as its directory is refused.
    pub path: PathBuf,
    /// Rotate when a write would make the file larger than this. Default 100 MiB; 0 leaves
    /// rotation to logrotate alone.
    pub max_bytes: u64,
    /// Rotated files kept: `alerts.ndjson.1` (newest) to `.N`. Default 5.
    pub keep: u32,
    /// Default `"never"` (the page cache flushes).
    pub fsync: FsyncPolicy,
    /// Default 4096 records.
    pub queue_capacity: usize,
}

impl Default for AlertLogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/var/log/boot-copy/alerts.ndjson".into(),
            max_bytes: 100 << 20,
            keep: 5,
            fsync: FsyncPolicy::Never,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

/// When the alert log is fsync'ed. In TOML: `fsync = "never"`, `fsync = "every_record"` or
/// `fsync = { interval_ms = 1000 }`. The log is always fsync'ed at shutdown and before a
/// rotation (unless `never`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FsyncPolicy {
    #[default]
    Never,
    EveryRecord,
    IntervalMs(u64),
}

pub(super) struct AlertLog {
    path: PathBuf,
    dir: PathBuf,
    name: OsString,
    max_bytes: u64,
    keep: u32,
    fsync: FsyncPolicy,
    log: Option<OpenLog>,
    /// Changes to the directory's entries; without it (no inotify) the path is stat'ed before
    /// every record.
    watch: Option<DirWatch>,
    /// Written since the last fsync.
    dirty: bool,
    last_sync: Instant,
    open_retry_at: Instant,
    rotate_retry_at: Instant,
}

/// Entry changes in the log's directory (renames, creates, deletes), read without blocking.
struct DirWatch(Inotify);

impl DirWatch {
    fn new(dir: &Path) -> Option<Self> {
        let flags = InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC;
        let watch = DirWatch(Inotify::init(flags).ok()?);
        watch.add(dir).then_some(watch)
    }

    /// Watches `dir` (a no-op for the directory already watched).
    fn add(&self, dir: &Path) -> bool {
        let events = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        self.0.add_watch(dir, events).is_ok()
    }

    /// Whether an event since the last call concerns the entry `name` or the directory itself
    /// (events without a name; a queue overflow among them).
    fn touched(&self, name: &OsStr) -> bool {
        let mut touched = false;
        loop {
            match self.0.read_events() {
                Ok(events) => {
                    touched |= events
                        .iter()
                        .any(|e| e.name.as_deref().is_none_or(|n| n == name));
                }
                Err(Errno::EAGAIN) => return touched,
                Err(_) => return true,
            }
        }
    }
}

struct OpenLog {
    /// The directory, opened without following a link; renames and creates are relative to it.
    dir: OwnedFd,
    file: File,
    dev: u64,
    ino: u64,
    size: u64,
}

impl AlertLog {
    /// Opens (creating) the log at start; every problem is an error naming the path.
    pub(super) fn open(cfg: &AlertLogConfig) -> Result<Self, SinkError> {
        let (dir, name) = split(&cfg.path)?;
        let log = open_log(&dir, &name, &cfg.path)?;
        let now = Instant::now();
        Ok(Self {
            path: cfg.path.clone(),
            watch: DirWatch::new(&dir),
            dir,
            name,
            max_bytes: cfg.max_bytes,
            keep: cfg.keep,
            fsync: cfg.fsync,
            log: Some(log),
            dirty: false,
            last_sync: now,
            open_retry_at: now,
            rotate_retry_at: now,
        })
    }

    /// Waits up to [`MOVE_GRACE`] for a file to appear at the path; false if none did.
    fn wait_for_replacement(&self) -> bool {
        let deadline = Instant::now() + MOVE_GRACE;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
            if fs::symlink_metadata(&self.path).is_ok() {
                return true;
            }
        }
        false
    }

    /// Closes the current file (fsync'ed per policy) and opens the one at the path.
    fn reopen_now(&mut self, shared: &Shared) {
        self.sync();
        self.log = None;
        match open_log(&self.dir, &self.name, &self.path) {
            Ok(log) => {
                self.log = Some(log);
                // The directory may be another one now (same inode: the same watch).
                if self.watch.as_ref().is_some_and(|w| !w.add(&self.dir)) {
                    self.watch = None;
                }
                shared.up();
            }
            Err(e) => {
                self.open_retry_at = Instant::now() + RETRY;
                shared.down(&e);
            }
        }
    }

    /// After a failed open, tries again at most once per [`RETRY`].
    fn ensure_open(&mut self, shared: &Shared) -> bool {
        if self.log.is_none() && Instant::now() >= self.open_retry_at {
            self.reopen_now(shared);
        }
        self.log.is_some()
    }

    fn sync(&mut self) {
        if let Some(log) = &self.log
            && self.dirty
            && self.fsync != FsyncPolicy::Never
        {
            if let Err(e) = log.file.sync_data() {
                tracing::warn!("fsync of alert log {}: {e}", self.path.display());
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
    }

    /// Whether writing `len` more bytes would pass `max_bytes`. The size is re-read from the
    /// file before saying yes, so a truncation by others (logrotate's copytruncate) is followed.
    fn needs_rotation(&mut self, len: usize) -> bool {
        let Some(log) = &mut self.log else {
            return false;
        };
        let over = |size: u64| size > 0 && size + len as u64 > self.max_bytes;
        if self.max_bytes == 0 || !over(log.size) || Instant::now() < self.rotate_retry_at {
            return false;
        }
        if let Ok(m) = log.file.metadata() {
            log.size = m.len();
        }
        over(log.size)
    }

    /// `alerts.ndjson.{N-1}` → `.N`, …, `alerts.ndjson` → `.1`, then a new `alerts.ndjson`.
    fn rotate(&mut self, shared: &Shared) {
        self.sync();
        let Some(log) = &self.log else { return };
        let dir = &log.dir;
        let numbered = |i: u32| {
            let mut n = self.name.clone();
            n.push(format!(".{i}"));
            n
        };
        let mut result = Ok(());
        for i in (1..self.keep).rev() {
            match renameat(
                dir,
                numbered(i).as_os_str(),
                dir,
                numbered(i + 1).as_os_str(),
            ) {
                Ok(()) | Err(Errno::ENOENT) => {}
                Err(e) => result = Err(e),
            }
        }
        if result.is_ok() {
            result = if self.keep == 0 {
                unlinkat(dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir)
            } else {
                renameat(dir, self.name.as_os_str(), dir, numbered(1).as_os_str())
            };
        }
        match result {
            Ok(()) => self.reopen_now(shared),
            Err(e) => {
                // Keep appending to the current file; try again later.
                self.rotate_retry_at = Instant::now() + RETRY;
                tracing::warn!("cannot rotate alert log {}: {e}", self.path.display());
            }
        }
    }
}

impl Worker for AlertLog {
    fn write(&mut self, record: &Record, shared: &Shared) {
        if !self.ensure_open(shared) {
            shared.fail(&format_args!(
                "alert log {} is not open",
                self.path.display()
            ));
            return;
        }
        let line = one_line(&record.line);
        let len = line.len() + 1;
        if self.needs_rotation(len) {
            self.rotate(shared);
            if !self.ensure_open(shared) {
                shared.fail(&format_args!(
                    "alert log {} is not open",
                    self.path.display()
                ));
                return;
            }
        }
        let Some(log) = &mut self.log else { return };
        match append_line(&log.file, line.as_bytes()) {
            Ok(()) => {
                log.size += len as u64;
                self.dirty = true;
                shared.ok();
                if self.fsync == FsyncPolicy::EveryRecord {
                    self.sync();
                }
            }
            Err(e) => shared.fail(&format_args!(
                "writing alert log {}: {e}",
                self.path.display()
            )),
        }
    }

    /// Is the file we hold still the one at the path? logrotate renames it (then we follow to
    /// the new file), someone may delete or move it (then we recreate it).
    fn check(&mut self, shared: &Shared) {
        let Some(log) = &self.log else { return };
        // The path is stat'ed only after an entry of the directory changed (one read of the
        // inotify descriptor per record instead of a path walk), or before every record
        // without inotify. The open file is looked at only when the path does not lead to it.
        if self.watch.as_ref().is_some_and(|w| !w.touched(&self.name)) {
            return;
        }
        let links = || log.file.metadata().map_or(1, |m| m.nlink());
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == log.dev && m.ino() == log.ino => {}
            Ok(_) => {
                tracing::info!(
                    "alert log {} was replaced (rotated); reopening",
                    self.path.display()
                );
                self.reopen_now(shared);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && links() == 0 => {
                tracing::warn!(
                    "alert log {} was deleted; recreating it",
                    self.path.display()
                );
                self.reopen_now(shared);
            }
            // Moved away: logrotate creates the new file right after its rename (creating it
            // ourselves first would make logrotate move ours aside as a `.backup`). Wait for it
            // instead of writing into the moved file, which a shipper stops reading soon after
            // the rename; past the grace, recreate it ourselves.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !self.wait_for_replacement() {
                    tracing::warn!(
                        "alert log {} was moved away; recreating it",
                        self.path.display()
                    );
                }
                self.reopen_now(shared);
            }
            Err(e) => tracing::debug!("stat of alert log {}: {e}", self.path.display()),
        }
    }

    fn tick(&mut self, _shared: &Shared) {
        if let FsyncPolicy::IntervalMs(ms) = self.fsync
            && self.last_sync.elapsed() >= Duration::from_millis(ms)
        {
            self.sync();
        }
    }

    fn tick_interval(&self) -> Duration {
        match self.fsync {
            FsyncPolicy::IntervalMs(ms) => Duration::from_millis(ms.clamp(10, 1000)),
            _ => Duration::from_secs(1),
        }
    }

    fn reopen(&mut self, shared: &Shared) {
        tracing::info!("reopening alert log {}", self.path.display());
        self.reopen_now(shared);
    }

    fn close(&mut self, _shared: &Shared) {
        if let Some(log) = &self.log
            && self.dirty
            && let Err(e) = log.file.sync_data()
        {
            tracing::warn!(
                "fsync of alert log {} at shutdown: {e}",
                self.path.display()
            );
        }
        self.log = None;
    }
}

/// Appends `line` and its newline, in one `writev` (the line is not copied to add the newline:
/// an alert can be megabytes). A short write followed by an error (disk full) is cut back off
/// the end of the file, so the log never holds a torn line.
fn append_line(mut file: &File, line: &[u8]) -> io::Result<()> {
    let total = line.len() + 1;
    let mut done = 0;
    while done < total {
        let rest = [
            IoSlice::new(&line[done.min(line.len())..]),
            IoSlice::new(&b"\n"[done.saturating_sub(line.len())..]),
        ];
        match file.write_vectored(&rest) {
            Ok(0) => return Err(torn(file, done, io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(torn(file, done, e)),
        }
    }
    Ok(())
}

fn torn(file: &File, written: usize, error: io::Error) -> io::Error {
    if written > 0 {
        let cut = file
            .metadata()
            .and_then(|m| file.set_len(m.len().saturating_sub(written as u64)));
        if let Err(e) = cut {
            tracing::error!("cannot remove a partial line from the alert log: {e}");
        }
    }
    error
}

fn split(path: &Path) -> Result<(PathBuf, OsString), SinkError> {
    let bad = |message: &str| SinkError::Config {
        key: "alert_log",
        message: format!("path {}: {message}", path.display()),
    };
    let name = path.file_name().ok_or_else(|| bad("has no file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_os_string()))
}

fn open_log(dir: &Path, name: &OsStr, path: &Path) -> Result<OpenLog, SinkError> {
    let dir_fd = open_dir(dir)?;
    let flags = OFlag::O_WRONLY
        | OFlag::O_APPEND
        | OFlag::O_CREAT
        | OFlag::O_NOFOLLOW
        | OFlag::O_CLOEXEC
        // A FIFO planted at the path must not block the open.
        | OFlag::O_NONBLOCK;
    let fd =
        openat(&dir_fd, name, flags, Mode::from_bits_truncate(FILE_MODE)).map_err(|e| match e {
            Errno::ELOOP => SinkError::Symlink { path: path.into() },
            e => SinkError::Open {
                what: "alert log",
                path: path.into(),
                error: e.into(),
                fix: "run as root, or set [sinks.alert_log] path to a writable location",
            },
        })?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|error| SinkError::Open {
        what: "alert log",
        path: path.into(),
        error,
        fix: "check the file system",
    })?;
    if !meta.is_file() {
        return Err(SinkError::WrongType {
            path: path.into(),
            expected: "regular file",
        });
    }
    // Never group-writable or world-readable, whatever the umask or a previous owner did.
    let mode = meta.mode() & 0o7777;
    if mode & !FILE_MODE != 0 {
        file.set_permissions(Permissions::from_mode(mode & FILE_MODE))
            .map_err(|error| SinkError::Open {
                what: "alert log",
                path: path.into(),
                error,
                fix: "make the file owned by the agent's user",
            })?;
    }
    Ok(OpenLog {
        dir: dir_fd,
        file,
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.len(),
    })
}

/// Opens the log directory, creating it 0750 if missing; a symlink there is refused.
fn open_dir(dir: &Path) -> Result<OwnedFd, SinkError> {
    let open_err = |error: io::Error| SinkError::Open {
        what: "alert log directory",
        path: dir.into(),
        error,
        fix: "run as root, or set [sinks.alert_log] path to a writable location",
    };
    let created = match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err(SinkError::Symlink { path: dir.into() }),
        Ok(m) if !m.is_dir() => {
            return Err(SinkError::WrongType {
                path: dir.into(),
                expected: "directory",
            });
        }
        Ok(_) => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(open_err)?;
            true
        }
        Err(e) => return Err(open_err(e)),
    };
    // O_NOFOLLOW also covers a link swapped in since the check above.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = open(dir, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP => SinkError::Symlink { path: dir.into() },
        e => open_err(e.into()),
    })?;
    if created {
        // The umask may have narrowed or (if odd) widened the mode we asked for.
        let file = File::from(fd);
        file.set_permissions(Permissions::from_mode(DIR_MODE))
            .map_err(open_err)?;
        return Ok(file.into());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policy_toml_shapes() {
        #[derive(Deserialize)]
        struct T {
            fsync: FsyncPolicy,
        }
        let p = |s: &str| toml::from_str::<T>(s).map(|t| t.fsync);
        assert_eq!(p(r#"fsync = "never""#).unwrap(), FsyncPolicy::Never);
        assert_eq!(
            p(r#"fsync = "every_record""#).unwrap(),
            FsyncPolicy::EveryRecord
        );
        assert_eq!(
            p("fsync = { interval_ms = 250 }").unwrap(),
            FsyncPolicy::IntervalMs(250)
        );
        assert!(p(r#"fsync = "always""#).is_err());
    }

    #[test]
    fn split_needs_a_file_name() {
        assert!(split(Path::new("/")).is_err());
        let (dir, name) = split(Path::new("alerts.ndjson")).unwrap();
        assert_eq!(
            (dir.as_path(), name.as_os_str()),
            (Path::new("."), OsStr::new("alerts.ndjson"))
        );
    }

    #[test]
    fn partial_line_is_cut_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"whole\npart").unwrap();
        let file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        let e = torn(&file, 4, io::ErrorKind::StorageFull.into());
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs::read(&path).unwrap(), b"whole\n");
    }
}
