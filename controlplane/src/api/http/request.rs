//! Parsing request URLs: query strings and resource paths
//! (`/api/v1/namespaces/{ns}/pods/{name}/status`, `/apis/apps/v1/deployments`, the legacy
//! `/api/v1/watch/...` form).

use std::collections::HashMap;

use percent_encoding::percent_decode_str;

use crate::api::custom::CustomKinds;
use crate::api::error::ApiError;
use crate::api::registry::{self, ResourceInfo};

/// Decoded query parameters (last value wins).
#[derive(Debug, Clone, Default)]
pub struct Query(HashMap<String, String>);

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut map = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(decode(k), decode(v));
        }
        Self(map)
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    /// A boolean as Go's `strconv.ParseBool` reads it (and a present-but-empty flag).
    pub fn flag(&self, k: &str) -> bool {
        matches!(
            self.get(k),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True" | "")
        )
    }

    pub fn int(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid {k}: {v:?}")))
            })
            .transpose()
    }
}

/// A request on a resource.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    pub info: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// Came in through `/api/v1/watch/...`.
    pub legacy_watch: bool,
}

/// What a path names.
#[derive(Debug, Clone)]
pub enum Route {
    /// `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`, `/apis/<g>`.
    Discovery(Vec<String>),
    Resource(ResourcePath),
}

/// Route a path under `/api` or `/apis` to a built-in kind or one of `custom`.
pub fn route(path: &str, custom: &CustomKinds) -> Result<Route, ApiError> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let (group, version, rest) = match segs.first().map(String::as_str) {
        Some("api") if segs.len() <= 2 => return Ok(Route::Discovery(segs)),
        Some("api") => ("", segs[1].as_str(), &segs[2..]),
        Some("apis") if segs.len() <= 3 => return Ok(Route::Discovery(segs)),
        Some("apis") => (segs[1].as_str(), segs[2].as_str(), &segs[3..]),
        _ => return Err(ApiError::no_such_resource()),
    };
    let (legacy_watch, rest) = match rest.first().map(String::as_str) {
        Some("watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let find = |plural: &str| {
        registry::lookup(group, version, plural).or_else(|| custom.lookup(group, version, plural))
    };
    // `namespaces/{ns}/{plural}...` addresses a namespaced resource when {plural} is one.
    let namespaced =
        rest.len() >= 3 && rest[0] == "namespaces" && find(&rest[2]).is_some_and(|r| r.namespaced);
    let (namespace, rest) = if namespaced {
        (Some(rest[1].clone()), &rest[2..])
    } else {
        (None, rest)
    };
    let Some(plural) = rest.first() else {
        return Err(ApiError::no_such_resource());
    };
    if rest.len() > 3 {
        return Err(ApiError::no_such_resource());
    }
    let info = find(plural).ok_or_else(ApiError::no_such_resource)?;
    Ok(Route::Resource(ResourcePath {
        info,
        namespace,
        name: rest.get(1).cloned(),
        subresource: rest.get(2).cloned(),
        legacy_watch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(p: &str) -> ResourcePath {
        match route(p, &CustomKinds::default()).unwrap() {
            Route::Resource(r) => r,
            Route::Discovery(_) => panic!("{p} is discovery"),
        }
    }

    #[test]
    fn paths() {
        let r = res("/api/v1/namespaces/default/pods/web/status");
        assert_eq!(r.info.kind, "Pod");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("web"));
        assert_eq!(r.subresource.as_deref(), Some("status"));
        let r = res("/api/v1/namespaces/kube-system");
        assert_eq!(
            (r.info.kind, r.name.as_deref()),
            ("Namespace", Some("kube-system"))
        );
        let r = res("/api/v1/namespaces/x/finalize");
        assert_eq!(r.subresource.as_deref(), Some("finalize"));
        let r = res("/apis/apps/v1/deployments");
        assert_eq!((r.info.kind, r.namespace.as_deref()), ("Deployment", None));
        let r = res("/api/v1/watch/namespaces/default/pods");
        assert!(r.legacy_watch && r.name.is_none());
        assert!(route("/api/v1/nope", &CustomKinds::default()).is_err());
        assert!(matches!(
            route("/apis/apps/v1", &CustomKinds::default()).unwrap(),
            Route::Discovery(_)
        ));
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.flag("watch"));
    }
}
