//! Table columns of the workload kinds: deployments, replica sets, replication controllers,
//! stateful sets, daemon sets, jobs, cron jobs.

use serde_json::{json, Value};

use super::{age, i, name, or_none, s, since, Printer};
use crate::api::selector::string_map;

/// CONTAINERS and IMAGES of the pod template at `ptr`.
fn containers(o: &Value, ptr: &str) -> [Value; 2] {
    let cs = o
        .pointer(ptr)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    [or_none(&names.join(",")), or_none(&images.join(","))]
}

/// A `meta/v1` LabelSelector (or an RC's map) as a selector string.
fn selector(o: &Value) -> Value {
    let sel = o.pointer("/spec/selector");
    let map = match sel.and_then(|s| s.get("matchLabels")) {
        Some(m) => string_map(Some(m)),
        None if sel.and_then(|s| s.get("matchExpressions")).is_none() => string_map(sel),
        None => Default::default(),
    };
    let mut parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    for e in sel
        .and_then(|s| s.get("matchExpressions"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        parts.push(format!("{} {}", s(e, "/key"), s(e, "/operator")));
    }
    or_none(&parts.join(","))
}

const TEMPLATE: &str = "/spec/template/spec/containers";

fn wide(o: &Value, mut cells: Vec<Value>) -> Vec<Value> {
    cells.extend(containers(o, TEMPLATE));
    cells.push(selector(o));
    cells
}

fn deployment(o: &Value) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        i(o, "/status/readyReplicas"),
        i(o, "/spec/replicas")
    );
    wide(
        o,
        vec![
            json!(name(o)),
            json!(ready),
            json!(i(o, "/status/updatedReplicas")),
            json!(i(o, "/status/availableReplicas")),
            json!(age(o)),
        ],
    )
}

fn replica_set(o: &Value) -> Vec<Value> {
    wide(
        o,
        vec![
            json!(name(o)),
            json!(i(o, "/spec/replicas")),
            json!(i(o, "/status/replicas")),
            json!(i(o, "/status/readyReplicas")),
            json!(age(o)),
        ],
    )
}

fn stateful_set(o: &Value) -> Vec<Value> {
    let ready = format!(
        "{}/{}",
        i(o, "/status/readyReplicas"),
        i(o, "/spec/replicas")
    );
    let [c, im] = containers(o, TEMPLATE);
    vec![json!(name(o)), json!(ready), json!(age(o)), c, im]
}

/// CONTROLLER as `statefulset.apps/web`, from the controller reference.
fn controller_revision(o: &Value) -> Vec<Value> {
    let refs = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array);
    let ctrl = refs
        .into_iter()
        .flatten()
        .find(|r| r.get("controller") == Some(&json!(true)));
    let controller = ctrl.map_or(String::new(), |r| {
        let kind = s(r, "/kind").to_lowercase();
        match s(r, "/apiVersion").rsplit_once('/') {
            Some((group, _)) => format!("{kind}.{group}/{}", s(r, "/name")),
            None => format!("{kind}/{}", s(r, "/name")),
        }
    });
    vec![
        json!(name(o)),
        or_none(&controller),
        json!(i(o, "/revision")),
        json!(age(o)),
    ]
}

fn daemon_set(o: &Value) -> Vec<Value> {
    let node_sel = string_map(o.pointer("/spec/template/spec/nodeSelector"));
    let node_sel: Vec<String> = node_sel.iter().map(|(k, v)| format!("{k}={v}")).collect();
    wide(
        o,
        vec![
            json!(name(o)),
            json!(i(o, "/status/desiredNumberScheduled")),
            json!(i(o, "/status/currentNumberScheduled")),
            json!(i(o, "/status/numberReady")),
            json!(i(o, "/status/updatedNumberScheduled")),
            json!(i(o, "/status/numberAvailable")),
            or_none(&node_sel.join(",")),
            json!(age(o)),
        ],
    )
}

fn job_status(o: &Value) -> &'static str {
    let conds = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| s(c, "/type") == t && s(c, "/status") == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

