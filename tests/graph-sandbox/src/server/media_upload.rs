//! `POST /{version}/{phone_number_id}/media` (live-chat reference §3.2):
//! `multipart/form-data` with `file` (the bytes, with their MIME type),
//! `type` (the MIME type) and `messaging_product=whatsapp` → `{"id":…}`.
//!
//! Unsupported types answer code 100 ("Param file must be a file with one of
//! the following types…"); files over Meta's limit for their type, empty
//! files and images whose bytes are not of the declared type answer 131053
//! (Media upload error). An upload can then be sent by id and downloaded
//! through the media endpoints (it belongs to the number it was uploaded to).

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use bytes::Bytes;
use rand::Rng;
use serde_json::json;

use super::AppState;
use super::http::{
    cloud_error, fault, invalid_token, is_version, json_response, parse_query, record, token,
    unknown_object_for, unknown_path,
};
use crate::errors::CloudError;
use crate::media_rules::{
    MediaKind, content_matches, essence, human_size, kind_of, max_size, supported_types,
    webp_animated,
};
use crate::{Endpoint, SeedMedia, Shared};

/// Largest request the upload route reads: the 100 MB document limit and
/// some room for the multipart framing. Larger requests fail while reading
/// (131053).
pub const UPLOAD_BODY_MAX: usize = 101 * 1024 * 1024;

/// The parts of an upload request.
#[derive(Default)]
struct Upload {
    file: Option<Bytes>,
    file_type: Option<String>,
    file_name: Option<String>,
    declared_type: Option<String>,
    messaging_product: Option<String>,
}

pub async fn upload(
    State(sh): State<AppState>,
    Path((version, phone_number_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Response {
    if !is_version(&version) {
        return unknown_path(&sh, &Method::POST, &uri, &headers);
    }
    sh.pass_gate(Endpoint::MediaUpload).await;
    let query = parse_query(uri.query());
    let refused = preflight(&sh, &phone_number_id, token(&headers, &query));
    let response = match refused {
        Some(response) => response,
        None => match read(multipart).await {
            Ok(upload) => store(&sh, &phone_number_id, upload),
            Err(e) => cloud_error(&e),
        },
    };
    let status = response.status();
    record(
        &mut sh.store(),
        Endpoint::MediaUpload,
        &Method::POST,
        &uri,
        &headers,
        status,
    );
    response
}

/// Faults, token and number, before the body is read.
fn preflight(sh: &Shared, phone_number_id: &str, token: Option<&str>) -> Option<Response> {
    let mut st = sh.store();
    if let Some(status) = st.take_fault(Endpoint::MediaUpload) {
        return Some(fault(Endpoint::MediaUpload, status));
    }
    if !st.accepts(token) {
        return Some(invalid_token());
    }
    if !st.phone_numbers.contains_key(phone_number_id) {
        return Some(unknown_object_for(&Method::POST, phone_number_id));
    }
    None
}

async fn read(multipart: Result<Multipart, MultipartRejection>) -> Result<Upload, CloudError> {
    let mut multipart = multipart.map_err(|e| {
        CloudError::invalid_parameter(format!("The request must be multipart/form-data: {e}"))
    })?;
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        CloudError::new(131053, format!("The upload could not be read: {e}"))
    };
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or("") {
            "file" => {
                upload.file_type = field.content_type().map(str::to_owned);
                upload.file_name = field.file_name().map(str::to_owned);
                upload.file = Some(field.bytes().await.map_err(unreadable)?);
            }
            "type" => upload.declared_type = Some(field.text().await.map_err(unreadable)?),
            "messaging_product" => {
                upload.messaging_product = Some(field.text().await.map_err(unreadable)?);
            }
            // Graph ignores parameters it does not use.
            _ => {}
        }
    }
    Ok(upload)
}

fn store(sh: &Shared, phone_number_id: &str, upload: Upload) -> Response {
    let (mime, file) = match check(&upload) {
        Ok(checked) => checked,
        Err(e) => return cloud_error(&e),
    };
    let id = new_media_id();
    let mut media = SeedMedia::bytes(&id, &mime, file).with_phone_number_id(phone_number_id);
    if let Some(name) = &upload.file_name {
        media = media.with_filename(name);
    }
    sh.store().seed(media);
    json_response(200, json!({ "id": id }))
}

/// The MIME type and bytes of a valid upload.
fn check(upload: &Upload) -> Result<(String, Bytes), CloudError> {
    if upload.messaging_product.as_deref() != Some("whatsapp") {
        return Err(CloudError::invalid_parameter(
            "The parameter messaging_product is required.",
        ));
    }
    let file = upload
        .file
        .clone()
        .ok_or_else(|| CloudError::invalid_parameter("The parameter file is required."))?;
    let mime = upload
        .declared_type
        .as_deref()
        .or(upload.file_type.as_deref())
        .unwrap_or("application/octet-stream")
        .trim()
        .to_owned();
    let kind = kind_of(&mime).ok_or_else(|| {
        CloudError::invalid_parameter(format!(
            "Param file must be a file with one of the following types: {}. Received file of type '{}'.",
            supported_types(),
            essence(&mime)
        ))
    })?;
    if file.is_empty() {
        return Err(CloudError::new(131053, "The uploaded file is empty."));
    }
    if !content_matches(&mime, &file) {
        return Err(CloudError::new(
            131053,
            format!("The file's content is not of type {}.", essence(&mime)),
        ));
    }
    let animated = kind == MediaKind::Sticker && webp_animated(&file);
    let limit = max_size(kind, animated);
    if file.len() as u64 > limit {
        return Err(CloudError::new(
            131053,
            format!(
                "File size ({} bytes) is over the {} limit for {}{}.",
                file.len(),
                human_size(limit),
                essence(&mime),
                match (kind, animated) {
                    (MediaKind::Sticker, true) => " (animated sticker)",
                    (MediaKind::Sticker, false) => " (static sticker)",
                    _ => "",
                }
            ),
        ));
    }
    Ok((mime, file))
}

/// Media ids are long decimal numbers.
fn new_media_id() -> String {
    let n: u64 = rand::rng().random_range(1_000_000_000_000_000..10_000_000_000_000_000);
    n.to_string()
}
