//! Running one step: in a bubblewrap sandbox (the default) or, when asked for, on the host shell.
//!
//! The sandbox gives each step fresh mount, pid, ipc, uts, network and user namespaces; the
//! step runs as `nobody` (65534) with no capabilities, `no_new_privs` and a seccomp filter
//! (`seccomp.rs`); the host's `/usr` and
//! `/etc` are read-only (the rest of the host is absent), the workspace is the only writable tree
//! (plus a private `/tmp`), the environment is only what the step names, and the network exists
//! only when the queue allows it. Limits on memory, processes and CPU come from a cgroup made
//! for the step (cgroup v1 controllers or the v2 unified tree, whichever the host has); when the
//! step ends, times out or is canceled, every process left in that cgroup is killed, so nothing
//! it started outlives it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use crate::ExecutorError;

/// Where steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// bubblewrap over the host's read-only system directories.
    Sandbox,
    /// The host shell, with no isolation (only when asked for).
    Shell,
}

/// Limits of one step.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: u64,
    pub max_processes: u64,
    /// CPUs' worth of time per period.
    pub cpus: f64,
    pub network: bool,
}

/// One step to run.
pub struct Step<'a> {
    pub script: &'a str,
    /// The workspace on the host.
    pub workspace: &'a Path,
    /// Working directory inside the workspace.
    pub dir: &'a str,
    pub env: &'a [(String, String)],
    /// What the sandbox's root file system is made of (the shell runtime ignores it).
    pub root: Root<'a>,
    /// A host directory the step may read at its own path: the mirror whose objects the
    /// workspace's repository borrows.
    pub readable: Option<&'a Path>,
    pub deadline: Instant,
}

/// A sandboxed step's root file system, always read-only.
#[derive(Debug, Clone, Copy)]
pub enum Root<'a> {
    /// The host's `/usr` and `/etc` with the usual links to them.
    Host,
    /// An unpacked OCI image, with its configured environment.
    Image(&'a quarry_images::Image),
}

/// The host's directories a `Root::Host` step sees.
const HOST_ENTRIES: [&str; 8] = [
    "usr", "etc", "bin", "sbin", "lib", "lib64", "lib32", "libx32",
];

/// Directories of a root the sandbox makes itself.
const OWN_ENTRIES: [&str; 4] = ["proc", "dev", "tmp", "work"];

/// Mounts the entries of a root directory read-only (links stay links).
fn mount_root(command: &mut Command, root: &Path, names: &[std::ffi::OsString]) {
    for name in names {
        let host = root.join(name);
        let inside = Path::new("/").join(name);
        match std::fs::symlink_metadata(&host) {
            Ok(meta) if meta.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(&host) {
                    command.arg("--symlink").arg(target).arg(&inside);
                }
            }
            Ok(_) => {
                command.arg("--ro-bind").arg(&host).arg(&inside);
            }
            Err(_) => {}
        }
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepEnd {
    Exited(i32),
    /// Killed by a signal (for example when it ran out of memory).
    Signaled(i32),
    TimedOut,
    Canceled,
}

/// Where the workspace appears inside the sandbox.
pub const SANDBOX_WORKSPACE: &str = "/work";

/// Whether moving a step into its cgroups waits for an RCU grace period per cgroup written (5-25
/// ms each on a busy host, and one move at a time host-wide): so it does unless some cgroup file
/// system was mounted with `favordynmods`, which makes the moves cheap (0.4 ms here) at some cost
/// to forks and exits. `mounts` is `/proc/mounts`.
pub fn cgroup_moves_wait(mounts: &str) -> bool {
    let cgroup_mounts: Vec<&str> = mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [_, _, "cgroup" | "cgroup2", options, ..] => Some(*options),
                _ => None,
            }
        })
        .collect();
    !cgroup_mounts.is_empty()
        && !cgroup_mounts
            .iter()
            .any(|options| options.split(',').any(|o| o == "favordynmods"))
}

/// A cgroup made for one step, in every controller the host has.
struct StepCgroup {
    dirs: Vec<PathBuf>,
    version2: bool,
}

