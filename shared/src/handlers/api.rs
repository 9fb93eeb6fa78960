//! The `api` function: routes each request to its part — the workspace
//! (creating it, its retention, its deletion, its sync log), its users,
//! its WhatsApp numbers and its chats (each a file here), usage, settings
//! and live chat (handlers of their own) — and answers a route it does not
//! have, or a method a route does not take, with a clear refusal.

use lambda_http::Request;

use super::http::{ApiError, HttpResponse, no_route, path_segments};
use crate::deps::Deps;

mod chats;
mod numbers;
mod users;
mod workspace;

use chats::{chat_messages, choose_record, list_chats, replay, set_responsible};
use numbers::add_whatsapp_number;
use users::{add_user, remove_user, rotate_token};
use workspace::{create_workspace, delete_workspace, me, retention, set_retention, sync_log};

pub async fn handle(deps: &Deps, req: Request) -> Result<HttpResponse, lambda_http::Error> {
    Ok(route(deps, &req)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn route(deps: &Deps, req: &Request) -> Result<HttpResponse, ApiError> {
    let segments = path_segments(req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method().as_str(), segments.as_slice()) {
        ("POST", ["api", "workspaces"]) => create_workspace(deps, req).await,
        ("GET", ["api", "me"]) => me(deps, req).await,
        ("GET", ["api", "workspace", "retention"]) => retention(deps, req).await,
        ("PUT", ["api", "workspace", "retention"]) => set_retention(deps, req).await,
        ("DELETE", ["api", "workspace"]) => delete_workspace(deps, req).await,
        ("POST", ["api", "users"]) => add_user(deps, req).await,
        ("POST", ["api", "whatsapp-numbers"]) => add_whatsapp_number(deps, req).await,
        ("DELETE", ["api", "users", user_id]) => remove_user(deps, req, user_id).await,
        ("POST", ["api", "me", "token"]) => rotate_token(deps, req).await,
        ("GET", ["api", "sync-log"]) => sync_log(deps, req).await,
        ("GET", ["api", "usage"]) => super::usage::show(deps, req).await,
        ("PUT", ["api", "usage"]) => super::usage::set_plan(deps, req).await,
        ("GET", ["api", "chats", chat_key, "messages"]) => chat_messages(deps, req, chat_key).await,
        ("GET", ["api", "chats"]) => list_chats(deps, req).await,
        ("PUT", ["api", "chats", chat_key, "responsible"]) => {
            set_responsible(deps, req, chat_key).await
        }
        ("PUT", ["api", "chats", chat_key, "record"]) => choose_record(deps, req, chat_key).await,
        ("POST", ["api", "chats", chat_key, "messages", message_id, "replay"]) => {
            replay(deps, req, chat_key, message_id).await
        }
        ("GET", ["live", "sdk", file]) => {
            crate::livechat::page::sdk(file).ok_or_else(|| no_route(req))
        }
        ("GET", ["live", crm]) => {
            crate::livechat::page::page(crm, &crate::livechat::page::extra_ancestors_from_env())
                .ok_or_else(|| no_route(req))
        }
        (_, ["api", "live", rest @ ..]) => super::live::route(deps, req, rest).await,
        (_, ["api", "settings", crm, rest @ ..]) => {
            super::settings::route(deps, req, crm, rest).await
        }
        (_, ["api", "workspaces" | "users" | "whatsapp-numbers"])
        | (_, ["api", "chats", _, "messages", _, "replay"])
        | (_, ["api", "me", "token"]) => Err(ApiError::MethodNotAllowed("POST")),
        (_, ["api", "me" | "sync-log" | "chats"]) | (_, ["api", "chats", _, "messages"]) => {
            Err(ApiError::MethodNotAllowed("GET"))
        }
        (_, ["api", "workspace"] | ["api", "users", _]) => {
            Err(ApiError::MethodNotAllowed("DELETE"))
        }
        (_, ["api", "workspace", "retention"] | ["api", "usage"]) => {
            Err(ApiError::MethodNotAllowed("GET, PUT"))
        }
        (_, ["api", "chats", _, "responsible" | "record"]) => {
            Err(ApiError::MethodNotAllowed("PUT"))
        }
        _ => Err(no_route(req)),
    }
}
