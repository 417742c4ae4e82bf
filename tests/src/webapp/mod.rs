//! The demo's web tier (`skiff-demo-web`): an HTTP server that finds the database through
//! the Service environment variables Kubernetes injects (`MYSQL_SERVICE_HOST`,
//! `MYSQL_SERVICE_PORT`), reads rows with [`mysql`] and renders them as an HTML table.

pub mod mysql;
pub mod page;

use std::net::{SocketAddr, ToSocketAddrs};

/// Where and how to reach the database, from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub database: String,
}

impl DbConfig {
    /// From `MYSQL_SERVICE_HOST`/`MYSQL_SERVICE_PORT` (the Service link variables) and
    /// `MYSQL_USER`/`MYSQL_PASSWORD`/`MYSQL_DATABASE` (defaults: root, the seed's
    /// `MYSQL_ROOT_PASSWORD` 123456, demo).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<DbConfig, String> {
        let host = get("MYSQL_SERVICE_HOST").ok_or(
            "MYSQL_SERVICE_HOST is not set: is the mysql Service created before this pod?",
        )?;
        let port = match get("MYSQL_SERVICE_PORT") {
            Some(p) => p
                .parse()
                .map_err(|_| format!("MYSQL_SERVICE_PORT={p:?} is not a port"))?,
            None => 3306,
        };
        Ok(DbConfig {
            host,
            port,
            user: get("MYSQL_USER").unwrap_or_else(|| "root".into()),
            password: get("MYSQL_PASSWORD").unwrap_or_else(|| "123456".into()),
            database: get("MYSQL_DATABASE").unwrap_or_else(|| "demo".into()),
        })
    }

    pub fn addr(&self) -> Result<SocketAddr, String> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}:{}: {e}", self.host, self.port))?
            .next()
            .ok_or_else(|| format!("{}:{} has no address", self.host, self.port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_the_service_variables() {
        let env = |k: &str| match k {
            "MYSQL_SERVICE_HOST" => Some("10.96.0.12".to_string()),
            "MYSQL_SERVICE_PORT" => Some("3306".to_string()),
            _ => None,
        };
        let c = DbConfig::from_env(env).unwrap();
        assert_eq!(c.addr().unwrap(), "10.96.0.12:3306".parse().unwrap());
        assert_eq!((c.user.as_str(), c.database.as_str()), ("root", "demo"));
        assert!(DbConfig::from_env(|_| None)
            .unwrap_err()
            .contains("MYSQL_SERVICE_HOST"));
        let bad = |k: &str| {
            (k == "MYSQL_SERVICE_HOST")
                .then(|| "x".into())
                .or(Some("http".into()))
        };
        assert!(DbConfig::from_env(bad).unwrap_err().contains("not a port"));
    }
}
