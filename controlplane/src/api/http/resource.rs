//! The verbs on a resource path: get, list, watch, create, update, patch, delete,
//! deletecollection, and the status / scale / binding / finalize subresources.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;

use super::component_status;
use super::request::{Query, ResourcePath};
use super::response::{self, Format};
use crate::api::decode::{self, FieldValidation};
use crate::api::error::ApiError;
use crate::api::objects::{
    DeleteOptions, Deleted, ListOptions, Manager, Objects, ScaleChange, WatchOptions, WriteOptions,
};
use crate::api::patch::PatchType;
use crate::api::registry::{ResourceInfo, Subresource};
use crate::api::selector::{FieldSelector, LabelSelector};

/// Default (and maximum) length of a watch without `timeoutSeconds`.
const WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
}

fn write_options(q: &Query, headers: &HeaderMap) -> Result<WriteOptions, ApiError> {
    Ok(WriteOptions {
        dry_run: q.get("dryRun") == Some("All"),
        field_validation: FieldValidation::parse(q.get("fieldValidation"))?,
        field_manager: field_manager(q, headers)?,
    })
}

/// The `fieldManager` parameter; without it, as Kubernetes does, the client's User-Agent up
/// to its first `/` (`kubectl`, `python-requests`).
fn field_manager(q: &Query, headers: &HeaderMap) -> Result<Option<Manager>, ApiError> {
    match q.get("fieldManager").filter(|m| !m.is_empty()) {
        Some(m) => Manager::new(m).map(Some).ok_or_else(|| {
            ApiError::bad_request(format!(
                "fieldManager: Too long: may not be more than {} bytes",
                Manager::MAX
            ))
        }),
        None => Ok(headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .and_then(|ua| Manager::new(truncate(ua.trim(), Manager::MAX)))),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let end = (0..=max.min(s.len()))
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    &s[..end]
}

/// Server-side apply (`kubectl apply --server-side`): see [`Objects::apply`].
#[expect(clippy::too_many_arguments, reason = "mirrors the request's parts")]
async fn server_side_apply(
    objects: &Objects,
    info: &ResourceInfo,
    ns: Option<&str>,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
    format: Format,
    applied: serde_json::Value,
) -> Result<Response, ApiError> {
    if q.get("fieldManager").is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "PATCH with application/apply-patch+yaml requires the fieldManager parameter",
        ));
    }
    let body_name = crate::api::meta::str_field(&applied, "name");
    if body_name != Some(name) {
        return Err(ApiError::bad_request(format!(
            "the name of the applied object ({}) does not match the name in the URL ({name})",
            body_name.unwrap_or("none")
        )));
    }
    let force = match q.get("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?} (true or false)"
            )))
        }
    };
    let opts = write_options(q, headers)?;
    let (w, created) = objects.apply(info, ns, name, applied, force, opts).await?;
    let code = if created { 201 } else { 200 };
    Ok(response::object(info, format, code, &w.object, &w.warnings))
}

fn selectors(q: &Query) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    let (labels, fields) = selectors(q)?;
    Ok(ListOptions {
        labels,
        fields,
        limit: q.int("limit")?.unwrap_or(0).max(0) as usize,
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(String::from),
        any_version: q.get("resourceVersion") == Some("0"),
    })
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        grace_period_seconds: q.int("gracePeriodSeconds")?,
        propagation_policy: q.get("propagationPolicy").map(String::from),
        dry_run: q.get("dryRun") == Some("All"),
        ..Default::default()
    };
    if q.get("orphanDependents") == Some("true") {
        opts.propagation_policy
            .get_or_insert_with(|| "Orphan".into());
    }
    if !body.is_empty() {
        opts.merge_body(&decode::parse_body(content_type(headers), body)?);
    }
    if let Some(p) = &opts.propagation_policy {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return Err(ApiError::bad_request(format!(
                "invalid propagationPolicy {p:?}"
            )));
        }
    }
    Ok(opts)
}

