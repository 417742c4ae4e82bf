//! Node selector terms (node affinity) compiled once per pod and matched against a node's
//! sorted labels and its name.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
    /// An unknown operator or a malformed `Gt`/`Lt` value: matches nothing.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

impl Requirement {
    fn compile(r: &NodeSelectorRequirement) -> Self {
        let values = r.values.clone().unwrap_or_default();
        let single_int = || match values.as_slice() {
            [v] => v.parse::<i64>().ok(),
            _ => None,
        };
        let op = match r.operator.as_str() {
            "In" => Op::In(values.clone()),
            "NotIn" => Op::NotIn(values.clone()),
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" => single_int().map_or(Op::Never, Op::Gt),
            "Lt" => single_int().map_or(Op::Never, Op::Lt),
            _ => Op::Never,
        };
        Self {
            key: r.key.clone(),
            op,
        }
    }

    /// `value`: the label (or field) value, `None` when the node does not have it.
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::In(vs), Some(v)) => vs.iter().any(|x| x == v),
            (Op::In(_), None) => false,
            (Op::NotIn(vs), Some(v)) => !vs.iter().any(|x| x == v),
            (Op::NotIn(_), None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|x| x < *n),
            (Op::Gt(_) | Op::Lt(_) | Op::Never, _) => false,
        }
    }
}

/// One `nodeSelectorTerm`: all its expressions and fields must match. An empty term, or one
/// with an invalid field selector, matches no node (as in Kubernetes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    exprs: Vec<Requirement>,
    fields: Vec<Requirement>,
    never: bool,
}

impl Term {
    pub fn compile(t: &NodeSelectorTerm) -> Self {
        let exprs: Vec<_> = t
            .match_expressions
            .iter()
            .flatten()
            .map(Requirement::compile)
            .collect();
        let fields: Vec<_> = t
            .match_fields
            .iter()
            .flatten()
            .map(Requirement::compile)
            .collect();
        // Only `metadata.name` with In/NotIn is a valid field selector.
        let bad_field = fields
            .iter()
            .any(|f| f.key != "metadata.name" || !matches!(f.op, Op::In(_) | Op::NotIn(_)));
        let never = bad_field || (exprs.is_empty() && fields.is_empty());
        Self {
            exprs,
            fields,
            never,
        }
    }

    pub fn matches(&self, labels: &Labels, node_name: &str) -> bool {
        !self.never
            && self.exprs.iter().all(|r| r.matches(labels.get(&r.key)))
            && self.fields.iter().all(|r| r.matches(Some(node_name)))
    }
}

/// A node's labels sorted by key for binary search: no hashing, no per-lookup allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    pub fn new(iter: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut v: Vec<_> = iter.into_iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Self(v)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn term(exprs: Vec<NodeSelectorRequirement>, fields: Vec<NodeSelectorRequirement>) -> Term {
        Term::compile(&NodeSelectorTerm {
            match_expressions: Some(exprs),
            match_fields: Some(fields),
        })
    }

    fn labels() -> Labels {
        Labels::new([
            ("zone".to_string(), "a".to_string()),
            ("cores".to_string(), "8".to_string()),
        ])
    }

    #[test]
    fn operators() {
        let l = labels();
        let m = |r: NodeSelectorRequirement| term(vec![r], vec![]).matches(&l, "n1");
        assert!(m(req("zone", "In", &["a", "b"])));
        assert!(!m(req("zone", "In", &["b"])));
        assert!(!m(req("missing", "In", &["a"])));
        assert!(m(req("zone", "NotIn", &["b"])));
        assert!(!m(req("zone", "NotIn", &["a"])));
        assert!(m(req("missing", "NotIn", &["a"])));
        assert!(m(req("zone", "Exists", &[])));
        assert!(!m(req("missing", "Exists", &[])));
        assert!(m(req("missing", "DoesNotExist", &[])));
        assert!(!m(req("zone", "DoesNotExist", &[])));
        assert!(m(req("cores", "Gt", &["4"])));
        assert!(!m(req("cores", "Gt", &["8"])));
        assert!(m(req("cores", "Lt", &["9"])));
        assert!(!m(req("cores", "Lt", &["8"])));
        assert!(!m(req("zone", "Gt", &["1"])), "non-numeric label");
        assert!(!m(req("cores", "Gt", &["x"])), "non-numeric value");
        assert!(!m(req("cores", "Gt", &["1", "2"])), "more than one value");
        assert!(!m(req("zone", "Bogus", &["a"])));
    }

    #[test]
    fn terms_and_fields() {
        let l = labels();
        let t = term(
            vec![req("zone", "In", &["a"]), req("cores", "Gt", &["4"])],
            vec![],
        );
        assert!(t.matches(&l, "n1"));
        let t = term(
            vec![req("zone", "In", &["a"]), req("cores", "Gt", &["9"])],
            vec![],
        );
        assert!(!t.matches(&l, "n1"), "all expressions must match");
        let t = term(vec![], vec![req("metadata.name", "In", &["n1"])]);
        assert!(t.matches(&l, "n1"));
        assert!(!t.matches(&l, "n2"));
        let t = term(vec![], vec![req("metadata.name", "NotIn", &["n1"])]);
        assert!(!t.matches(&l, "n1"));
        assert!(t.matches(&l, "n2"));
        assert!(!term(vec![], vec![req("metadata.uid", "In", &["n1"])]).matches(&l, "n1"));
        assert!(
            !term(vec![], vec![]).matches(&l, "n1"),
            "empty term matches nothing"
        );
    }
}
