//! Adapters: the ports on real services.

pub mod crms;
pub mod dynamo;
pub mod graph;
pub mod sqs;
pub mod zoho;