/// Serve one resource request.
pub async fn handle(
    objects: &Objects,
    method: &Method,
    path: ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let info = path.info;
    let format = Format::negotiate(headers, query);
    if info.namespaced
        && path.namespace.is_none()
        && *method != Method::GET
        && *method != Method::DELETE
    {
        return Err(ApiError::method_not_allowed(format!(
            "{} must be written in a namespace",
            info.plural
        )));
    }
    let ns = path.namespace.as_deref();
    let sub = match path.subresource.as_deref() {
        None => None,
        Some(s) => match Subresource::parse(s).filter(|s| info.has(*s)) {
            Some(s) => Some(s),
            None => return Err(ApiError::no_such_resource()),
        },
    };
    if let Some(s) = sub.filter(|s| !s.allows(method.as_str())) {
        return Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}/{}",
            info.plural,
            s.name()
        )));
    }
    let name = path.name.as_deref();
    if info.builtin_kind() == "ComponentStatus" {
        return component_status::serve(objects, info, method, name, format).await;
    }
    let watch = path.legacy_watch || query.flag("watch");
    match (method.as_str(), name, sub) {
        ("GET", None, None) if watch => watch_response(objects, &path, query, format).await,
        ("GET", None, None) => {
            let listed = objects.list(info, ns, &list_options(query)?).await?;
            let meta = response::list_meta(listed.revision, listed.continue_token.as_deref());
            Ok(response::list(info, format, listed.items, meta))
        }
        ("GET", Some(n), Some(Subresource::Scale)) => Ok(response::json_response(
            200,
            &objects.get_scale(info, ns, n).await?,
            &[],
            "application/json",
        )),
        ("GET", Some(n), _) => Ok(response::object(
            info,
            format,
            200,
            &objects.get(info, ns, n).await?,
            &[],
        )),
        ("POST", None, None) => {
            let body = decode::parse_body(content_type(headers), &body)?;
            let w = objects
                .create(info, ns, body, write_options(query, headers)?)
                .await?;
            Ok(response::object(info, format, 201, &w.object, &w.warnings))
        }
        ("POST", Some(n), Some(Subresource::Eviction)) => {
            let body = decode::parse_body(content_type(headers), &body)?;
            let dry_run = write_options(query, headers)?.dry_run;
            objects.evict(info, ns, n, &body, dry_run).await?;
            Ok(response::success(info, n, None, 201))
        }
        ("POST", Some(n), Some(Subresource::Token)) => {
            let body = decode::parse_body(content_type(headers), &body)?;
            let issued = objects.token_request(info, ns, n, &body).await?;
            Ok(response::json_response(
                201,
                &issued,
                &[],
                "application/json",
            ))
        }
        ("POST", Some(n), Some(Subresource::Binding)) => {
            let body = decode::parse_body(content_type(headers), &body)?;
            objects.bind(info, ns, n, &body).await?;
            Ok(response::success(info, n, None, 201))
        }
        ("PUT", Some(n), Some(Subresource::Scale)) => {
            let body = decode::parse_body(content_type(headers), &body)?;
            let scale = objects
                .update_scale(
                    info,
                    ns,
                    n,
                    ScaleChange::Replace(&body),
                    write_options(query, headers)?,
                )
                .await?;
            Ok(response::json_response(
                200,
                &scale,
                &[],
                "application/json",
            ))
        }
        ("PUT", Some(n), sub) => {
            let body = decode::parse_body(content_type(headers), &body)?;
            let w = objects
                .update(info, ns, n, body, sub, write_options(query, headers)?)
                .await?;
            Ok(response::object(info, format, 200, &w.object, &w.warnings))
        }
        ("PATCH", Some(n), None)
            if PatchType::from_content_type(content_type(headers)) == Some(PatchType::Apply) =>
        {
            let patch = decode::parse_body(content_type(headers), &body)?;
            server_side_apply(objects, info, ns, n, query, headers, format, patch).await
        }
        ("PATCH", Some(n), sub) => {
            let ct = content_type(headers);
            let ty = PatchType::from_content_type(ct)
                .filter(|t| *t != PatchType::Apply)
                .ok_or_else(|| ApiError::unsupported_media_type(ct))?;
            let patch = decode::parse_body(ct, &body)?;
            let opts = write_options(query, headers)?;
            if sub == Some(Subresource::Scale) {
                let scale = objects
                    .update_scale(info, ns, n, ScaleChange::Patch(ty, &patch), opts)
                    .await?;
                return Ok(response::json_response(
                    200,
                    &scale,
                    &[],
                    "application/json",
                ));
            }
            let w = objects.patch(info, ns, n, ty, &patch, sub, opts).await?;
            Ok(response::object(info, format, 200, &w.object, &w.warnings))
        }
        ("DELETE", Some(n), None) => {
            let opts = delete_options(query, headers, &body)?;
            match objects.delete(info, ns, n, &opts).await? {
                Deleted::Pending(obj) => Ok(response::object(info, format, 202, &obj, &[])),
                Deleted::Gone(obj) if info.builtin_kind() == "Pod" => {
                    Ok(response::object(info, format, 200, &obj, &[]))
                }
                Deleted::Gone(obj) => {
                    let uid = crate::api::meta::str_field(&obj, "uid");
                    Ok(response::success(info, n, uid, 200))
                }
            }
        }
        ("DELETE", None, None) => {
            let opts = delete_options(query, headers, &body)?;
            let items = objects
                .delete_collection(info, ns, &list_options(query)?, &opts)
                .await?;
            Ok(response::list(info, format, items, serde_json::json!({})))
        }
        (m, _, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({m} {})",
            info.plural
        ))),
    }
}

async fn watch_response(
    objects: &Objects,
    path: &ResourcePath,
    query: &Query,
    format: Format,
) -> Result<Response, ApiError> {
    let (labels, mut fields) = selectors(query)?;
    if let Some(name) = &path.name {
        fields = FieldSelector::parse(&format!("metadata.name={name}"))
            .map_err(ApiError::bad_request)?;
    }
    let timeout = query
        .int("timeoutSeconds")?
        .filter(|t| *t > 0)
        .map_or(WATCH_TIMEOUT, |t| {
            Duration::from_secs(t as u64).min(WATCH_TIMEOUT)
        });
    let opts = WatchOptions {
        labels,
        fields,
        resource_version: query.get("resourceVersion").map(String::from),
        bookmarks: query.flag("allowWatchBookmarks"),
        timeout,
    };
    let info = path.info;
    let stream = objects.watch(info, path.namespace.as_deref(), opts).await?;
    let body = futures_util::stream::unfold(stream, move |mut s| async move {
        let ev = s.next().await?;
        let line = response::watch_line(info, format, ev.kind, ev.object);
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), s))
    });
    let mut resp = Response::new(Body::from_stream(body));
    let ct = match format {
        Format::Table(_) => response::TABLE_CONTENT_TYPE,
        Format::Json => "application/json",
    };
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
