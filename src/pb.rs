//! Code generated from `proto/` (the public contract), and its descriptor set.

#![allow(
    missing_docs,
    clippy::doc_lazy_continuation,
    clippy::doc_overindented_list_items
)]

/// `portone.facade.v1`.
pub mod portone {
    /// `portone.facade`.
    pub mod facade {
        /// `portone.facade.v1`.
        pub mod v1 {
            tonic::include_proto!("portone.facade.v1");
        }
    }
}

pub use portone::facade::v1::*;

/// The encoded `FileDescriptorSet` of the contract, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/portone_facade_descriptor.bin"));
