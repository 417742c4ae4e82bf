//! Server-side apply (`PATCH` with `application/apply-patch+yaml`): the applied
//! configuration is merged into the live object with field ownership (`api::managed`), or
//! created when there is none.

use serde_json::Value;

use super::update::{merge_for, By};
use super::{Objects, WriteOptions, Written};
use crate::api::error::ApiError;
use crate::api::registry::ResourceInfo;
use crate::api::{decode, managed, meta};

impl Objects {
    /// Applies `applied` for `opts.field_manager` (which the caller made sure is set);
    /// `force` takes conflicting fields over. Returns the object and whether it was created.
    pub async fn apply(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        applied: Value,
        force: bool,
        opts: WriteOptions,
    ) -> Result<(Written, bool), ApiError> {
        let (obj, warnings) = decode::normalize(info, applied, opts.field_validation)?;
        let precondition = meta::resource_version(&obj).map_err(ApiError::bad_request)?;
        let api_version = info.api_version();
        let w = managed::Writer {
            manager: opts.manager(),
            api_version: &api_version,
            subresource: None,
        };
        for attempt in 0..2 {
            let updated = self
                .guaranteed_update(info, ns, name, opts, By::Apply, |cur| {
                    let merged = managed::apply(Some(cur), &obj, w, force)?;
                    Ok((
                        merge_for(info, None, cur, merged),
                        precondition,
                        warnings.clone(),
                    ))
                })
                .await;
            match updated {
                Ok(written) => return Ok((written, false)),
                Err(e) if e.code == 404 && attempt == 0 && precondition.is_none() => {
                    let new = managed::apply(None, &obj, w, force)?;
                    match self.create(info, ns, new, opts).await {
                        Ok(mut written) => {
                            written.warnings.extend(warnings.iter().cloned());
                            return Ok((written, true));
                        }
                        // Created meanwhile by another client: apply onto that one.
                        Err(e) if e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(info, name))
    }
}
