//! CustomResourceDefinitions (`apiextensions.k8s.io/v1`): the kinds they define are served
//! beside the built-in ones, by the same generic resource logic.
//!
//! - [`definition`]: defaulting, validation and status of a CRD itself;
//! - [`kinds`]: a server's table of the defined kinds ([`CustomKinds`]), rebuilt from the
//!   stored CRDs;
//! - [`schema`]: validation, pruning and defaulting of custom objects by their version's
//!   structural schema;
//! - [`columns`]: `additionalPrinterColumns` (a JSONPath subset) for `kubectl get`.

pub mod columns;
pub mod definition;
pub mod kinds;
pub mod schema;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use kinds::CustomKinds;

use super::error::ApiError;
use super::meta;
use super::objects::{ListOptions, Objects, WatchOptions};
use super::registry;

/// What the generic logic needs to know about one version of a custom kind.
#[derive(Debug, PartialEq)]
pub struct CustomInfo {
    /// The CRD's name (`<plural>.<group>`).
    pub crd: String,
    /// `names.listKind` (`<Kind>List` by default).
    pub list_kind: String,
    /// The version's `schema.openAPIV3Schema`.
    pub schema: Value,
    /// `additionalPrinterColumns`; empty: NAME and AGE.
    pub columns: Vec<columns::Column>,
    /// JSON pointers of the scale subresource, when it is enabled.
    pub scale: Option<ScalePaths>,
    /// `served`: the version answers requests.
    pub served: bool,
    /// `storage`: the version objects are written in (one per CRD).
    pub storage: bool,
    /// The CRD is being deleted: its objects can be read and deleted, not created.
    pub terminating: bool,
}

/// Where the scale subresource reads and writes (JSON pointers, from the CRD's JSONPaths).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// A JSONPath of the simple form the scale subresource allows (`.spec.replicas`) as a
/// JSON pointer (`/spec/replicas`).
pub fn pointer_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix('.')?;
    if rest.is_empty()
        || rest
            .split('.')
            .any(|s| s.is_empty() || s.contains(['[', ']']))
    {
        return None;
    }
    Some(
        rest.split('.')
            .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
            .collect(),
    )
}

/// Keep the custom kinds `objects` serves current: list the CRDs, then follow their
/// changes (until the task is aborted).
pub async fn follow(objects: Objects) {
    let crds = registry::by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        .expect("CRDs are served");
    loop {
        if let Err(e) = follow_from_list(&objects, crds).await {
            log::debug!("following CRDs: {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One list-then-watch of the CRDs, until the watch ends.
async fn follow_from_list(
    objects: &Objects,
    crds: &'static registry::ResourceInfo,
) -> Result<(), ApiError> {
    let listed = objects.list(crds, None, &ListOptions::default()).await?;
    let mut known: BTreeMap<String, Value> = listed
        .items
        .into_iter()
        .map(|c| (meta::name(&c).to_string(), c))
        .collect();
    let all: Vec<Value> = known.values().cloned().collect();
    objects.custom_kinds().replace(listed.revision, &all);
    let opts = WatchOptions {
        labels: Default::default(),
        fields: Default::default(),
        resource_version: Some(listed.revision.to_string()),
        bookmarks: false,
        timeout: Duration::from_secs(3600),
    };
    let mut events = objects.watch(crds, None, opts).await?;
    while let Some(ev) = events.next().await {
        let name = meta::name(&ev.object).to_string();
        match ev.kind {
            "ADDED" | "MODIFIED" => {
                known.insert(name, ev.object.clone());
            }
            "DELETED" => {
                known.remove(&name);
            }
            "ERROR" => return Ok(()),
            _ => continue,
        }
        let revision = meta::resource_version(&ev.object)
            .ok()
            .flatten()
            .unwrap_or(0);
        let all: Vec<Value> = known.values().cloned().collect();
        objects.custom_kinds().replace(revision, &all);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers() {
        assert_eq!(
            pointer_of(".spec.replicas").as_deref(),
            Some("/spec/replicas")
        );
        assert_eq!(pointer_of("spec.replicas"), None);
        assert_eq!(pointer_of(".spec..x"), None);
        assert_eq!(pointer_of(".spec.items[0]"), None);
    }
}
