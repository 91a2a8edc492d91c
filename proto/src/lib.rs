//! Protobuf for temper: the Temporal server traits generated from `temporalio-protos`'
//! descriptor set, and temper's own persisted-state messages and node-to-node services.

#![allow(clippy::all, missing_docs, unreachable_pub)]

/// Re-export of the official Temporal message types.
pub use temporalio_protos::temporal;
/// `google.rpc.Status` (error details) and `grpc.health.v1`.
pub use temporalio_protos::{google, grpc};

/// Generated server traits of the public Temporal API.
pub mod api {
    pub mod workflowservice {
        pub mod v1 {
            tonic::include_proto!("temporal.api.workflowservice.v1");
        }
    }
    pub mod operatorservice {
        pub mod v1 {
            tonic::include_proto!("temporal.api.operatorservice.v1");
        }
    }
}

/// Messages stored by temper (mutable state, shard info, tasks, tokens).
pub mod persistence {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/own/temper.persistence.v1.rs"));
    }
}

/// temper's node-to-node services (history, matching).
pub mod internal {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/own/temper.internal.v1.rs"));
    }
}

/// Well-known types (Timestamp, Duration...), the same ones `temporalio-protos` uses.
pub use prost_types as wkt;
