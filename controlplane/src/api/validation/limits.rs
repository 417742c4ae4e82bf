//! LimitRanges and ResourceQuotas (Kubernetes' `ValidateLimitRange`,
//! `ValidateResourceQuota`): every quantity parses and is not negative, counts are whole,
//! scopes and operators are known, and a LimitRange item's bounds and defaults are in order.

use serde_json::Value;

use super::resources::quantity_list;
use crate::api::admission::resources::Amount;
use crate::api::error::FieldError;

/// The parsed quantities of the resource list at `field`, errors into `errs`.
fn quantities(
    errs: &mut Vec<FieldError>,
    list: Option<&Value>,
    field: &str,
) -> Vec<(String, Amount)> {
    quantity_list(errs, list, field)
        .into_iter()
        .map(|(name, _, a)| (name, a))
        .collect()
}

/// Quota resources counted in whole objects.
fn is_count(name: &str) -> bool {
    name.starts_with("count/")
        || name.ends_with("storageclass.storage.k8s.io/persistentvolumeclaims")
        || matches!(
            name,
            "pods"
                | "services"
                | "replicationcontrollers"
                | "resourcequotas"
                | "secrets"
                | "configmaps"
                | "persistentvolumeclaims"
                | "services.nodeports"
                | "services.loadbalancers"
        )
}

const SCOPES: &[&str] = &[
    "Terminating",
    "NotTerminating",
    "BestEffort",
    "NotBestEffort",
    "PriorityClass",
    "CrossNamespacePodAffinity",
];

pub fn resource_quota(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (name, a) in quantities(&mut errs, obj.pointer("/spec/hard"), "spec.hard") {
        if is_count(&name) && a.milli % 1000 != 0 {
            errs.push(FieldError::invalid(
                format!("spec.hard[{name}]"),
                &a.to_string(),
                "must be an integer",
            ));
        }
    }
    let strs = |v: Option<&Value>| -> Vec<(usize, String)> {
        v.and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(i, s)| (i, s.as_str().unwrap_or_default().to_string()))
            .collect()
    };
    for (i, scope) in strs(obj.pointer("/spec/scopes")) {
        if !SCOPES.contains(&scope.as_str()) {
            errs.push(FieldError::not_supported(
                format!("spec.scopes[{i}]"),
                &scope,
                SCOPES,
            ));
        }
    }
    let exprs = obj
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array);
    for (i, e) in exprs.into_iter().flatten().enumerate() {
        let at = format!("spec.scopeSelector.matchExpressions[{i}]");
        let scope = e.get("scopeName").and_then(Value::as_str).unwrap_or("");
        if !SCOPES.contains(&scope) {
            errs.push(FieldError::not_supported(
                format!("{at}.scopeName"),
                scope,
                SCOPES,
            ));
        }
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let ops = ["In", "NotIn", "Exists", "DoesNotExist"];
        if !ops.contains(&op) {
            errs.push(FieldError::not_supported(
                format!("{at}.operator"),
                op,
                &ops,
            ));
        }
        let has_values = !strs(e.get("values")).is_empty();
        if matches!(op, "In" | "NotIn") && !has_values {
            errs.push(FieldError::required(format!("{at}.values")));
        }
        if matches!(op, "Exists" | "DoesNotExist") && has_values {
            errs.push(FieldError::invalid(
                format!("{at}.values"),
                "",
                "must be empty when `operator` is 'Exists' or 'DoesNotExist'",
            ));
        }
    }
    errs
}

