//! The end-to-end NodePort results (`nodeport_e2e_*` keys of
//! `dataplane.json`) and their table: socket sender, bridge, backend pod's
//! socket, all sharing the CPUs. The headline NodePort row is
//! `nodeport_lb.rs`.

use anyhow::Result;
use serde_json::{json, Map, Value};

use super::nodeport_pps::{PpsLoad, PpsResult};
use super::udp_frame::FRAME_LEN;

/// Where the packets go, in words (the JSON says it too).
const PATH: &str = "external client → node 0 nodePort → backend pod on node 1 \
                    (remote backend: Skiff XDP DNAT + SNAT + XDP_TX; iptables DNAT + MASQUERADE)";

/// Adds `nodeport_e2e_<mode>_pps` (delivered), `_offered_pps`, `_sink_pps`,
/// `_runs` (or `_error`) per mode, and `nodeport_e2e_ratio_xdp_vs_iptables`; returns
/// the table.
pub fn put(
    x: &mut Map<String, Value>,
    load: &PpsLoad,
    results: &[(&str, Result<PpsResult>)],
) -> String {
    if results.is_empty() {
        return String::new();
    }
    x.insert("nodeport_e2e_path".into(), PATH.into());
    x.insert("nodeport_e2e_load".into(), json!(load));
    let mut t = format!(
        "\nNodePort end to end (all on shared CPUs), {FRAME_LEN}-byte UDP frames, {} sender threads × {} flows, {} × {:.1} s windows (medians)\n{PATH}\n{:<10} {:>13} {:>15} {:>10}\n",
        load.threads, load.flows, load.reps, load.window_s, "mode", "offered kpps", "delivered kpps", "sink kpps"
    );
    let mut delivered = |mode: &str| -> Option<f64> {
        let (_, r) = results.iter().find(|(m, _)| *m == mode)?;
        match r {
            Ok(r) => {
                x.insert(format!("nodeport_e2e_{mode}_pps"), json!(r.delivered_pps));
                x.insert(
                    format!("nodeport_e2e_{mode}_offered_pps"),
                    json!(r.offered_pps),
                );
                x.insert(format!("nodeport_e2e_{mode}_sink_pps"), json!(r.sink_pps));
                x.insert(format!("nodeport_e2e_{mode}_runs"), json!(r.delivered_runs));
                Some(r.delivered_pps)
            }
            Err(e) => {
                x.insert(
                    format!("nodeport_e2e_{mode}_error"),
                    format!("{e:#}").into(),
                );
                None
            }
        }
    };
    let (xdp, ipt) = (delivered("xdp"), delivered("iptables"));
    let ratio = xdp.zip(ipt).map(|(a, b)| a / b);
    x.insert("nodeport_e2e_ratio_xdp_vs_iptables".into(), json!(ratio));
    for (mode, r) in results {
        match r {
            Ok(r) => t.push_str(&format!(
                "{mode:<10} {:>13.0} {:>15.0} {:>10.0}\n",
                r.offered_pps / 1e3,
                r.delivered_pps / 1e3,
                r.sink_pps / 1e3
            )),
            Err(e) => t.push_str(&format!("{mode:<10}  ERROR: {e:#}\n")),
        }
    }
    match ratio {
        Some(r) => t.push_str(&format!("ratio xdp / iptables (delivered): {r:.2}\n")),
        None => t.push_str("ratio xdp / iptables: - (a mode failed)\n"),
    }
    t
}
