//! Rolling-update parameters of Deployments and DaemonSets: `maxSurge` and
//! `maxUnavailable` are each a non-negative int or a percent string (`"25%"`, at most
//! 100% for `maxUnavailable`), and not both 0.

use serde_json::Value;

use crate::api::error::FieldError;

const PERCENT_HINT: &str = "a valid percent string must be a numeric string followed by an \
                            ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// The value of an int-or-percent as (number, is_percent), errors into `errs`.
fn int_or_percent(errs: &mut Vec<FieldError>, v: &Value, field: &str) -> Option<(i64, bool)> {
    let (n, pct) = match v {
        Value::Number(n) => match n.as_i64() {
            Some(n) => (n, false),
            None => {
                errs.push(FieldError::invalid(
                    field,
                    &n.to_string(),
                    "must be an integer",
                ));
                return None;
            }
        },
        Value::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
            match digits.and_then(|d| d.parse::<i64>().ok()) {
                Some(n) => (n, true),
                None => {
                    errs.push(FieldError::invalid(field, s, PERCENT_HINT));
                    return None;
                }
            }
        }
        other => {
            errs.push(FieldError::invalid(field, &other.to_string(), PERCENT_HINT));
            return None;
        }
    };
    if n < 0 {
        errs.push(FieldError::invalid(
            field,
            &n.to_string(),
            "must be greater than or equal to 0",
        ));
        return None;
    }
    Some((n, pct))
}

/// Checks the `rollingUpdate` object at JSON pointer `at` (shown as `field`).
pub fn rolling_update(errs: &mut Vec<FieldError>, obj: &Value, at: &str, field: &str) {
    let Some(ru) = obj.pointer(at) else {
        return;
    };
    let surge = ru
        .get("maxSurge")
        .and_then(|v| int_or_percent(errs, v, &format!("{field}.maxSurge")));
    let unavailable_field = format!("{field}.maxUnavailable");
    let unavailable = ru
        .get("maxUnavailable")
        .and_then(|v| int_or_percent(errs, v, &unavailable_field));
    if let Some((n, true)) = unavailable {
        if n > 100 {
            errs.push(FieldError::invalid(
                &unavailable_field,
                &format!("{n}%"),
                "must not be greater than 100%",
            ));
        }
    }
    if let (Some((0, _)), Some((0, _))) = (surge, unavailable) {
        errs.push(FieldError::invalid(
            unavailable_field,
            "0",
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(ru: Value) -> Vec<String> {
        let obj = json!({"spec": {"strategy": {"rollingUpdate": ru}}});
        let mut errs = Vec::new();
        rolling_update(
            &mut errs,
            &obj,
            "/spec/strategy/rollingUpdate",
            "spec.strategy.rollingUpdate",
        );
        errs.iter().map(FieldError::display).collect()
    }

    #[test]
    fn ints_and_percents_pass() {
        assert!(errors(json!({"maxSurge": "25%", "maxUnavailable": 1})).is_empty());
        assert!(errors(json!({"maxSurge": 0, "maxUnavailable": "100%"})).is_empty());
    }

    #[test]
    fn bad_values_are_named() {
        let errs = errors(json!({"maxSurge": "2", "maxUnavailable": "150%"}));
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("spec.strategy.rollingUpdate.maxSurge"),
            "{errs:?}"
        );
        assert!(errs[0].contains("a valid percent string"), "{errs:?}");
        assert!(
            errs[1].contains("must not be greater than 100%"),
            "{errs:?}"
        );
        let errs = errors(json!({"maxSurge": -1}));
        assert!(
            errs[0].contains("must be greater than or equal to 0"),
            "{errs:?}"
        );
        let errs = errors(json!({"maxSurge": "0%", "maxUnavailable": 0}));
        assert!(
            errs[0].contains("may not be 0 when `maxSurge` is 0"),
            "{errs:?}"
        );
    }
}
