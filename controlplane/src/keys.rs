//! Key layout of the object store: `/registry/<group>/<resource>/<namespace>/<name>`.
//!
//! The core API group (`""`) is written `core`; cluster-scoped objects have no namespace
//! segment: `/registry/<group>/<resource>/<name>`.

/// Key of one object. `namespace` is `None` for cluster-scoped resources.
pub fn object_key(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    match namespace {
        Some(ns) => format!("/registry/{group}/{resource}/{ns}/{name}"),
        None => format!("/registry/{group}/{resource}/{name}"),
    }
}

/// Prefix of every object of a resource, or of one namespace of it (ends with `/`).
pub fn resource_prefix(group: &str, resource: &str, namespace: Option<&str>) -> String {
    let group = if group.is_empty() { "core" } else { group };
    match namespace {
        Some(ns) => format!("/registry/{group}/{resource}/{ns}/"),
        None => format!("/registry/{group}/{resource}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(
            object_key("", "pods", Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(
            object_key("apps", "deployments", Some("a"), "b"),
            "/registry/apps/deployments/a/b"
        );
        assert_eq!(
            object_key("", "nodes", None, "n1"),
            "/registry/core/nodes/n1"
        );
        assert!(
            object_key("", "pods", Some("default"), "web").starts_with(&resource_prefix(
                "",
                "pods",
                Some("default")
            ))
        );
    }
}
