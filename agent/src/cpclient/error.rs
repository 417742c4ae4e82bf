//! Errors of the control-plane client.

use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum CpError {
    #[error("invalid control-plane address {addr:?}: {message}")]
    Address { addr: String, message: String },
    #[error(
        "connecting to the control plane at {addr}: gave up after {attempts} attempts: {last}"
    )]
    Connect {
        addr: String,
        attempts: u32,
        last: String,
    },
    /// The control plane answered with an error (`message` is the Kubernetes one).
    #[error("{call}: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        code: Code,
        message: String,
    },
    #[error("{call}: decoding the {what} in the reply: {source}")]
    Decode {
        call: &'static str,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("{call}: encoding the {what}: {source}")]
    Encode {
        call: &'static str,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl CpError {
    pub(crate) fn rpc(call: &'static str, s: tonic::Status) -> Self {
        CpError::Rpc {
            call,
            code: s.code(),
            message: s.message().to_string(),
        }
    }

    /// The gRPC code of an error the control plane answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            CpError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Worth retrying as it is: the server is unreachable, stopping or has no leader.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.code(),
            Some(
                Code::Unavailable
                    | Code::Unknown
                    | Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::Internal
                    | Code::ResourceExhausted
            )
        ) || matches!(self, CpError::Connect { .. })
    }
}
