//! The `griddispatch.v1` gRPC contract: generated code, the descriptor set for reflection, and
//! the conversions between wire types and domain types.

#![allow(clippy::pedantic)]

/// Generated prost messages and tonic clients/servers.
pub mod v1 {
    #![allow(clippy::all, clippy::pedantic, missing_docs)]
    tonic::include_proto!("griddispatch.v1");
}

/// Serialized `FileDescriptorSet` of the contract, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/griddispatch_v1_descriptor.bin"));

pub mod convert;
