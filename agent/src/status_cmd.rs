//! `skiff status`: the store's replicas and the nodes, from the server's `/skiff/v1/status`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::Args;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use skiff_controlplane::server::status::Status;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// API server URL.
    #[arg(long, default_value = "http://127.0.0.1:6443")]
    pub server: String,
}

/// GET `path` from an `http://host:port` server (HTTP/1.0: the body ends at close).
async fn get(server: &str, path: &str) -> anyhow::Result<String> {
    let Some(hostport) = server.strip_prefix("http://") else {
        bail!("only http:// servers are supported, not {server}");
    };
    let hostport = hostport.trim_end_matches('/');
    let mut conn = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(hostport),
    )
    .await
    .with_context(|| format!("connecting to {hostport}: timed out"))?
    .with_context(|| format!("connecting to {hostport}"))?;
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\nAccept: application/json\r\n\r\n");
    conn.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut buf))
        .await
        .context("reading the status: timed out")??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status_line = head.lines().next().unwrap_or("");
    if !status_line.contains(" 200") {
        bail!("{server}{path}: {status_line}: {body}");
    }
    Ok(body.to_string())
}

fn age(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| serde_json::from_value::<Time>(c.into()).ok()) else {
        return "-".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - t.0.timestamp()).max(0);
    match s {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map(Vec::len).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

/// The readable form of a status document.
pub fn render(s: &Status) -> String {
    let mut rows = vec![vec![
        "ID".into(),
        "ADDRESS".into(),
        "ROLE".into(),
        "APPLIED".into(),
    ]];
    for r in &s.replicas {
        rows.push(vec![
            r.id.to_string(),
            r.address.clone(),
            r.role.clone(),
            r.last_applied.map_or("-".into(), |i| i.to_string()),
        ]);
    }
    let leader = s.leader.map_or("none".into(), |l| l.to_string());
    let mut out = format!("REPLICAS (answered by {}, leader {leader})\n", s.replica);
    out.push_str(&table(&rows));
    let mut rows = vec![vec![
        "NAME".into(),
        "STATUS".into(),
        "POD CIDR".into(),
        "AGE".into(),
    ]];
    for n in &s.nodes {
        rows.push(vec![
            n.name.clone(),
            n.status.clone(),
            n.pod_cidr.clone().unwrap_or_else(|| "-".into()),
            age(n.created.as_deref()),
        ]);
    }
    out.push_str(&format!("\nNODES ({})\n", s.nodes.len()));
    out.push_str(&table(&rows));
    out
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let body = get(&args.server, "/skiff/v1/status").await?;
    let status: Status = serde_json::from_str(&body).context("decoding the status")?;
    print!("{}", render(&status));
    Ok(())
}
