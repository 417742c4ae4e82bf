//! A container's `resources`: every quantity parses, none is negative, and no request
//! exceeds its limit (Kubernetes' `ValidateResourceRequirements`).

use serde_json::Value;

use crate::api::admission::resources::Amount;
use crate::api::error::FieldError;

/// The pattern Kubernetes names when a quantity does not parse.
const QUANTITY_PATTERN: &str = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

/// The parsed quantities of the resource list at `field` (`spec.hard`,
/// `spec.containers[0].resources.limits`) as (name, text, amount), errors into `errs`.
pub(super) fn quantity_list(
    errs: &mut Vec<FieldError>,
    list: Option<&Value>,
    field: &str,
) -> Vec<(String, String, Amount)> {
    let Some(map) = list.and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, v) in map {
        let f = format!("{field}[{name}]");
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match Amount::parse(&text) {
            None => errs.push(FieldError::invalid(
                f,
                &text,
                format!("quantities must match the regular expression '{QUANTITY_PATTERN}'"),
            )),
            Some(a) if a.milli < 0 => errs.push(FieldError::invalid(
                f,
                &text,
                "must be greater than or equal to 0",
            )),
            Some(a) => out.push((name.clone(), text, a)),
        }
    }
    out
}

/// `resources.<list>` (limits or requests) as (name, text, millis).
fn quantities(
    errs: &mut Vec<FieldError>,
    res: &Value,
    list: &str,
    field: &str,
) -> Vec<(String, String, i64)> {
    quantity_list(errs, res.get(list), &format!("{field}.{list}"))
        .into_iter()
        .map(|(name, text, a)| (name, text, a.milli))
        .collect()
}

/// Checks `resources` of the container at `field` (`spec.containers[0]`).
pub fn container(errs: &mut Vec<FieldError>, c: &Value, field: &str) {
    let Some(res) = c.get("resources") else {
        return;
    };
    let field = format!("{field}.resources");
    let limits = quantities(errs, res, "limits", &field);
    let requests = quantities(errs, res, "requests", &field);
    for (name, text, req) in &requests {
        if let Some((_, limit, lim)) = limits.iter().find(|(n, _, _)| n == name) {
            if req > lim {
                errs.push(FieldError::invalid(
                    format!("{field}.requests"),
                    text,
                    format!("must be less than or equal to {name} limit of {limit}"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(res: Value) -> Vec<String> {
        let mut errs = Vec::new();
        container(
            &mut errs,
            &json!({ "resources": res }),
            "spec.containers[0]",
        );
        errs.iter().map(FieldError::display).collect()
    }

    #[test]
    fn good_quantities_pass() {
        let ok = json!({"limits": {"cpu": "1", "memory": "512Mi"},
                        "requests": {"cpu": "100m", "memory": 268435456}});
        assert!(errors(ok).is_empty());
    }

    #[test]
    fn bad_negative_and_oversized_requests_are_named() {
        let errs = errors(json!({"limits": {"memory": "512MB", "cpu": "500m"},
                                  "requests": {"cpu": "-1"}}));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].contains("spec.containers[0].resources.limits[memory]"),
            "{errs:?}"
        );
        assert!(errs[0].contains("quantities must match"), "{errs:?}");
        assert!(errs[1].contains("resources.requests[cpu]"), "{errs:?}");
        let errs = errors(json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains("must be less than or equal to cpu limit of 500m"),
            "{errs:?}"
        );
    }
}
