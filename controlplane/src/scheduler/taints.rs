//! Taints and tolerations in a compact form, and the toleration rule.

use k8s_openapi::api::core::v1::{Taint as K8sTaint, Toleration as K8sToleration};

/// A taint's effect. Unknown effects are kept (they never block and never score).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    Other,
}

impl Effect {
    fn parse(s: &str) -> Self {
        match s {
            "NoSchedule" => Self::NoSchedule,
            "PreferNoSchedule" => Self::PreferNoSchedule,
            "NoExecute" => Self::NoExecute,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: Effect,
}

impl From<&K8sTaint> for Taint {
    fn from(t: &K8sTaint) -> Self {
        Self {
            key: t.key.clone(),
            value: t.value.clone().unwrap_or_default(),
            effect: Effect::parse(&t.effect),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Empty: every key (only meaningful with `exists`).
    key: String,
    /// Operator `Exists` (else `Equal`); an unknown operator tolerates nothing.
    exists: bool,
    valid_operator: bool,
    value: String,
    /// `None`: every effect.
    effect: Option<Effect>,
}

impl From<&K8sToleration> for Toleration {
    fn from(t: &K8sToleration) -> Self {
        let op = t.operator.as_deref().unwrap_or("Equal");
        Self {
            key: t.key.clone().unwrap_or_default(),
            exists: op == "Exists",
            valid_operator: matches!(op, "Exists" | "Equal" | ""),
            value: t.value.clone().unwrap_or_default(),
            effect: t
                .effect
                .as_deref()
                .filter(|e| !e.is_empty())
                .map(Effect::parse),
        }
    }
}

impl Toleration {
    /// `v1.Toleration.ToleratesTaint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        if !self.key.is_empty() && self.key != taint.key {
            return false;
        }
        self.valid_operator && (self.exists || self.value == taint.value)
    }
}

/// Whether any toleration tolerates `taint`.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| t.tolerates(taint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint::from(&K8sTaint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        })
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration::from(&K8sToleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        })
    }

    #[test]
    fn toleration_rules() {
        let t = taint("dedicated", "gpu", "NoSchedule");
        assert!(tol(Some("dedicated"), None, Some("gpu"), None).tolerates(&t));
        assert!(tol(
            Some("dedicated"),
            Some("Equal"),
            Some("gpu"),
            Some("NoSchedule")
        )
        .tolerates(&t));
        assert!(!tol(Some("dedicated"), Some("Equal"), Some("cpu"), None).tolerates(&t));
        assert!(tol(Some("dedicated"), Some("Exists"), None, None).tolerates(&t));
        assert!(!tol(Some("dedicated"), Some("Exists"), None, Some("NoExecute")).tolerates(&t));
        assert!(
            tol(None, Some("Exists"), None, None).tolerates(&t),
            "empty key + Exists = all"
        );
        assert!(!tol(Some("other"), Some("Exists"), None, None).tolerates(&t));
        assert!(!tol(Some("dedicated"), Some("Bogus"), Some("gpu"), None).tolerates(&t));
        assert!(tolerated(
            &[
                tol(Some("x"), Some("Exists"), None, None),
                tol(None, Some("Exists"), None, None)
            ],
            &t
        ));
        assert!(!tolerated(&[], &t));
    }
}
