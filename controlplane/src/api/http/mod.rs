//! The HTTP front: one axum router that dispatches health, version, discovery, OpenAPI and
//! resource paths.

mod access_review;
mod autoscaling_v1;
mod component_status;
mod metrics_api;
mod pod_log;
mod pod_streams;
mod proxy;
pub(crate) use pod_log::{kubelet_address, kubelet_client};
mod request;
mod resource;
mod response;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;

use super::error::ApiError;
use super::objects::Objects;
use super::registry::ResourceInfo;
use super::{discovery, openapi, openapi_v2};
use request::{Query, Route};

/// Largest accepted request body (as Kubernetes: 3 MiB).
const MAX_BODY: usize = 3 << 20;

#[derive(Clone)]
struct App {
    objects: Objects,
    /// The metrics API's reads of the kubelets.
    metrics: Arc<metrics_api::Sampler>,
    /// `host:port` clients reach this server at.
    address: String,
}

pub(super) fn router(objects: Objects, address: String) -> Router {
    use axum::routing::{any, MethodRouter};
    const POD: &str = "/api/v1/namespaces/{ns}/pods/{name}";
    const SERVICE: &str = "/api/v1/namespaces/{ns}/services/{name}";
    let streams: [(&str, MethodRouter<App>); 3] = [
        ("exec", any(exec)),
        ("attach", any(attach)),
        ("portforward", any(port_forward)),
    ];
    let mut router = Router::new();
    for (sub, handler) in streams {
        router = router.route(&format!("{POD}/{sub}"), handler);
    }
    for (base, handler) in [(POD, any(pod_proxy)), (SERVICE, any(service_proxy))] {
        for tail in ["/proxy", "/proxy/", "/proxy/{*rest}"] {
            router = router.route(&format!("{base}{tail}"), handler.clone());
        }
    }
    router
        .fallback(dispatch)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(App {
            metrics: metrics_api::Sampler::new(objects.clone()),
            objects,
            address,
        })
}

/// `pods/exec`: relayed to the kubelet (see [`pod_streams`]).
async fn exec(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    relay(app, ns, name, req, pod_streams::Stream::Exec).await
}

/// `pods/attach`: relayed to the kubelet (see [`pod_streams`]).
async fn attach(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    relay(app, ns, name, req, pod_streams::Stream::Attach).await
}

/// `pods/portforward`: relayed to the kubelet (see [`pod_streams`]).
async fn port_forward(
    State(app): State<App>,
    Path((ns, name)): Path<(String, String)>,
    req: Request,
) -> Response {
    relay(app, ns, name, req, pod_streams::Stream::PortForward).await
}

/// `pods/proxy` and `services/proxy` (see [`proxy`]).
async fn forward(
    app: App,
    target: proxy::Target,
    params: HashMap<String, String>,
    req: Request,
) -> Response {
    let what = format!("{} {}", req.method(), req.uri());
    let param = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    proxy::serve(&app.objects, target, param("ns"), param("name"), req)
        .await
        .unwrap_or_else(|e| {
            if e.code >= 500 {
                log::warn!("{what}: {e}");
            }
            e.into_response()
        })
}

async fn pod_proxy(
    State(app): State<App>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
) -> Response {
    forward(app, proxy::Target::Pod, params, req).await
}

async fn service_proxy(
    State(app): State<App>,
    Path(params): Path<HashMap<String, String>>,
    req: Request,
) -> Response {
    forward(app, proxy::Target::Service, params, req).await
}

async fn relay(
    app: App,
    ns: String,
    name: String,
    req: Request,
    stream: pod_streams::Stream,
) -> Response {
    let what = format!("{} {}", req.method(), req.uri());
    pod_streams::serve(&app.objects, &ns, &name, req, stream)
        .await
        .unwrap_or_else(|e| {
            if e.code >= 500 {
                log::warn!("{what}: {e}");
            }
            e.into_response()
        })
}

fn ok_json(v: &Value) -> Response {
    response::json_response(200, v, &[], "application/json")
}

