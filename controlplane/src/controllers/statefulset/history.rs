//! The revisions of a StatefulSet (see [`crate::controllers::history`]): pods name the
//! revision they were created from in `controller-revision-hash`; the current revision's
//! template is read back from its ControllerRevision.

use serde_json::Value;

use super::identity::revision;
use super::StatefulSets;
use crate::api::meta;
use crate::controllers::history::{self, template, template_of, update_name};
use crate::controllers::ControllerError;

/// A set's revisions as one pass uses them.
#[derive(Debug, Clone, PartialEq)]
pub struct Revisions {
    pub current: String,
    pub update: String,
    /// The pod template of the current revision.
    pub current_template: Value,
}

impl StatefulSets {
    /// Make sure the update revision exists (and is the newest), pick the current one, and
    /// trim the history.
    pub(super) async fn revisions(
        &self,
        set: &Value,
        pods: &[Value],
    ) -> Result<Revisions, ControllerError> {
        let owned = history::sync(&self.objects, &self.revisions, (self.sets.info, set)).await?;
        let (update, _) = update_name(set);
        let recorded = set
            .pointer("/status/currentRevision")
            .and_then(Value::as_str)
            .unwrap_or("");
        let stored = owned.iter().find(|r| meta::name(r) == recorded);
        let revs = match stored {
            Some(r) if recorded != update => Revisions {
                current: recorded.to_string(),
                update: update.clone(),
                current_template: template_of(r),
            },
            _ => Revisions {
                current: update.clone(),
                update: update.clone(),
                current_template: template(set),
            },
        };
        let mut keep: Vec<&str> = pods.iter().filter_map(revision).collect();
        keep.extend([revs.current.as_str(), revs.update.as_str()]);
        let to = (self.revisions.info, set);
        history::trim(&self.objects, to, &owned, &keep).await?;
        Ok(revs)
    }
}
