//! The demo's web tier: `GET /` renders the rows of `demo.visits` read from the MySQL
//! Service found through `MYSQL_SERVICE_HOST`/`MYSQL_SERVICE_PORT`; `GET /healthz` answers
//! without touching the database. Listens on `--listen` (default 0.0.0.0:8080).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use skiff_tests::webapp::{mysql, page, DbConfig};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: String,
    #[arg(long, default_value = "SELECT id, name, city FROM visits ORDER BY id")]
    query: String,
}

fn respond(stream: &mut TcpStream, code: &str, kind: &str, body: &str) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {code}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn page(query: &str) -> Result<String, String> {
    let cfg = DbConfig::from_env(|k| std::env::var(k).ok())?;
    let addr = cfg.addr()?;
    let mut conn = mysql::Conn::connect(
        addr,
        &cfg.user,
        &cfg.password,
        &cfg.database,
        Duration::from_secs(3),
    )
    .map_err(|e| e.to_string())?;
    let rows = conn.query(query).map_err(|e| e.to_string())?;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    Ok(page::render(&rows, &addr.to_string(), host.trim()))
}

fn serve(mut stream: TcpStream, query: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    match path {
        "/healthz" => respond(&mut stream, "200 OK", "text/plain", "ok\n"),
        "/" => match page(query) {
            Ok(html) => respond(&mut stream, "200 OK", "text/html; charset=utf-8", &html),
            Err(e) => {
                eprintln!("GET /: {e}");
                respond(
                    &mut stream,
                    "503 Service Unavailable",
                    "text/plain",
                    &format!("{e}\n"),
                )
            }
        },
        _ => respond(&mut stream, "404 Not Found", "text/plain", "not found\n"),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener =
        TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("skiff-demo-web listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                let q = args.query.clone();
                std::thread::spawn(move || {
                    if let Err(e) = serve(s, &q) {
                        eprintln!("connection: {e}");
                    }
                });
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
    Ok(())
}
