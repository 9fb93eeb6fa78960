//! Live chat inside the CRM record: who the person in the CRM's frame is,
//! and which of the workspace's chats a record shows them.
//!
//! Nothing the browser says about the user or the record is trusted.
//! Pipedrive signs a short token for its app extensions (`GET_SIGNED_TOKEN`,
//! HS256 with the app's secret): verified here, it names the Pipedrive
//! company and user, whose personal connection names the workspace user. A
//! record's numbers are read from the CRM with that user's own token, so the
//! CRM's sharing rules decide what a user may see. Zoho signs nothing for
//! its widgets: its users sign in through Zoho in a popup
//! ([`zoho_signin`]), which finds their personal connection the same way.

pub mod media_send;
pub mod page;
pub mod pipedrive_token;
pub mod reaction;
pub mod read;
pub mod record_pass;
pub mod send;
pub mod session;
pub mod start;
pub mod templates;
pub mod view;
pub mod zoho_signin;

pub use session::LiveSession;