fn job(o: &Value) -> Vec<Value> {
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{}/{c}", i(o, "/status/succeeded")),
        None => format!(
            "{}/1 of {}",
            i(o, "/status/succeeded"),
            i(o, "/spec/parallelism")
        ),
    };
    let duration = if s(o, "/status/startTime").is_empty() {
        String::new()
    } else if s(o, "/status/completionTime").is_empty() {
        since(o, "/status/startTime")
    } else {
        let parse = |p: &str| chrono::DateTime::parse_from_rfc3339(s(o, p)).ok();
        match (parse("/status/startTime"), parse("/status/completionTime")) {
            (Some(a), Some(b)) => super::human_duration((b - a).num_seconds()),
            _ => String::new(),
        }
    };
    wide(
        o,
        vec![
            json!(name(o)),
            json!(job_status(o)),
            json!(completions),
            json!(duration),
            json!(age(o)),
        ],
    )
}

fn cron_job(o: &Value) -> Vec<Value> {
    let last = if s(o, "/status/lastScheduleTime").is_empty() {
        "<none>".to_string()
    } else {
        since(o, "/status/lastScheduleTime")
    };
    let active = o
        .pointer("/status/active")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let mut cells = vec![
        json!(name(o)),
        json!(s(o, "/spec/schedule")),
        or_none(s(o, "/spec/timeZone")),
        json!(if o.pointer("/spec/suspend") == Some(&json!(true)) {
            "True"
        } else {
            "False"
        }),
        json!(active),
        json!(last),
        json!(age(o)),
    ];
    cells.extend(containers(
        o,
        "/spec/jobTemplate/spec/template/spec/containers",
    ));
    cells.push(or_none(""));
    cells
}

const WIDE: [(&str, &str, u8); 3] = [
    ("Containers", "string", 1),
    ("Images", "string", 1),
    ("Selector", "string", 1),
];

const REPLICAS: &[(&str, &str, u8)] = &[
    ("Name", "string", 0),
    ("Desired", "integer", 0),
    ("Current", "integer", 0),
    ("Ready", "integer", 0),
    ("Age", "string", 0),
    WIDE[0],
    WIDE[1],
    WIDE[2],
];

pub(super) const PRINTERS: &[(&str, Printer)] = &[
    (
        "Deployment",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Up-to-date", "integer", 0),
                ("Available", "integer", 0),
                ("Age", "string", 0),
                WIDE[0],
                WIDE[1],
                WIDE[2],
            ],
            cells: deployment,
        },
    ),
    (
        "ReplicaSet",
        Printer {
            columns: REPLICAS,
            cells: replica_set,
        },
    ),
    (
        "ReplicationController",
        Printer {
            columns: REPLICAS,
            cells: replica_set,
        },
    ),
    (
        "StatefulSet",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Ready", "string", 0),
                ("Age", "string", 0),
                WIDE[0],
                WIDE[1],
            ],
            cells: stateful_set,
        },
    ),
    (
        "ControllerRevision",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Controller", "string", 0),
                ("Revision", "integer", 0),
                ("Age", "string", 0),
            ],
            cells: controller_revision,
        },
    ),
    (
        "DaemonSet",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Desired", "integer", 0),
                ("Current", "integer", 0),
                ("Ready", "integer", 0),
                ("Up-to-date", "integer", 0),
                ("Available", "integer", 0),
                ("Node Selector", "string", 0),
                ("Age", "string", 0),
                WIDE[0],
                WIDE[1],
                WIDE[2],
            ],
            cells: daemon_set,
        },
    ),
    (
        "Job",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Status", "string", 0),
                ("Completions", "string", 0),
                ("Duration", "string", 0),
                ("Age", "string", 0),
                WIDE[0],
                WIDE[1],
                WIDE[2],
            ],
            cells: job,
        },
    ),
    (
        "CronJob",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Schedule", "string", 0),
                ("Timezone", "string", 0),
                ("Suspend", "boolean", 0),
                ("Active", "integer", 0),
                ("Last Schedule", "string", 0),
                ("Age", "string", 0),
                WIDE[0],
                WIDE[1],
                WIDE[2],
            ],
            cells: cron_job,
        },
    ),
];
