//! Running the git CLI: never interactive, always bounded in time, and its whole process tree is
//! killed when the caller gives up (timeout, cancellation, a client that went away).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use crate::GitError;
use crate::metrics::observe_exec;

/// Bytes produced by a running git process, ending with an error if git failed.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Kills the process group of a child when dropped, unless disarmed after the child exited.
struct ProcessGroup(Option<i32>);

impl ProcessGroup {
    fn of(child: &Child) -> Self {
        ProcessGroup(child.id().and_then(|id| i32::try_from(id).ok()))
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals the process group this code created for
            // the child (process_group(0) below); it touches no memory.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// A git invocation.
pub(crate) struct Git<'a> {
    args: Vec<&'a str>,
    dir: Option<&'a Path>,
    envs: Vec<(&'static str, String)>,
    timeout: Duration,
    stdin: Option<Bytes>,
}

/// What a finished git process printed.
pub(crate) struct Output {
    pub stdout: Vec<u8>,
}

impl<'a> Git<'a> {
    pub fn new(args: &[&'a str], timeout: Duration) -> Self {
        Git {
            args: args.to_vec(),
            dir: None,
            envs: Vec::new(),
            timeout,
            stdin: None,
        }
    }

    /// Runs in (or, for a bare repository, on) this directory.
    pub fn in_dir(mut self, dir: &'a Path) -> Self {
        self.dir = Some(dir);
        self
    }

    pub fn env(mut self, key: &'static str, value: String) -> Self {
        self.envs.push((key, value));
        self
    }

    pub fn stdin(mut self, input: Bytes) -> Self {
        self.stdin = Some(input);
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .args(&self.args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .env("SSH_ASKPASS", "true")
            .env("LC_ALL", "C")
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if std::env::var_os("GIT_SSH_COMMAND").is_none() {
            // Never wait for a password or a host key question on a terminal nobody watches.
            command.env(
                "GIT_SSH_COMMAND",
                "ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            );
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        if let Some(dir) = self.dir {
            command.current_dir(dir);
        }
        command
    }

    fn subcommand(&self) -> &str {
        self.args
            .iter()
            .find(|a| !a.starts_with('-') && !a.contains('='))
            .copied()
            .unwrap_or("git")
    }

    /// Runs to completion; a non-zero exit is a `Command` error carrying git's message.
    pub async fn run(self) -> Result<Output, GitError> {
        let started = Instant::now();
        let subcommand = self.subcommand().to_string();
        let result = tokio::time::timeout(self.timeout, self.run_unbounded()).await;
        let result = match result {
            Ok(result) => result,
            Err(_) => Err(GitError::Timeout(
                subcommand.clone(),
                self.timeout.as_secs(),
            )),
        };
        observe_exec(&subcommand, result.is_ok(), started.elapsed());
        result
    }

    async fn run_unbounded(&self) -> Result<Output, GitError> {
        let mut child = self.command().spawn()?;
        let mut group = ProcessGroup::of(&child);
        let writer = feed_stdin(&mut child, self.stdin.clone());
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            if let Some(s) = stdout.as_mut() {
                s.read_to_end(&mut out).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(s) = stderr.as_mut() {
                s.read_to_end(&mut err).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (read_out, read_err) = tokio::join!(read_out, read_err);
        read_out?;
        read_err?;
        let status = child.wait().await?;
        group.disarm();
        if let Some(writer) = writer {
            // A process may exit without reading all of its input; that is its business.
            let _ = writer.await;
        }
        if status.success() {
            Ok(Output { stdout: out })
        } else {
            Err(GitError::Command(failure_message(&self.args, status, &err)))
        }
    }

    /// Starts git and streams its standard output. Dropping the stream kills the process tree.
    pub fn stream(self) -> Result<ByteStream, GitError> {
        let mut child = self.command().spawn()?;
        let group = ProcessGroup::of(&child);
        let writer = feed_stdin(&mut child, self.stdin.clone());
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| GitError::Io("git stdout unavailable".into()))?;
        let stderr = child.stderr.take();
        let stderr_task = tokio::spawn(async move {
            let mut err = Vec::new();
            if let Some(mut s) = stderr {
                let _ = s.read_to_end(&mut err).await;
            }
            err
        });
        let args: Vec<String> = self.args.iter().map(|a| a.to_string()).collect();
        struct State {
            stdout: tokio::process::ChildStdout,
            child: Child,
            group: ProcessGroup,
            stderr_task: Option<tokio::task::JoinHandle<Vec<u8>>>,
            writer: Option<tokio::task::JoinHandle<()>>,
            args: Vec<String>,
            done: bool,
        }
        let state = State {
            stdout,
            child,
            group,
            stderr_task: Some(stderr_task),
            writer,
            args,
            done: false,
        };
        Ok(Box::pin(stream::unfold(state, |mut state| async move {
            if state.done {
                return None;
            }
            let mut buf = vec![0u8; 64 * 1024];
            match state.stdout.read(&mut buf).await {
                Ok(0) => {
                    state.done = true;
                    let status = state.child.wait().await;
                    state.group.disarm();
                    if let Some(writer) = state.writer.take() {
                        let _ = writer.await;
                    }
                    let err = match state.stderr_task.take() {
                        Some(task) => task.await.unwrap_or_default(),
                        None => Vec::new(),
                    };
                    match status {
                        Ok(status) if status.success() => None,
                        Ok(status) => {
                            let args: Vec<&str> = state.args.iter().map(String::as_str).collect();
                            let message = failure_message(&args, status, &err);
                            Some((Err(std::io::Error::other(message)), state))
                        }
                        Err(e) => Some((Err(e), state)),
                    }
                }
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), state))
                }
                Err(e) => {
                    state.done = true;
                    Some((Err(e), state))
                }
            }
        })))
    }
}

fn feed_stdin(child: &mut Child, input: Option<Bytes>) -> Option<tokio::task::JoinHandle<()>> {
    let input = input?;
    let mut stdin = child.stdin.take()?;
    Some(tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    }))
}

fn failure_message(args: &[&str], status: std::process::ExitStatus, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let text = if text.len() > 4000 {
        let mut cut = text.len() - 4000;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        &text[cut..]
    } else {
        text
    };
    let subcommand = args
        .iter()
        .find(|a| !a.starts_with('-') && !a.contains('='))
        .copied()
        .unwrap_or("git");
    if text.is_empty() {
        format!("git {subcommand} failed ({status})")
    } else {
        redact_credentials(text)
    }
}

/// Replaces the password of any `scheme://user:password@` in a text.
pub fn redact_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split(':').next().unwrap_or("");
                if userinfo.contains(':') {
                    out.push_str(user);
                    out.push_str(":***");
                } else {
                    out.push_str("***");
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(
            redact_credentials("fatal: unable to access 'https://bob:tok3n@host/r/': 403"),
            "fatal: unable to access 'https://bob:***@host/r/': 403"
        );
        assert_eq!(
            redact_credentials("https://tok3n@host/r and ssh://git@h/x"),
            "https://***@host/r and ssh://***@h/x"
        );
        assert_eq!(redact_credentials("no urls here"), "no urls here");
    }

    #[tokio::test]
    async fn failures_carry_gits_message() {
        let err = Git::new(&["rev-parse", "--verify", "nope"], Duration::from_secs(30))
            .in_dir(Path::new("/"))
            .run()
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a git repository"), "{err}");
    }

    #[tokio::test]
    async fn streams_end_with_an_error_when_git_fails() {
        let dir = tempfile::tempdir().unwrap();
        let mut stream = Git::new(&["cat-file", "blob", "HEAD:x"], Duration::from_secs(30))
            .in_dir(dir.path())
            .stream()
            .unwrap();
        let mut saw_error = false;
        while let Some(item) = stream.next().await {
            saw_error |= item.is_err();
        }
        assert!(saw_error);
    }

    #[tokio::test]
    async fn stdin_reaches_git() {
        let output = Git::new(&["hash-object", "--stdin"], Duration::from_secs(30))
            .stdin(Bytes::from_static(b"hello\n"))
            .run()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(output.stdout).unwrap().trim(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
