//! The common crate of the WhatsApp ⇄ CRM sync: domain, ports, adapters and
//! the handlers that the Lambda functions (and the local runner) call.

pub mod adapters;
pub mod budget;
pub mod business_numbers;
pub mod clock;
pub mod config;
pub mod crm;
pub mod crypto;
pub mod day_notes;
pub mod deletion;
pub mod deps;
pub mod error;
pub mod grants;
pub mod handlers;
pub mod linking;
pub mod livechat;
pub mod media;
pub mod model;
pub mod pacing;
pub mod phone;
pub mod queue;
pub mod requeue;
pub mod retention;
pub mod secrets;
pub mod settings;
pub mod store;
pub mod sync;
pub mod synclog;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod time_zone;
pub mod tokens;
pub mod usage;
pub mod whatsapp;
