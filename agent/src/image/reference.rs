//! Image references, normalized as Kubernetes (containerd, docker) do:
//! `busybox` is `docker.io/library/busybox:latest`.

use std::fmt;

use super::ImageError;

/// The registry a name without a domain belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DOMAIN: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// A normalized image reference: `domain/path[:tag][@digest]`. A reference
/// without tag and digest gets the tag `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parses and normalizes `s` (`busybox`, `user/app:v1`,
    /// `localhost:5000/app@sha256:...`, `skiff.local/busybox:latest`).
    pub fn parse(s: &str) -> Result<Self, ImageError> {
        let bad = |reason: &str| ImageError::BadReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(bad("empty"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                validate_digest(d).map_err(|r| bad(&r))?;
                (n, Some(d.to_owned()))
            }
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before
        // it is a registry port).
        let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let (n, t) = name_tag.split_at(last_slash + i);
                (n, Some(t[1..].to_owned()))
            }
            None => (name_tag, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && !t.starts_with(['.', '-'])
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad("invalid tag"));
            }
        }
        let (domain, path) = split_domain(name);
        if domain.is_empty() || path.is_empty() {
            return Err(bad("empty name component"));
        }
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
            if !ok {
                return Err(bad(
                    "repository path must be lowercase [a-z0-9._-] components",
                ));
            }
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            _ => tag,
        };
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `domain/path` without tag or digest.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// docker/distribution's rule: the first component is a domain if it has a
/// `.` or a `:` or is `localhost`; otherwise the name is on Docker Hub, and a
/// single-component Hub name is an official image under `library/`.
fn split_domain(name: &str) -> (String, String) {
    let (mut domain, mut path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first != first.to_lowercase() =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
    };
    if domain == LEGACY_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_PREFIX}{path}");
    }
    (domain, path)
}

/// `sha256:<64 lowercase hex>`; returns the hex part. Also what keeps a
/// digest safe to use as a file name.
pub fn digest_hex(d: &str) -> Result<&str, String> {
    let hex = d
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("digest {d:?} is not sha256:<hex>"))?;
    if hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(hex)
    } else {
        Err(format!(
            "digest {d:?} is not sha256 followed by 64 lowercase hex digits"
        ))
    }
}

fn validate_digest(d: &str) -> Result<(), String> {
    digest_hex(d).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::Reference;

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_hub_names_are_normalized() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/user/app"),
            "docker.io/user/app:latest"
        );
    }

    #[test]
    fn registries_ports_and_digests() {
        assert_eq!(
            norm("skiff.local/busybox:latest"),
            "skiff.local/busybox:latest"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = Reference::parse(&format!("quay.io/x/y@{d}")).unwrap();
        assert_eq!(
            (r.tag.as_deref(), r.digest.as_deref()),
            (None, Some(d.as_str()))
        );
        assert_eq!(r.repository(), "quay.io/x/y");
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "app:",
            "app:-x",
            "app@sha256:12",
            "app@md5:00",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
