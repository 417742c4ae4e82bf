//! Indexed Jobs (`completionMode: Indexed`): each of the `completions` indexes must succeed
//! once. Every pod carries its index (annotation and label
//! `batch.kubernetes.io/job-completion-index`, the `JOB_COMPLETION_INDEX` variable read from
//! that label, hostname `<job>-<index>`, name `<job>-<index>-<random>`); the Job starts the
//! lowest indexes that have neither succeeded nor a pod running, removes running pods that
//! hold no index of its own or one another pod holds, and records the succeeded ones in
//! `status.completedIndexes` (`"0,1,3-5"`, as upstream writes it), so they stay counted
//! after their pods are gone.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::pods::has_phase;
use crate::api::meta;

pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

pub fn is_indexed(job: &Value) -> bool {
    job.pointer("/spec/completionMode") == Some(&json!("Indexed"))
}

/// A pod's index, if it has one below `completions`.
fn index_of(pod: &Value, completions: usize) -> Option<usize> {
    pod.pointer("/metadata/annotations")?
        .get(INDEX_KEY)?
        .as_str()?
        .parse()
        .ok()
        .filter(|i| *i < completions)
}

/// `"1,3-5"` → {1, 3, 4, 5}; indexes at or above `completions` and malformed parts are
/// dropped.
pub fn parse_ranges(s: &str, completions: usize) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<usize>(), hi.parse::<usize>()) {
            out.extend((lo..=hi).take_while(|i| *i < completions));
        }
    }
    out
}

/// {0, 1, 3, 4, 5} → `"0,1,3-5"` (a run of two is written as two numbers, as upstream).
pub fn format_ranges(set: &BTreeSet<usize>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(lo) = iter.next() {
        let mut hi = lo;
        while iter.peek() == Some(&(hi + 1)) {
            hi += 1;
            iter.next();
        }
        parts.push(match hi - lo {
            0 => lo.to_string(),
            1 => format!("{lo},{hi}"),
            _ => format!("{lo}-{hi}"),
        });
    }
    parts.join(",")
}

/// The succeeded indexes: those recorded in the status and those of succeeded pods.
pub fn succeeded(job: &Value, pods: &[Value], completions: usize) -> BTreeSet<usize> {
    let recorded = job
        .pointer("/status/completedIndexes")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut done = parse_ranges(recorded, completions);
    done.extend(
        pods.iter()
            .filter(|p| !meta::is_deleting(p) && has_phase(p, "Succeeded"))
            .filter_map(|p| index_of(p, completions)),
    );
    done
}

/// Up to `n` indexes to start, lowest first: not succeeded, none of the `active` pods
/// holding them.
pub fn to_start(
    completions: usize,
    done: &BTreeSet<usize>,
    active: &[Value],
    n: usize,
) -> Vec<usize> {
    let held: BTreeSet<usize> = active
        .iter()
        .filter_map(|p| index_of(p, completions))
        .collect();
    (0..completions)
        .filter(|i| !done.contains(i) && !held.contains(i))
        .take(n)
        .collect()
}

/// `active` split into the pods to keep and the strays to remove: those without an index
/// of the Job, on an index already succeeded, or on one an earlier pod (by name) holds.
pub fn split_strays(
    completions: usize,
    done: &BTreeSet<usize>,
    mut active: Vec<Value>,
) -> (Vec<Value>, Vec<Value>) {
    active.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let mut held = BTreeSet::new();
    active.into_iter().partition(|p| {
        index_of(p, completions).is_some_and(|i| !done.contains(&i) && held.insert(i))
    })
}

