//! Response encoding: JSON objects, lists and server-side Tables, `Warning` headers.

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::request::Query;
use crate::api::registry::ResourceInfo;
use crate::api::table::{self, IncludeObject};

pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// What the client asked to receive.
#[derive(Debug, Clone, Copy)]
pub enum Format {
    Json,
    Table(IncludeObject),
}

impl Format {
    pub fn negotiate(headers: &HeaderMap, query: &Query) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let wants_table = accept.split(',').any(|a| {
            let params: Vec<&str> = a.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        });
        if wants_table {
            Format::Table(IncludeObject::parse(query.get("includeObject")))
        } else {
            Format::Json
        }
    }
}

/// A JSON response with `Warning` headers.
pub fn json_response(code: u16, body: &Value, warnings: &[String], content_type: &str) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&text) {
            h.append("Warning", v);
        }
    }
    resp
}

/// One object, as JSON or as a one-row Table.
pub fn object(
    info: &ResourceInfo,
    format: Format,
    code: u16,
    obj: &Value,
    warnings: &[String],
) -> Response {
    match format {
        Format::Json => json_response(code, obj, warnings, "application/json"),
        Format::Table(include) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            let t = table::table(
                info,
                std::slice::from_ref(obj),
                include,
                json!({"resourceVersion": rv}),
            );
            json_response(code, &t, warnings, TABLE_CONTENT_TYPE)
        }
    }
}

/// List metadata.
pub fn list_meta(revision: u64, continue_token: Option<&str>) -> Value {
    let mut m = json!({"resourceVersion": revision.to_string()});
    if let Some(c) = continue_token {
        m["continue"] = json!(c);
    }
    m
}

/// A list, as `<Kind>List` or as a Table.
pub fn list(info: &ResourceInfo, format: Format, items: Vec<Value>, meta: Value) -> Response {
    match format {
        Format::Json => {
            let body = json!({
                "kind": info.list_kind(),
                "apiVersion": info.api_version(),
                "metadata": meta,
                "items": items,
            });
            json_response(200, &body, &[], "application/json")
        }
        Format::Table(include) => {
            let t = table::table(info, &items, include, meta);
            json_response(200, &t, &[], TABLE_CONTENT_TYPE)
        }
    }
}

/// A success Status (deletes of most kinds, bindings).
pub fn success(info: &ResourceInfo, name: &str, uid: Option<&str>, code: u16) -> Response {
    let mut details = json!({"name": name, "group": info.group, "kind": info.plural});
    if let Some(u) = uid {
        details["uid"] = json!(u);
    }
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details,
    });
    json_response(code, &body, &[], "application/json")
}

/// One watch event line, the object converted to the negotiated format.
pub fn watch_line(info: &ResourceInfo, format: Format, kind: &str, object: Value) -> String {
    let object = match format {
        Format::Table(include) if kind != "ERROR" && kind != "BOOKMARK" => {
            let rv = object
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(json!(""));
            table::table(info, &[object], include, json!({"resourceVersion": rv}))
        }
        _ => object,
    };
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    line
}
