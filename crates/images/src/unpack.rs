//! Applying image layers (tar streams, OCI's change sets) to a root file system on the host.
//!
//! Every path of a layer is resolved inside the root the way the sandbox will see it: symbolic
//! links are followed with the root as `/`, and `..` stops at the root, so no entry, link target
//! or hard link can reach a file outside it. Whiteouts (`.wh.<name>`) delete what lower layers
//! made; an opaque whiteout (`.wh..wh..opq`) empties its directory of lower layers' entries.
//! Device nodes are skipped (the sandbox gives each step its own `/dev`); set-user-ID and
//! set-group-ID bits are dropped.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::ImageError;

/// Symbolic links followed while resolving one path before giving up (Linux's own bound).
const MAX_LINKS: usize = 40;

const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// What applying one layer did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LayerStats {
    pub entries: u64,
    pub bytes: u64,
    pub skipped_devices: u64,
}

fn failed(what: impl std::fmt::Display) -> ImageError {
    ImageError::Layer(what.to_string())
}

/// The host path of `relative` inside `root`, following symbolic links as the sandbox would.
/// Missing directories are made when `create` is set; otherwise they are an error.
pub fn resolve_in_root(root: &Path, relative: &Path, create: bool) -> Result<PathBuf, ImageError> {
    let mut current = root.to_path_buf();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    let push_components = |pending: &mut VecDeque<OsString>, path: &Path, front: bool| {
        let parts: Vec<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect();
        if front {
            for part in parts.into_iter().rev() {
                pending.push_front(part);
            }
        } else {
            pending.extend(parts);
        }
    };
    push_components(&mut pending, relative, false);
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if name == ".." {
            if current != root {
                current.pop();
            }
            continue;
        }
        let next = current.join(&name);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(failed(format!(
                        "{}: too many levels of symbolic links",
                        relative.display()
                    )));
                }
                let target = std::fs::read_link(&next).map_err(failed)?;
                if target.is_absolute() {
                    current = root.to_path_buf();
                }
                push_components(&mut pending, &target, true);
            }
            Ok(meta) if meta.is_dir() => current = next,
            Ok(_) if pending.is_empty() => current = next,
            Ok(_) => {
                return Err(failed(format!(
                    "{}: {} is not a directory",
                    relative.display(),
                    name.to_string_lossy()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::create_dir(&next).map_err(failed)?;
                current = next;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                current = next;
                if !pending.is_empty() {
                    return Err(failed(format!("{}: no such file", relative.display())));
                }
            }
            Err(e) => return Err(failed(e)),
        }
    }
    Ok(current)
}

/// A layer entry's path relative to the root, or an error for one that climbs out.
fn entry_path(raw: &Path) -> Result<PathBuf, ImageError> {
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(failed(format!(
                    "{}: a layer entry may not leave the image",
                    raw.display()
                )));
            }
        }
    }
    Ok(out)
}

fn remove_any(path: &Path) -> Result<(), ImageError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path).map_err(failed),
        Ok(_) => std::fs::remove_file(path).map_err(failed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(failed(e)),
    }
}

