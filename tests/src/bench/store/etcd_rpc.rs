//! The two etcd v3 gRPC calls the benchmark makes (`KV.Put`, `Maintenance.Status`), with
//! the messages written out by hand as prost derives of the fields used from etcd's
//! `rpc.proto` (same tags and types, so the wire format is etcd's). No protoc, no build
//! script: the rest of each message is skipped by prost as unknown fields.

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    #[prost(int64, tag = "3")]
    pub revision: i64,
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusRequest {}

#[derive(Clone, PartialEq, prost::Message)]
pub struct StatusResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(uint64, tag = "4")]
    pub leader: u64,
}

/// A KV/Maintenance client over one HTTP/2 channel (cheap to clone; clones share it).
#[derive(Clone)]
pub struct EtcdRpc {
    grpc: tonic::client::Grpc<Channel>,
}

impl EtcdRpc {
    pub fn new(channel: Channel) -> Self {
        Self {
            grpc: tonic::client::Grpc::new(channel),
        }
    }

    async fn unary<Req, Resp>(
        &mut self,
        path: &'static str,
        req: Req,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("channel not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<Req, Resp>::default();
        let resp = self
            .grpc
            .unary(
                tonic::Request::new(req),
                PathAndQuery::from_static(path),
                codec,
            )
            .await?;
        Ok(resp.into_inner())
    }

    pub async fn put(
        &mut self,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<PutResponse, tonic::Status> {
        self.unary("/etcdserverpb.KV/Put", PutRequest { key, value })
            .await
    }

    pub async fn status(&mut self) -> Result<StatusResponse, tonic::Status> {
        self.unary("/etcdserverpb.Maintenance/Status", StatusRequest {})
            .await
    }
}
