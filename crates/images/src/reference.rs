//! Image references: Docker's names (`ubuntu`, `ghcr.io/org/tool:1.2`, `name@sha256:...`, with
//! Docker Hub's defaults) and OCI layout directories (`oci:/path/to/layout[:tag|@digest]`, the
//! `containers` transport syntax).

use std::path::PathBuf;

use crate::ImageError;

/// Docker Hub, as image names without a registry mean it.
pub const DOCKER_HUB: &str = "docker.io";

/// The host that serves Docker Hub's registry API.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Which manifest of a repository or layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Tag(String),
    /// `sha256:<64 hex>`.
    Digest(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Registry {
        /// As written (`docker.io` for Docker Hub).
        registry: String,
        repository: String,
        version: Version,
    },
    Layout {
        dir: PathBuf,
        /// None: the layout's only image.
        version: Option<Version>,
    },
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, ImageError> {
        let bad = |why: &str| ImageError::Reference(format!("{text:?}: {why}"));
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("the step names no image"));
        }
        if let Some(rest) = text.strip_prefix("oci:") {
            return parse_layout(rest).map_err(|why| bad(&why));
        }
        let text = text.strip_prefix("docker://").unwrap_or(text);
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        // A tag follows the last ':' that comes after the last '/' (a registry's port does not).
        let (name, tag) = match name.rfind(':') {
            Some(colon) if !name[colon..].contains('/') => {
                (&name[..colon], Some(&name[colon + 1..]))
            }
            _ => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ if !name.contains('/') => (DOCKER_HUB.to_string(), format!("library/{name}")),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if repository.is_empty()
            || !repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            })
        {
            return Err(bad(
                "a repository name is lowercase letters, digits and . _ - separated by /",
            ));
        }
        let version = match (tag, digest) {
            (_, Some(digest)) => Version::Digest(check_digest(digest).map_err(|why| bad(&why))?),
            (Some(tag), None) => Version::Tag(check_tag(tag).map_err(|why| bad(&why))?),
            (None, None) => Version::Tag("latest".into()),
        };
        Ok(Reference::Registry {
            registry,
            repository,
            version,
        })
    }

    /// The base URL of the registry's API (plain HTTP only for the local host, as Docker does).
    pub fn registry_url(registry: &str) -> String {
        if registry == DOCKER_HUB {
            return format!("https://{DOCKER_HUB_API}");
        }
        let host = registry.rsplit_once(':').map_or(registry, |(host, _)| host);
        if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            format!("http://{registry}")
        } else {
            format!("https://{registry}")
        }
    }
}

fn parse_layout(rest: &str) -> Result<Reference, String> {
    let (dir, version) = if let Some((dir, digest)) = rest.rsplit_once('@') {
        (dir, Some(Version::Digest(check_digest(digest)?)))
    } else {
        match rest.rsplit_once(':') {
            Some((dir, tag)) if !tag.contains('/') => (dir, Some(Version::Tag(check_tag(tag)?))),
            _ => (rest, None),
        }
    };
    if !dir.starts_with('/') {
        return Err("an OCI layout is named by an absolute directory".into());
    }
    Ok(Reference::Layout {
        dir: PathBuf::from(dir),
        version,
    })
}

fn check_tag(tag: &str) -> Result<String, String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(tag.to_string())
    } else {
        Err(format!("{tag:?} is not a tag"))
    }
}

/// Only SHA-256 digests are accepted (the only algorithm registries use).
pub fn check_digest(digest: &str) -> Result<String, String> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(digest.to_string())
        }
        _ => Err(format!("{digest:?} is not a sha256:<64 hex digits> digest")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(text: &str) -> (String, String, Version) {
        match Reference::parse(text).expect(text) {
            Reference::Registry {
                registry,
                repository,
                version,
            } => (registry, repository, version),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn docker_names_get_docker_hub_defaults() {
        let tag = |t: &str| Version::Tag(t.into());
        assert_eq!(
            registry("alpine"),
            ("docker.io".into(), "library/alpine".into(), tag("latest"))
        );
        assert_eq!(
            registry("sourcegraph/scip-typescript:autoindex"),
            (
                "docker.io".into(),
                "sourcegraph/scip-typescript".into(),
                tag("autoindex")
            )
        );
        assert_eq!(
            registry("localhost:5000/tools/sh:1.0"),
            ("localhost:5000".into(), "tools/sh".into(), tag("1.0"))
        );
        assert_eq!(
            registry("docker://ghcr.io/org/tool"),
            ("ghcr.io".into(), "org/tool".into(), tag("latest"))
        );
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            registry(&format!("ghcr.io/org/tool:1@{digest}")).2,
            Version::Digest(digest)
        );
        assert_eq!(
            Reference::registry_url("localhost:5000"),
            "http://localhost:5000"
        );
        assert_eq!(Reference::registry_url("ghcr.io"), "https://ghcr.io");
        assert_eq!(
            Reference::registry_url("docker.io"),
            "https://registry-1.docker.io"
        );
    }

    #[test]
    fn layouts_name_a_directory_and_maybe_a_tag() {
        assert_eq!(
            Reference::parse("oci:/images/tools:v1").expect("layout"),
            Reference::Layout {
                dir: "/images/tools".into(),
                version: Some(Version::Tag("v1".into()))
            }
        );
        assert_eq!(
            Reference::parse("oci:/images/tools").expect("layout"),
            Reference::Layout {
                dir: "/images/tools".into(),
                version: None
            }
        );
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "UPPER/case",
            "a//b",
            "alpine:bad tag",
            "alpine@sha256:short",
            "alpine@md5:0123",
            "oci:relative/dir",
        ] {
            let error = Reference::parse(bad).expect_err(bad).to_string();
            assert!(error.contains(&format!("{:?}", bad.trim())), "{error}");
        }
    }
}