async fn dispatch(
    State(app): State<App>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path();
    log::debug!("{method} {uri}");
    let result = match path {
        "/healthz" | "/readyz" | "/livez" => return "ok".into_response(),
        p if p.starts_with("/healthz/")
            || p.starts_with("/readyz/")
            || p.starts_with("/livez/") =>
        {
            return "ok".into_response()
        }
        "/version" | "/version/" => Ok(ok_json(&discovery::version())),
        "/skiff/v1/status" => crate::server::status::serve(&app.objects)
            .await
            .map(|v| ok_json(&v)),
        access_review::PATH if method == Method::POST => {
            let ct = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            access_review::review(ct, &body)
                .map(|v| response::json_response(201, &v, &[], "application/json"))
        }
        access_review::WHOAMI_PATH if method == Method::POST => Ok(response::json_response(
            201,
            &access_review::whoami(),
            &[],
            "application/json",
        )),
        "/openapi/v2" | "/openapi/v2/" => Ok(openapi_v2_response(&headers)),
        "/openapi/v3" | "/openapi/v3/" => {
            refresh_kinds(&app.objects).await;
            Ok(ok_json(&openapi::root(
                &app.objects.custom_kinds().served(),
            )))
        }
        p if p.starts_with("/openapi/v3/") => {
            let path = &p["/openapi/v3/".len()..];
            openapi::group_version(path)
                .map(str::to_string)
                .or_else(|| {
                    openapi::custom_group_version(path, &app.objects.custom_kinds().served())
                })
                .map(|doc| {
                    let mut resp = Response::new(axum::body::Body::from(doc));
                    resp.headers_mut().insert(
                        axum::http::header::CONTENT_TYPE,
                        axum::http::HeaderValue::from_static("application/json"),
                    );
                    resp
                })
                .ok_or_else(ApiError::no_such_resource)
        }
        p if p
            .strip_prefix(metrics_api::PREFIX)
            .is_some_and(|r| r.is_empty() || r.starts_with('/')) =>
        {
            if method != Method::GET {
                return ApiError::method_not_allowed("the metrics API is read-only")
                    .into_response();
            }
            metrics_api::serve(&app.metrics, p, &request::Query::parse(uri.query())).await
        }
        p if p.starts_with(autoscaling_v1::PREFIX) => {
            let ct = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json");
            autoscaling_v1::serve(&app.objects, &method, p, ct, body).await
        }
        p if p.starts_with("/api") => serve_api(&app, &method, &uri, &headers, body).await,
        _ => Err(ApiError::no_such_resource()),
    };
    result.unwrap_or_else(|e| {
        if e.code >= 500 {
            log::warn!("{method} {uri}: {e}");
        }
        e.into_response()
    })
}

/// `/openapi/v2` as protobuf when the client asks for it (kubectl always does), else JSON.
fn openapi_v2_response(headers: &HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accept.contains("protobuf") {
        return ok_json(&openapi_v2::json());
    }
    let mut resp = Response::new(axum::body::Body::from(openapi_v2::protobuf()));
    resp.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(openapi_v2::PROTOBUF),
    );
    resp
}

/// How long a request waits to re-read the CRDs before it answers from the table as the
/// follower keeps it.
const KINDS_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Re-read the CRDs, best effort: without a store leader (or slow) the request is answered
/// from the table `custom::follow` keeps, as discovery was before CRDs.
async fn refresh_kinds(objects: &Objects) {
    match tokio::time::timeout(KINDS_REFRESH, objects.refresh_custom_kinds()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::debug!("re-reading the CRDs: {e}"),
        Err(_) => log::debug!("re-reading the CRDs: no answer in {KINDS_REFRESH:?}"),
    }
}

async fn serve_api(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kinds = app.objects.custom_kinds();
    let route = match request::route(uri.path(), kinds) {
        // A kind defined a moment ago, maybe through another server: read the CRDs.
        Err(e) if e.code == 404 && uri.path().starts_with("/apis/") => {
            refresh_kinds(&app.objects).await;
            request::route(uri.path(), kinds)?
        }
        r => r?,
    };
    match route {
        Route::Discovery(segs) => {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed("discovery is read-only"));
            }
            let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
            // The group list starts a client's discovery: it sees every CRD written so far.
            if segs == ["apis"] {
                refresh_kinds(&app.objects).await;
            }
            let doc = |custom: &[&'static ResourceInfo]| match segs.as_slice() {
                ["api"] => Some(discovery::api_versions(&app.address)),
                ["api", v] => discovery::resource_list("", v, custom),
                ["apis"] => Some(discovery::api_group_list(custom)),
                ["apis", g] => discovery::api_group(g, custom),
                ["apis", g, v] => discovery::resource_list(g, v, custom),
                _ => None,
            };
            let doc = match doc(&kinds.served()) {
                None if segs.first() == Some(&"apis") => {
                    refresh_kinds(&app.objects).await;
                    doc(&kinds.served())
                }
                d => d,
            };
            doc.map(|d| ok_json(&d))
                .ok_or_else(ApiError::no_such_resource)
        }
        Route::Resource(path)
            if path.info.builtin_kind() == "Pod"
                && path.info.group.is_empty()
                && path.subresource.as_deref() == Some("log") =>
        {
            let (Some(ns), Some(name)) = (path.namespace.as_deref(), path.name.as_deref()) else {
                return Err(ApiError::no_such_resource());
            };
            if method != Method::GET {
                return Err(ApiError::method_not_allowed("pods/log supports only GET"));
            }
            pod_log::serve(&app.objects, ns, name, uri.query()).await
        }
        Route::Resource(path) => {
            let query = Query::parse(uri.query());
            resource::handle(&app.objects, method, path, &query, headers, body).await
        }
    }
}