pub fn limit_range(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let items = obj.pointer("/spec/limits").and_then(Value::as_array);
    let mut types: Vec<&str> = Vec::new();
    for (i, item) in items.into_iter().flatten().enumerate() {
        let at = format!("spec.limits[{i}]");
        let ty = item.get("type").and_then(Value::as_str).unwrap_or("");
        if ty.is_empty() {
            errs.push(FieldError::required(format!("{at}.type")));
        } else if types.contains(&ty) {
            errs.push(FieldError::duplicate(format!("{at}.type"), ty));
        }
        types.push(ty);
        let mut list = |f: &str| -> Vec<(String, Amount)> {
            quantities(&mut errs, item.get(f), &format!("{at}.{f}"))
        };
        let (max, min) = (list("max"), list("min"));
        let (default, request) = (list("default"), list("defaultRequest"));
        let ratio = list("maxLimitRequestRatio");
        if ty == "Pod" {
            for (f, l) in [("default", &default), ("defaultRequest", &request)] {
                if !l.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{at}.{f}"),
                        "may not be specified when `type` is 'Pod'",
                    ));
                }
            }
        }
        for (k, r) in &ratio {
            if r.milli < 1000 {
                errs.push(FieldError::invalid(
                    format!("{at}.maxLimitRequestRatio[{k}]"),
                    &r.to_string(),
                    format!("ratio {r} is less than 1"),
                ));
            }
        }
        let get = |l: &[(String, Amount)], k: &str| l.iter().find(|(n, _)| n == k).map(|(_, a)| *a);
        let mut names: Vec<&String> = [&max, &min, &default, &request]
            .iter()
            .flat_map(|l| l.iter().map(|(n, _)| n))
            .collect();
        names.sort();
        names.dedup();
        for k in names {
            let (mx, mn, df, rq) = (
                get(&max, k),
                get(&min, k),
                get(&default, k),
                get(&request, k),
            );
            // (smaller, its name, larger, its name, the value reported)
            let orders = [
                (mn, "min value", mx, "max value", mn),
                (mn, "min value", rq, "default request value", rq),
                (rq, "default request value", mx, "max value", rq),
                (rq, "default request value", df, "default limit value", rq),
                (mn, "min value", df, "default value", mn),
                (df, "default value", mx, "max value", mx),
            ];
            for (lo, lo_name, hi, hi_name, shown) in orders {
                if let (Some(lo), Some(hi), Some(shown)) = (lo, hi, shown) {
                    if lo.milli > hi.milli {
                        errs.push(FieldError::invalid(
                            format!("{at}[{k}]"),
                            &shown.to_string(),
                            format!("{lo_name} {lo} is greater than {hi_name} {hi}"),
                        ));
                    }
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn shown(errs: Vec<FieldError>) -> Vec<String> {
        errs.iter().map(FieldError::display).collect()
    }

    #[test]
    fn quotas_need_good_quantities_whole_counts_and_known_scopes() {
        let q = json!({"spec": {"hard": {"pods": "1.5", "requests.cpu": "abc", "memory": "1Gi"},
                                "scopes": ["BestEffort", "Sometimes"],
                                "scopeSelector": {"matchExpressions": [
                                    {"scopeName": "PriorityClass", "operator": "In"}]}}});
        let errs = shown(resource_quota(&q));
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[1].starts_with("spec.hard[pods]: Invalid value: \"1500m\": must be an integer"),
            "{errs:?}"
        );
        assert!(
            errs[0].starts_with("spec.hard[requests.cpu]: Invalid value: \"abc\""),
            "{errs:?}"
        );
        assert!(
            errs[2].starts_with("spec.scopes[1]: Unsupported value: \"Sometimes\""),
            "{errs:?}"
        );
        assert!(
            errs[3].starts_with("spec.scopeSelector.matchExpressions[0].values: Required"),
            "{errs:?}"
        );
        let ok = json!({"spec": {"hard": {"pods": "10", "count/deployments.apps": "2"}}});
        assert!(resource_quota(&ok).is_empty());
    }

    #[test]
    fn limit_range_bounds_and_defaults_must_be_in_order() {
        let lr = json!({"spec": {"limits": [
            {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"},
             "maxLimitRequestRatio": {"memory": "0.5"}},
            {"type": "Pod", "default": {"cpu": "1"}},
            {"type": "Pod"},
        ]}});
        let errs = shown(limit_range(&lr));
        assert_eq!(
            errs,
            [
                "spec.limits[0].maxLimitRequestRatio[memory]: Invalid value: \"500m\": ratio 500m is less than 1",
                "spec.limits[0][cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
                "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
                "spec.limits[2].type: Duplicate value: \"Pod\"",
            ]
        );
    }
}