/// Applies one uncompressed layer to `root`, writing at most `budget` bytes of file contents
/// (what is left of the image's allowance; a compressed layer can expand without bound).
pub fn apply_layer(root: &Path, layer: impl Read, budget: u64) -> Result<LayerStats, ImageError> {
    let mut stats = LayerStats::default();
    // Paths this layer made: an opaque whiteout keeps them.
    let mut made: HashSet<PathBuf> = HashSet::new();
    let as_root = {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    };
    let mut archive = tar::Archive::new(layer);
    for entry in archive.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let relative = entry_path(&entry.path().map_err(failed)?)?;
        let Some(name) = relative.file_name().map(|n| n.to_os_string()) else {
            continue;
        };
        stats.entries += 1;
        let parent = resolve_in_root(root, relative.parent().unwrap_or(Path::new("")), true)?;
        let name_text = name.to_string_lossy();
        if name_text == OPAQUE {
            for child in std::fs::read_dir(&parent).map_err(failed)? {
                let child = child.map_err(failed)?.path();
                if !made.contains(&child) {
                    remove_any(&child)?;
                }
            }
            continue;
        }
        if let Some(hidden) = name_text.strip_prefix(WHITEOUT) {
            remove_any(&parent.join(hidden))?;
            continue;
        }
        let target = parent.join(&name);
        let kind = entry.header().entry_type();
        let keep_directory =
            kind.is_dir() && std::fs::symlink_metadata(&target).is_ok_and(|meta| meta.is_dir());
        if !keep_directory {
            remove_any(&target)?;
        }
        let mode = entry.header().mode().map_err(failed)? & 0o1777;
        if kind.is_dir() {
            if !keep_directory {
                std::fs::create_dir(&target).map_err(failed)?;
            }
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(failed)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&target)
                .map_err(failed)?;
            let size = entry.header().size().map_err(failed)?;
            if stats.bytes.saturating_add(size) > budget {
                return Err(failed(format!(
                    "{}: the image unpacks to more than its allowance (EXECUTOR_IMAGE_MAX_SIZE)",
                    relative.display()
                )));
            }
            stats.bytes += std::io::copy(&mut entry, &mut file).map_err(failed)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(failed)?;
        } else if kind.is_symlink() {
            let link = entry.link_name().map_err(failed)?.ok_or_else(|| {
                failed(format!("{}: a link without a target", relative.display()))
            })?;
            std::os::unix::fs::symlink(&link, &target).map_err(failed)?;
        } else if kind.is_hard_link() {
            let link = entry.link_name().map_err(failed)?.ok_or_else(|| {
                failed(format!("{}: a link without a target", relative.display()))
            })?;
            let source = resolve_in_root(root, &entry_path(&link)?, false)
                .ok()
                .filter(|source| std::fs::symlink_metadata(source).is_ok_and(|m| m.is_file()))
                .ok_or_else(|| {
                    failed(format!(
                        "{}: hard link to {}, which is not a file of the image",
                        relative.display(),
                        link.display()
                    ))
                })?;
            std::fs::hard_link(&source, &target).map_err(failed)?;
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            stats.skipped_devices += 1;
            continue;
        } else {
            continue;
        }
        if as_root {
            let uid = entry.header().uid().map_err(failed)? as u32;
            let gid = entry.header().gid().map_err(failed)? as u32;
            std::os::unix::fs::lchown(&target, Some(uid), Some(gid)).map_err(failed)?;
        }
        made.insert(target);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer made of (path, kind, content or link target).
    fn layer(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(*kind);
            header.set_mode(if kind.is_dir() { 0o755 } else { 0o4755 });
            header.set_uid(0);
            header.set_gid(0);
            if kind.is_symlink() || kind.is_hard_link() {
                header.set_size(0);
                builder
                    .append_link(&mut header, path, data)
                    .expect("append link");
            } else {
                header.set_size(data.len() as u64);
                // Written by hand so that paths the builder would refuse (`..`) can be tested.
                header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                header.set_cksum();
                builder.append(&header, data.as_bytes()).expect("append");
            }
        }
        builder.into_inner().expect("tar")
    }

    use tar::EntryType::{Directory, Link, Regular, Symlink};

    #[test]
    fn layers_stack_with_whiteouts() {
        let root = tempfile::tempdir().expect("tempdir");
        let lower = layer(&[
            ("etc/", Directory, ""),
            ("etc/keep", Regular, "keep"),
            ("etc/gone", Regular, "gone"),
            ("opt/", Directory, ""),
            ("opt/old", Regular, "old"),
            ("bin/tool", Regular, "v1"),
            ("bin/alias", Link, "bin/tool"),
        ]);
        let upper = layer(&[
            ("etc/.wh.gone", Regular, ""),
            ("opt/new", Regular, "new"),
            ("opt/.wh..wh..opq", Regular, ""),
            ("bin/tool", Regular, "v2"),
        ]);
        apply_layer(root.path(), &lower[..], u64::MAX).expect("lower");
        let stats = apply_layer(root.path(), &upper[..], u64::MAX).expect("upper");
        assert_eq!(stats.entries, 4);
        let read = |p: &str| std::fs::read_to_string(root.path().join(p)).ok();
        assert_eq!(read("etc/keep").as_deref(), Some("keep"));
        assert_eq!(read("etc/gone"), None);
        assert_eq!(
            read("opt/old"),
            None,
            "opaque directory hides lower entries"
        );
        assert_eq!(read("opt/new").as_deref(), Some("new"), "and keeps its own");
        assert_eq!(read("bin/tool").as_deref(), Some("v2"));
        assert_eq!(
            read("bin/alias").as_deref(),
            Some("v1"),
            "a hard link keeps its inode"
        );
        let mode = std::fs::metadata(root.path().join("bin/tool"))
            .expect("tool")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "set-user-ID dropped");
    }

    #[test]
    fn nothing_reaches_outside_the_root() {
        let outside = tempfile::tempdir().expect("tempdir");
        let root = tempfile::tempdir().expect("tempdir");
        let escape = outside.path().to_string_lossy().to_string();
        // A link to an absolute host path, then a file written through it: resolved inside.
        let through_link = layer(&[
            ("evil", Symlink, &escape),
            ("evil/planted", Regular, "x"),
            ("up", Symlink, "../../../.."),
            ("up/also", Regular, "y"),
        ]);
        apply_layer(root.path(), &through_link[..], u64::MAX).expect("apply");
        assert_eq!(
            std::fs::read_dir(outside.path()).expect("outside").count(),
            0
        );
        assert!(
            root.path()
                .join(escape.trim_start_matches('/'))
                .join("planted")
                .exists()
        );
        assert!(root.path().join("also").exists());
        // `..` in an entry's own path is refused.
        let climbing = layer(&[("../x", Regular, "z")]);
        let error = apply_layer(root.path(), &climbing[..], u64::MAX).expect_err("refused");
        assert!(
            error.to_string().contains("may not leave the image"),
            "{error}"
        );
        // A hard link to a host file is resolved inside the root and so is missing.
        let hard = layer(&[("h", Link, "/etc/passwd")]);
        let error = apply_layer(root.path(), &hard[..], u64::MAX).expect_err("refused");
        assert!(
            error.to_string().contains("not a file of the image"),
            "{error}"
        );
    }

    #[test]
    fn layers_past_the_allowance_are_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let big = layer(&[("a", Regular, "0123456789"), ("b", Regular, "0123456789")]);
        let error = apply_layer(root.path(), &big[..], 15).expect_err("too big");
        assert!(error.to_string().contains("allowance"), "{error}");
        assert_eq!(
            apply_layer(root.path(), &big[..], 20).expect("fits").bytes,
            20
        );
    }

    #[test]
    fn link_loops_end() {
        let root = tempfile::tempdir().expect("tempdir");
        let looped = layer(&[
            ("a", Symlink, "b"),
            ("b", Symlink, "a"),
            ("a/f", Regular, ""),
        ]);
        let error = apply_layer(root.path(), &looped[..], u64::MAX).expect_err("loop");
        assert!(error.to_string().contains("too many levels"), "{error}");
    }
}
