//! Server-side printing: `meta.k8s.io/v1` Table responses with the columns `kubectl get`
//! shows against Kubernetes. Per-kind columns live in [`core`], [`network`], [`stored`] and [`workloads`]; other kinds
//! get NAME and AGE.

mod core;
mod network;
mod stored;
mod workloads;

use serde_json::{json, Value};

use super::custom::columns;
use super::registry::ResourceInfo;

/// What each row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    None,
    #[default]
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// A column: name, type, priority (0 = always shown, 1 = `-o wide`).
pub type Column = (&'static str, &'static str, u8);

/// A kind's printer: columns and the cells of one object.
pub struct Printer {
    pub columns: &'static [Column],
    pub cells: fn(&Value) -> Vec<Value>,
}

const GENERIC: Printer = Printer {
    columns: &[("Name", "string", 0), ("Age", "string", 0)],
    cells: |o| vec![json!(name(o)), json!(age(o))],
};

fn printer(kind: &str) -> &'static Printer {
    core::PRINTERS
        .iter()
        .chain(network::PRINTERS)
        .chain(stored::PRINTERS)
        .chain(workloads::PRINTERS)
        .find(|(k, _)| *k == kind)
        .map_or(&GENERIC, |(_, p)| p)
}

pub(crate) fn name(o: &Value) -> &str {
    super::meta::name(o)
}

pub(crate) fn s<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn i(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

pub(crate) fn arr<'a>(o: &'a Value, ptr: &str) -> &'a [Value] {
    o.pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(crate) fn or_none(v: &str) -> Value {
    json!(if v.is_empty() { "<none>" } else { v })
}

/// Kubernetes' short human duration (`duration.HumanDuration`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else if d < 365 * 8 {
        let y = d / 365;
        if d % 365 == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{}d", d % 365)
        }
    } else {
        format!("{}y", d / 365)
    }
}

/// Time since the RFC 3339 timestamp at `ptr`, or `<unknown>`.
pub(crate) fn since(o: &Value, ptr: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s(o, ptr)) {
        Ok(t) => human_duration((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        Err(_) => "<unknown>".into(),
    }
}

pub(crate) fn age(o: &Value) -> String {
    since(o, "/metadata/creationTimestamp")
}

fn row_object(o: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(o.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
        })),
    }
}

/// A Table of `items` with list metadata `list_meta`.
pub fn table(
    info: &ResourceInfo,
    items: &[Value],
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    let p = printer(info.builtin_kind());
    let columns: Vec<Value> = match info.custom {
        Some(c) => columns::definitions(&c.columns),
        None => p
            .columns
            .iter()
            .map(|(name, ty, priority)| {
                let mut c = json!({"name": name, "type": ty, "format": "", "description": "",
                                   "priority": priority});
                if *name == "Name" {
                    c["format"] = json!("name");
                }
                c
            })
            .collect(),
    };
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let cells = match info.custom {
                Some(c) => columns::cells(&c.columns, o),
                None => (p.cells)(o),
            };
            let mut row = json!({"cells": cells});
            if let Some(obj) = row_object(o, include) {
                row["object"] = obj;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (400 * 86400, "400d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn pod_columns() {
        let info = crate::api::registry::by_kind("v1", "Pod").unwrap();
        let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
                         "status": {"phase": "Pending"}});
        let t = table(info, &[pod], IncludeObject::Metadata, json!({}));
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Ready", "Status", "Restarts", "Age"]);
        assert_eq!(t["rows"][0]["cells"][1], "0/1");
        assert_eq!(t["rows"][0]["cells"][2], "Pending");
    }
}