impl StepCgroup {
    fn create(name: &str, limits: &Limits) -> Result<StepCgroup, ExecutorError> {
        let root = Path::new("/sys/fs/cgroup");
        let failed = |what: &str, e: std::io::Error| {
            ExecutorError::Sandbox(format!("cannot set up the step's cgroup ({what}): {e}"))
        };
        if root.join("cgroup.controllers").exists() {
            // cgroup v2: one directory; the controllers must be enabled for the parent's children.
            let parent = root.join("quarry-executor");
            std::fs::create_dir_all(&parent).map_err(|e| failed("create", e))?;
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+memory +pids +cpu");
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory +pids +cpu");
            let dir = parent.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| failed("create", e))?;
            let period = 100_000u64;
            let quota = (limits.cpus * period as f64) as u64;
            std::fs::write(dir.join("memory.max"), limits.memory_bytes.to_string())
                .map_err(|e| failed("memory.max", e))?;
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
            std::fs::write(dir.join("pids.max"), limits.max_processes.to_string())
                .map_err(|e| failed("pids.max", e))?;
            std::fs::write(dir.join("cpu.max"), format!("{quota} {period}"))
                .map_err(|e| failed("cpu.max", e))?;
            return Ok(StepCgroup {
                dirs: vec![dir],
                version2: true,
            });
        }
        let mut dirs = Vec::new();
        for (controller, settings) in [
            (
                "memory",
                vec![("memory.limit_in_bytes", limits.memory_bytes.to_string())],
            ),
            ("pids", vec![("pids.max", limits.max_processes.to_string())]),
            (
                "cpu",
                vec![
                    ("cpu.cfs_period_us", "100000".to_string()),
                    (
                        "cpu.cfs_quota_us",
                        ((limits.cpus * 100_000.0) as u64).to_string(),
                    ),
                ],
            ),
        ] {
            let dir = root.join(controller).join("quarry-executor").join(name);
            std::fs::create_dir_all(&dir).map_err(|e| failed(controller, e))?;
            for (file, value) in settings {
                std::fs::write(dir.join(file), value).map_err(|e| failed(file, e))?;
            }
            dirs.push(dir);
        }
        Ok(StepCgroup {
            dirs,
            version2: false,
        })
    }

    /// The `cgroup.procs` files a new process must join.
    fn procs_files(&self) -> Vec<std::ffi::CString> {
        self.dirs
            .iter()
            .filter_map(|d| {
                std::ffi::CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok()
            })
            .collect()
    }

    /// Whether the memory limit was hit.
    fn ran_out_of_memory(&self) -> bool {
        if self.version2 {
            let events =
                std::fs::read_to_string(self.dirs[0].join("memory.events")).unwrap_or_default();
            events
                .lines()
                .any(|l| l.starts_with("oom_kill ") && l.trim_end() != "oom_kill 0")
        } else {
            std::fs::read_to_string(self.dirs[0].join("memory.failcnt"))
                .map(|v| v.trim() != "0")
                .unwrap_or(false)
        }
    }

    /// Kills every process in the cgroup, then removes it.
    async fn kill_all(&self) {
        // Processes that are exiting already leave within a millisecond or so; waits grow from
        // there, about two seconds in all.
        let mut pause = Duration::from_millis(1);
        for _ in 0..50 {
            let mut alive = false;
            for dir in &self.dirs {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    alive = true;
                    // SAFETY: sending a signal has no memory effects; the pid was read from the
                    // step's own cgroup.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
            if !alive {
                break;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The seccomp filter in an inheritable in-memory file, for bubblewrap's `--seccomp FD`.
fn seccomp_file() -> Result<Option<std::fs::File>, ExecutorError> {
    use std::io::{Seek, Write};
    use std::os::fd::FromRawFd;
    let Some(program) = crate::seccomp::filter() else {
        return Ok(None);
    };
    // SAFETY: memfd_create with a valid name; the descriptor is owned by the File made from it.
    let fd = unsafe { libc::memfd_create(c"quarry-seccomp".as_ptr(), 0) };
    if fd < 0 {
        return Err(ExecutorError::Sandbox(format!(
            "cannot create the seccomp filter: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: fd is a new, open descriptor that nothing else owns.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    file.write_all(&program)
        .and_then(|()| file.rewind())
        .map_err(|e| ExecutorError::Sandbox(format!("cannot write the seccomp filter: {e}")))?;
    Ok(Some(file))
}

/// The bubblewrap command line for a step.
fn sandbox_command(step: &Step<'_>, limits: &Limits, seccomp: Option<&std::fs::File>) -> Command {
    let mut command = Command::new("bwrap");
    if let Some(file) = seccomp {
        use std::os::fd::AsRawFd;
        command.arg("--seccomp").arg(file.as_raw_fd().to_string());
    }
    match step.root {
        Root::Host => {
            let names: Vec<std::ffi::OsString> = HOST_ENTRIES.iter().map(Into::into).collect();
            mount_root(&mut command, Path::new("/"), &names);
        }
        Root::Image(image) => {
            let names: Vec<std::ffi::OsString> = std::fs::read_dir(&image.rootfs)
                .map(|entries| {
                    entries
                        .flatten()
                        .map(|e| e.file_name())
                        .filter(|n| !OWN_ENTRIES.iter().any(|own| n == own))
                        .collect()
                })
                .unwrap_or_default();
            mount_root(&mut command, &image.rootfs, &names);
        }
    }
    command
        .args(["--bind"])
        .arg(step.workspace)
        .arg(SANDBOX_WORKSPACE)
        .args(["--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]);
    if let Some(readable) = step.readable {
        command.arg("--ro-bind").arg(readable).arg(readable);
    }
    command
        .args(["--unshare-all", "--uid", "65534", "--gid", "65534"])
        .args([
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
        ])
        .args(["--cap-drop", "ALL", "--clearenv"]);
    if limits.network {
        command.arg("--share-net");
        // An image's own resolver settings would not fit this host's network.
        if let Root::Image(image) = step.root
            && image.rootfs.join("etc/resolv.conf").is_file()
        {
            command.args(["--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"]);
        }
    }
    command.args([
        "--setenv",
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ]);
    if let Root::Image(image) = step.root {
        for (key, value) in image.env.iter().filter_map(|pair| pair.split_once('=')) {
            command.arg("--setenv").arg(key).arg(value);
        }
    }
    command.args(["--setenv", "HOME", SANDBOX_WORKSPACE]);
    for (key, value) in step.env {
        command.arg("--setenv").arg(key).arg(value);
    }
    let dir = Path::new(SANDBOX_WORKSPACE).join(step.dir.trim_start_matches('/'));
    command
        .arg("--chdir")
        .arg(dir)
        .args(["--", "/bin/sh", "-c", step.script]);
    command
}

/// The host shell command for a step (no isolation).
fn shell_command(step: &Step<'_>) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", step.script])
        .current_dir(step.workspace.join(step.dir.trim_start_matches('/')))
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()),
        )
        .env("HOME", step.workspace);
    for (key, value) in step.env {
        command.env(key, value);
    }
    command
}

/// Runs a step, handing its output (stdout and stderr interleaved, as read) to `output` as it
/// comes. Stops it at its deadline or when `cancel` fires.
pub async fn run_step(
    runtime: Runtime,
    name: &str,
    step: &Step<'_>,
    limits: &Limits,
    cancel: &CancellationToken,
    output: &mut (dyn FnMut(&[u8]) + Send),
) -> Result<StepEnd, ExecutorError> {
    let cgroup = match runtime {
        Runtime::Sandbox => Some(StepCgroup::create(name, limits)?),
        Runtime::Shell => None,
    };
    let seccomp = match runtime {
        Runtime::Sandbox => seccomp_file()?,
        Runtime::Shell => None,
    };
    let mut command = match runtime {
        Runtime::Sandbox => sandbox_command(step, limits, seccomp.as_ref()),
        Runtime::Shell => shell_command(step),
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    if let Some(cgroup) = &cgroup {
        let files = cgroup.procs_files();
        // SAFETY: between fork and exec this only calls open, write and close on paths made
        // before the fork, which are async-signal-safe.
        unsafe {
            command.pre_exec(move || {
                for file in &files {
                    let fd = libc::open(file.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    let written = libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                    if written != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
    let mut child = command
        .spawn()
        .map_err(|e| ExecutorError::Sandbox(format!("cannot start the step: {e}")))?;
    // bubblewrap has its copy of the filter.
    drop(seccomp);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut out_buf, mut err_buf) = ([0u8; 8192], [0u8; 8192]);
    let timeout = tokio::time::sleep_until(step.deadline.into());
    tokio::pin!(timeout);
    let end = loop {
        tokio::select! {
            read = async { match stdout.as_mut() { Some(s) => s.read(&mut out_buf).await, None => std::future::pending().await } } => {
                match read {
                    Ok(0) | Err(_) => stdout = None,
                    Ok(n) => output(&out_buf[..n]),
                }
            }
            read = async { match stderr.as_mut() { Some(s) => s.read(&mut err_buf).await, None => std::future::pending().await } } => {
                match read {
                    Ok(0) | Err(_) => stderr = None,
                    Ok(n) => output(&err_buf[..n]),
                }
            }
            status = child.wait(), if stdout.is_none() && stderr.is_none() => {
                let status = status.map_err(|e| ExecutorError::Sandbox(e.to_string()))?;
                use std::os::unix::process::ExitStatusExt;
                break match (status.code(), status.signal()) {
                    (Some(code), _) => StepEnd::Exited(code),
                    (None, Some(signal)) => StepEnd::Signaled(signal),
                    (None, None) => StepEnd::Exited(-1),
                };
            }
            _ = &mut timeout => break StepEnd::TimedOut,
            _ = cancel.cancelled() => break StepEnd::Canceled,
        }
    };
    // Whatever the step left behind goes with it: its process group, then its cgroup.
    if let Some(pid) = child.id() {
        // SAFETY: signals the step's own process group, made for it at spawn.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
    let _ = child.kill().await;
    let out_of_memory = cgroup.as_ref().is_some_and(StepCgroup::ran_out_of_memory);
    if let Some(cgroup) = &cgroup {
        cgroup.kill_all().await;
    }
    if out_of_memory && matches!(end, StepEnd::Signaled(_) | StepEnd::Exited(_)) {
        output(b"\nquarry: the step ran out of memory and was killed\n");
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::cgroup_moves_wait;

    #[test]
    fn cgroup_moves_wait_without_favordynmods() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        assert!(cgroup_moves_wait(hybrid));
        let tuned = hybrid.replace("cgroup2 rw,relatime", "cgroup2 rw,relatime,favordynmods");
        assert!(!cgroup_moves_wait(&tuned));
        assert!(cgroup_moves_wait(
            "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
        ));
        assert!(
            !cgroup_moves_wait("proc /proc proc rw 0 0\n"),
            "no cgroups at all"
        );
    }
}
