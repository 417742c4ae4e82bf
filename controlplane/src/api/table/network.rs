//! Table columns of services, endpoints and endpoint slices.

use serde_json::{json, Value};

use super::{age, arr, i, name, or_none, s, Printer};

fn service_ports(o: &Value) -> String {
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", i(p, "/port")),
                None => format!("{}/{proto}", i(p, "/port")),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn selector_map(o: &Value, ptr: &str) -> Value {
    let m = crate::api::selector::string_map(o.pointer(ptr));
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    or_none(&parts.join(","))
}

fn service_cells(o: &Value) -> Vec<Value> {
    let ty = s(o, "/spec/type");
    let mut external: Vec<String> = arr(o, "/spec/externalIPs")
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for ing in arr(o, "/status/loadBalancer/ingress") {
        let v = if s(ing, "/ip").is_empty() {
            s(ing, "/hostname")
        } else {
            s(ing, "/ip")
        };
        external.push(v.to_string());
    }
    let ext = match ty {
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        "LoadBalancer" if external.is_empty() => "<pending>".into(),
        _ if external.is_empty() => "<none>".into(),
        _ => external.join(","),
    };
    vec![
        json!(name(o)),
        json!(ty),
        or_none(s(o, "/spec/clusterIP")),
        json!(ext),
        json!(service_ports(o)),
        json!(age(o)),
        selector_map(o, "/spec/selector"),
    ]
}

fn endpoints_cells(o: &Value) -> Vec<Value> {
    let mut eps = Vec::new();
    for sub in arr(o, "/subsets") {
        for a in arr(sub, "/addresses") {
            let ports = arr(sub, "/ports");
            if ports.is_empty() {
                eps.push(s(a, "/ip").to_string());
            }
            for p in ports {
                eps.push(format!("{}:{}", s(a, "/ip"), i(p, "/port")));
            }
        }
    }
    let shown = if eps.len() > 3 {
        format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
    } else {
        eps.join(",")
    };
    vec![json!(name(o)), or_none(&shown), json!(age(o))]
}

pub(super) const PRINTERS: &[(&str, Printer)] = &[
    (
        "Service",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Type", "string", 0),
                ("Cluster-IP", "string", 0),
                ("External-IP", "string", 0),
                ("Port(s)", "string", 0),
                ("Age", "string", 0),
                ("Selector", "string", 1),
            ],
            cells: service_cells,
        },
    ),
    (
        "Endpoints",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("Endpoints", "string", 0),
                ("Age", "string", 0),
            ],
            cells: endpoints_cells,
        },
    ),
    (
        "EndpointSlice",
        Printer {
            columns: &[
                ("Name", "string", 0),
                ("AddressType", "string", 0),
                ("Ports", "string", 0),
                ("Endpoints", "string", 0),
                ("Age", "string", 0),
            ],
            cells: |o| {
                let ports: Vec<String> = arr(o, "/ports")
                    .iter()
                    .map(|p| i(p, "/port").to_string())
                    .collect();
                let eps: Vec<&str> = arr(o, "/endpoints")
                    .iter()
                    .flat_map(|e| arr(e, "/addresses").iter().filter_map(Value::as_str))
                    .collect();
                vec![
                    json!(name(o)),
                    json!(s(o, "/addressType")),
                    or_none(&ports.join(",")),
                    or_none(&eps.join(",")),
                    json!(age(o)),
                ]
            },
        },
    ),
];
