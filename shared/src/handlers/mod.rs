//! One handler per function; each takes the [`Deps`](crate::deps::Deps) built
//! once by its Lambda main (or the local runner) and one event.

pub mod api;
pub mod batch;
pub mod http;
pub mod live;
pub mod note_append;
pub mod oauth;
pub mod record_sync;
pub mod settings;
pub mod usage;
pub mod webhook;
