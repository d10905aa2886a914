//! Real git repositories for tests, made with the git CLI.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A non-bare repository with a work tree, used as an origin in tests.
pub struct TestRepo {
    pub path: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> io::Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Quarry Test")
        .env("GIT_AUTHOR_EMAIL", "test@quarry.invalid")
        .env("GIT_COMMITTER_NAME", "Quarry Test")
        .env("GIT_COMMITTER_EMAIL", "test@quarry.invalid")
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

impl TestRepo {
    /// `git init` with `main` as the default branch.
    pub fn init(path: &Path) -> io::Result<TestRepo> {
        std::fs::create_dir_all(path)?;
        git(path, &["init", "--quiet", "--initial-branch=main"])?;
        Ok(TestRepo {
            path: path.to_path_buf(),
        })
    }

    /// Writes the files and commits them; returns the new commit id.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> io::Result<String> {
        for (name, contents) in files {
            let file = self.path.join(name);
            if let Some(parent) = file.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(file, contents)?;
        }
        git(&self.path, &["add", "--all"])?;
        git(
            &self.path,
            &["commit", "--quiet", "--allow-empty", "-m", message],
        )?;
        self.head()
    }

    pub fn head(&self) -> io::Result<String> {
        git(&self.path, &["rev-parse", "HEAD"])
    }

    /// Runs any git command in the repository.
    pub fn git(&self, args: &[&str]) -> io::Result<String> {
        git(&self.path, args)
    }
}
