//! A small JSON-over-HTTP client on hyper (connection pooling, no TLS: replicas talk on a
//! trusted network in this issue).

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("connecting to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("{addr}{path}: {message}")]
    Request {
        addr: String,
        path: String,
        message: String,
    },
    #[error("{addr}{path}: HTTP {status}")]
    Status {
        addr: String,
        path: String,
        status: u16,
    },
    #[error("{addr}{path}: no answer within {timeout:?}")]
    Timeout {
        addr: String,
        path: String,
        timeout: Duration,
    },
    #[error("encoding or decoding a message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Shared HTTP client. Cheap to clone.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Self {
            inner: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

impl HttpClient {
    /// `POST http://{addr}{path}` with `req` as JSON; decode the JSON answer.
    pub async fn post<Req, Resp>(
        &self,
        addr: &str,
        path: &str,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, HttpError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
    {
        let body = serde_json::to_vec(req)?;
        let request = hyper::Request::post(format!("http://{addr}{path}"))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| HttpError::Request {
                addr: addr.to_string(),
                path: path.to_string(),
                message: e.to_string(),
            })?;
        let call = async {
            let resp = self.inner.request(request).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect {
                        addr: addr.to_string(),
                        message: e.to_string(),
                    }
                } else {
                    HttpError::Request {
                        addr: addr.to_string(),
                        path: path.to_string(),
                        message: e.to_string(),
                    }
                }
            })?;
            let bytes = answer_body(resp, addr, path).await?;
            Ok(serde_json::from_slice(&bytes)?)
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| HttpError::Timeout {
                addr: addr.to_string(),
                path: path.to_string(),
                timeout,
            })?
    }
}

/// The body of `resp` to a request to `{addr}{path}`, or why there is none.
pub(super) async fn answer_body(
    resp: hyper::Response<hyper::body::Incoming>,
    addr: &str,
    path: &str,
) -> Result<Bytes, HttpError> {
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| HttpError::Request {
            addr: addr.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        })?
        .to_bytes();
    if !status.is_success() {
        return Err(HttpError::Status {
            addr: addr.to_string(),
            path: path.to_string(),
            status: status.as_u16(),
        });
    }
    Ok(bytes)
}
