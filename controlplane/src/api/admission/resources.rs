//! Resource lists (`{"cpu": "500m", "memory": "128Mi"}`) as numbers: parsed, added, compared
//! and written back as Kubernetes quantities, for LimitRanges and ResourceQuotas.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::scheduler::Quantity;

/// An amount in thousandths (exact for CPU and for byte counts up to 2^53 bytes and more),
/// with the form it is written back in: binary (`Ki`, `Mi`, ...) or decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Amount {
    pub milli: i64,
    pub binary: bool,
}

impl Amount {
    pub const ONE: Amount = Amount {
        milli: 1000,
        binary: false,
    };

    pub fn parse(s: &str) -> Option<Amount> {
        let q = Quantity::parse(s).ok()?;
        Some(Amount {
            milli: q.milli_value(),
            binary: s.ends_with('i'),
        })
    }

    pub fn count(n: i64) -> Amount {
        Amount {
            milli: n.saturating_mul(1000),
            binary: false,
        }
    }

    pub fn plus(self, o: Amount) -> Amount {
        Amount {
            milli: self.milli.saturating_add(o.milli),
            binary: self.binary || o.binary,
        }
    }

    pub fn minus(self, o: Amount) -> Amount {
        Amount {
            milli: self.milli.saturating_sub(o.milli),
            binary: self.binary || o.binary,
        }
    }

    pub fn max(self, o: Amount) -> Amount {
        if o.milli > self.milli {
            o
        } else {
            self
        }
    }
}

/// Kubernetes' canonical form: `1500m`, `2`, `3k`, `128Mi`.
impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.milli % 1000 != 0 {
            return write!(f, "{}m", self.milli);
        }
        let v = self.milli / 1000;
        if v == 0 {
            return f.write_str("0");
        }
        if self.binary {
            for (shift, suffix) in [
                (60, "Ei"),
                (50, "Pi"),
                (40, "Ti"),
                (30, "Gi"),
                (20, "Mi"),
                (10, "Ki"),
            ] {
                if v % (1i64 << shift) == 0 {
                    return write!(f, "{}{suffix}", v >> shift);
                }
            }
            return write!(f, "{v}");
        }
        for (power, suffix) in [
            (18, "E"),
            (15, "P"),
            (12, "T"),
            (9, "G"),
            (6, "M"),
            (3, "k"),
        ] {
            let d = 10i64.pow(power);
            if v % d == 0 {
                return write!(f, "{}{suffix}", v / d);
            }
        }
        write!(f, "{v}")
    }
}

/// Resource name → amount.
pub type List = BTreeMap<String, Amount>;

/// The list at `v` (a JSON object of quantities); unparsable entries (refused by validation
/// before anything gets here) are skipped.
pub fn list(v: Option<&Value>) -> List {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Amount::parse(q.as_str()?)?)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn to_json(l: &List) -> Value {
    Value::Object(
        l.iter()
            .map(|(k, a)| (k.clone(), Value::String(a.to_string())))
            .collect::<Map<_, _>>(),
    )
}

pub fn add_into(into: &mut List, l: &List) {
    for (k, a) in l {
        let e = into.entry(k.clone()).or_default();
        *e = e.plus(*a);
    }
}

fn max_into(into: &mut List, l: &List) {
    for (k, a) in l {
        let e = into.entry(k.clone()).or_insert(*a);
        *e = e.max(*a);
    }
}

/// `k=v,k=v` in name order (Kubernetes' quota messages).
pub fn pretty(l: &List) -> String {
    l.iter()
        .map(|(k, a)| format!("{k}={a}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Which side of a container's `resources`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Requests,
    Limits,
}

impl Side {
    pub fn field(self) -> &'static str {
        match self {
            Side::Requests => "requests",
            Side::Limits => "limits",
        }
    }
}

/// A container's requests or limits.
pub fn container(c: &Value, side: Side) -> List {
    list(c.pointer(&format!("/resources/{}", side.field())))
}

/// What a pod asks for as a whole (kube's `PodRequests`/`PodLimits`): its containers and
/// sidecars (init containers that keep running) added up, or its largest init step if that
/// is more, plus the pod's `overhead` (on limits, only where a limit is set). A resource no
/// container names is absent.
pub fn pod(spec: &Value, side: Side) -> List {
    let empty = Vec::new();
    let arr = |f: &str| spec.get(f).and_then(Value::as_array).unwrap_or(&empty);
    let mut total = List::new();
    for c in arr("containers") {
        add_into(&mut total, &container(c, side));
    }
    let mut sidecars = List::new();
    let mut init_peak = List::new();
    for c in arr("initContainers") {
        let own = container(c, side);
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add_into(&mut sidecars, &own);
            max_into(&mut init_peak, &sidecars);
        } else {
            let mut step = sidecars.clone();
            add_into(&mut step, &own);
            max_into(&mut init_peak, &step);
        }
    }
    add_into(&mut total, &sidecars);
    max_into(&mut total, &init_peak);
    // The overhead adds to every request, but only to limits that are set.
    for (k, a) in list(spec.get("overhead")) {
        if side == Side::Requests || total.contains_key(&k) {
            let e = total.entry(k).or_default();
            *e = e.plus(a);
        }
    }
    total
}

