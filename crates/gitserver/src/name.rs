//! Repository names: the only input that becomes a path on disk, so they are checked here.

use crate::GitError;

const MAX_NAME_LEN: usize = 512;

/// Checks that a repository name is safe to use as a relative path: no empty, `.` or `..`
/// components, not absolute, no component ending in `.git` (mirrors live in `<name>.git`, so such a
/// name could point inside another repository's mirror), and only letters, digits and `._~@+-`.
pub fn validate_repo_name(name: &str) -> Result<(), GitError> {
    let invalid = |reason: &str| {
        Err(GitError::InvalidName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return invalid("is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return invalid("is longer than 512 bytes");
    }
    if name.starts_with('/') {
        return invalid("must not be absolute");
    }
    for (i, component) in name.split('/').enumerate() {
        match component {
            "" => return invalid("has an empty path component"),
            "." | ".." => return invalid("must not contain `.` or `..` components"),
            c if i == 0 && c.starts_with('.') => {
                return invalid("must not start with `.`");
            }
            c if c.ends_with(".git") => {
                return invalid("path components must not end in `.git`");
            }
            c if c.starts_with('-') => return invalid("path components must not start with `-`"),
            _ => {}
        }
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '/' | '.' | '_' | '~' | '@' | '+' | '-')))
    {
        return invalid(&format!("contains the character {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate_repo_name;

    #[test]
    fn ordinary_names_pass() {
        for name in [
            "a",
            "github.com/sourcegraph/sourcegraph",
            "x/.github",
            "team/repo-name_1.2",
            "ü/ñ",
        ] {
            assert!(validate_repo_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a//b",
            "a/./b",
            ".tmp/x",
            "a.git/objects",
            "a b",
            "a\\b",
            "a\nb",
            "-oops",
            "x/--upload-pack=evil",
        ] {
            assert!(validate_repo_name(name).is_err(), "{name:?}");
        }
    }
}