/// The Job's pod `template` (from `pod_from_template`) for index `i`.
pub fn pod_for(job: &Value, template: &Value, i: usize) -> Value {
    let mut pod = template.clone();
    let name = meta::name(job);
    let index = i.to_string();
    // A long Job name is cut, never the index (as upstream).
    let suffix = format!("-{index}-");
    let keep = meta::MAX_GENERATE_PREFIX
        .saturating_sub(suffix.len())
        .min(name.len());
    let keep = (0..=keep)
        .rev()
        .find(|k| name.is_char_boundary(*k))
        .unwrap_or(0);
    pod["metadata"]["generateName"] = json!(format!("{}{suffix}", &name[..keep]));
    for f in ["annotations", "labels"] {
        if !pod["metadata"][f].is_object() {
            pod["metadata"][f] = json!({});
        }
        pod["metadata"][f][INDEX_KEY] = json!(index);
    }
    let spec = &mut pod["spec"];
    spec["hostname"] = json!(format!("{name}-{index}"));
    let from_label = json!({"name": INDEX_ENV, "valueFrom": {"fieldRef": {
        "fieldPath": format!("metadata.labels['{INDEX_KEY}']")}}});
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            if !c["env"].is_array() {
                c["env"] = json!([]);
            }
            let env = c["env"].as_array_mut().expect("just made an array");
            // A variable of that name the user set wins (as upstream).
            if !env.iter().any(|e| e["name"] == json!(INDEX_ENV)) {
                env.push(from_label.clone());
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(index: &str, phase: &str) -> Value {
        json!({"metadata": {"annotations": {INDEX_KEY: index}}, "status": {"phase": phase}})
    }

    #[test]
    fn ranges_round_trip() {
        let set = parse_ranges("0,2-4,7", 10);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 4, 7]);
        assert_eq!(format_ranges(&set), "0,2-4,7");
        assert_eq!(format_ranges(&parse_ranges("0,1,3-5", 9)), "0,1,3-5");
        assert_eq!(format_ranges(&parse_ranges("0-1", 9)), "0,1");
        assert_eq!(format_ranges(&BTreeSet::new()), "");
        // Beyond completions, reversed or malformed parts are dropped.
        assert_eq!(format_ranges(&parse_ranges("1-9,x,5-3", 4)), "1-3");
    }

    #[test]
    fn starts_the_lowest_free_indexes() {
        let pods = [
            pod("0", "Succeeded"),
            pod("1", "Running"),
            pod("9", "Running"),
        ];
        let job = json!({"status": {"completedIndexes": "3"}});
        let done = succeeded(&job, &pods, 5);
        assert_eq!(format_ranges(&done), "0,3");
        assert_eq!(to_start(5, &done, &pods, 5), [2, 4]);
        assert_eq!(to_start(5, &done, &pods, 1), [2]);
    }

    #[test]
    fn a_pod_carries_its_index() {
        let job = json!({"metadata": {"name": "work"}});
        let template = json!({"metadata": {"labels": {"job-name": "work"}},
            "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}});
        let p = pod_for(&job, &template, 2);
        assert_eq!(p["metadata"]["generateName"], "work-2-");
        assert_eq!(p["metadata"]["annotations"][INDEX_KEY], "2");
        assert_eq!(p["metadata"]["labels"][INDEX_KEY], "2");
        assert_eq!(p["metadata"]["labels"]["job-name"], "work");
        assert_eq!(p["spec"]["hostname"], "work-2");
        let env = &p["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "A");
        assert_eq!(
            env[1]["valueFrom"]["fieldRef"]["fieldPath"],
            format!("metadata.labels['{INDEX_KEY}']")
        );
        // A long Job name is cut, the index kept.
        let long = json!({"metadata": {"name": "j".repeat(70)}});
        let g = pod_for(&long, &template, 12)["metadata"]["generateName"].clone();
        assert_eq!(g.as_str().unwrap().len(), meta::MAX_GENERATE_PREFIX);
        assert!(g.as_str().unwrap().ends_with("j-12-"));
    }

    #[test]
    fn strays_are_foreign_done_or_duplicate_indexes() {
        let named = |name: &str, index: &str| json!({"metadata": {"name": name, "annotations": {INDEX_KEY: index}}});
        let active = [
            named("a", "0"),
            named("b", "0"),
            named("c", "1"),
            named("d", "7"),
            json!({"metadata": {"name": "e"}}),
        ];
        let done = BTreeSet::from([1]);
        let (_, strays) = split_strays(3, &done, active.to_vec());
        let names: Vec<&str> = strays.iter().map(meta::name).collect();
        assert_eq!(names, ["b", "c", "d", "e"]);
    }
}