/// A pod's QoS class (kube's `ComputePodQOS`): `BestEffort` when no container names CPU or
/// memory, `Guaranteed` when every container limits both and requests what it limits,
/// else `Burstable`.
pub fn qos_class(spec: &Value) -> &'static str {
    let empty = Vec::new();
    let mut any = false;
    let mut guaranteed = true;
    for f in ["containers", "initContainers"] {
        for c in spec.get(f).and_then(Value::as_array).unwrap_or(&empty) {
            let (req, lim) = (container(c, Side::Requests), container(c, Side::Limits));
            for r in ["cpu", "memory"] {
                let (q, l) = (req.get(r), lim.get(r));
                any |= q.is_some_and(|a| a.milli > 0) || l.is_some_and(|a| a.milli > 0);
                // An unset request is the limit (the API defaults it so).
                let q = q.or(l);
                guaranteed &=
                    l.is_some_and(|l| l.milli > 0) && q.map(|a| a.milli) == l.map(|a| a.milli);
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// A pod's containers request what they limit unless they say otherwise (kube's
/// `SetDefaults_Pod`).
pub fn default_requests_from_limits(spec: &mut Value) {
    for f in ["containers", "initContainers"] {
        let Some(cs) = spec.get_mut(f).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs {
            let Some(res) = c.get_mut("resources").and_then(Value::as_object_mut) else {
                continue;
            };
            let Some(limits) = res.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            let requests = res
                .entry("requests")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(requests) = requests.as_object_mut() {
                for (k, v) in limits {
                    requests.entry(k).or_insert(v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn a(s: &str) -> Amount {
        Amount::parse(s).unwrap()
    }

    #[test]
    fn amounts_print_in_canonical_form() {
        assert_eq!(a("500m").to_string(), "500m");
        assert_eq!(a("500m").plus(a("1500m")).to_string(), "2");
        assert_eq!(a("128Mi").plus(a("128Mi")).to_string(), "256Mi");
        assert_eq!(a("1Gi").plus(a("512Mi")).to_string(), "1536Mi");
        assert_eq!(a("1G").plus(a("1G")).to_string(), "2G");
        assert_eq!(a("1500").to_string(), "1500");
        assert_eq!(Amount::count(3).to_string(), "3");
        assert_eq!(Amount::default().to_string(), "0");
        assert_eq!(a("0.5Gi").to_string(), "512Mi");
    }

    #[test]
    fn pod_totals_follow_kubernetes_rules() {
        let spec = json!({
            "containers": [
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"name": "b", "resources": {"requests": {"cpu": "200m"}}},
            ],
            "initContainers": [
                {"name": "big", "resources": {"requests": {"cpu": "1", "memory": "32Mi"}}},
            ],
            "overhead": {"cpu": "10m"},
        });
        let r = pod(&spec, Side::Requests);
        assert_eq!(r["cpu"].to_string(), "1010m");
        assert_eq!(r["memory"].to_string(), "64Mi");
        assert!(!pod(&spec, Side::Limits).contains_key("cpu"));
    }

    #[test]
    fn qos_classes() {
        let with = |res: Value| json!({"containers": [{"name": "a", "resources": res}]});
        assert_eq!(qos_class(&with(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "1Gi"},
                                    "requests": {"cpu": "500m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&with(json!({"requests": {"cpu": "1"}}))),
            "Burstable"
        );
    }

    #[test]
    fn requests_default_to_limits() {
        let mut spec = json!({"containers": [{"name": "a", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}}]});
        default_requests_from_limits(&mut spec);
        assert_eq!(
            spec["containers"][0]["resources"]["requests"],
            json!({"cpu": "100m", "memory": "1Gi"})
        );
    }

    #[test]
    fn sidecars_add_to_the_containers() {
        let spec = json!({
            "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
            "initContainers": [
                {"name": "log", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "50m"}}},
                {"name": "setup", "resources": {"requests": {"cpu": "120m"}}},
            ],
        });
        // max(100m + 50m, 50m + 120m)
        assert_eq!(pod(&spec, Side::Requests)["cpu"].to_string(), "170m");
    }
}
