//! Adapters: the ports on real services.

pub mod dynamo;
pub mod graph;
pub mod sqs;
pub mod zoho;
