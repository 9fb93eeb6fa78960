//! Files attached to a CRM record or note (Zoho reference §7.4):
//! `POST /crm/v8/{module}/{record_id}/Attachments` with one multipart part
//! named `file`. `Notes` is a supported module, so a note's id attaches the
//! file to the note itself.

use bytes::Bytes;
use reqwest::Method;
use reqwest::multipart::{Form, Part};

use super::{ZohoApi, single_write_result, str_field};
use crate::crm::CrmError;
use crate::model::RecordRef;

/// Largest file, in bytes, sent to the Attachments API.
///
/// Zoho's "Upload an Attachment" page for API v2
/// (zoho.com/crm/developer/docs/api/v2/upload-attachment.html) says of the
/// `file` part: "Maximum allowed file size: 100 MB", all types but `.exe`.
/// The v8 page (…/docs/api/v8/upload-attachment.html) states no limit, and
/// the CRM help ("Managing Notes and Attachments") says files attached to a
/// record should not exceed 100 MB in total (older localised copies: 20 MB).
/// 20 MB is the Zoho File System limit (`/crm/v8/files`), which this does not
/// use. "MB" is read as MiB so this check never refuses a file Zoho would
/// take: Zoho's own refusal (400 `INVALID_DATA`) still arrives as
/// `CrmError::Rejected`, this check only spares sending what is surely too big.
pub const ZOHO_ATTACHMENT_MAX_BYTES: u64 = 100 * 1024 * 1024;

/// What a part without a usable MIME type is sent as (RFC 7578 §4.4 would
/// otherwise make it text/plain).
const OCTET_STREAM: &str = "application/octet-stream";

impl ZohoApi {
    /// Attaches a file to `parent` (a record, or a note with module `Notes`)
    /// and returns the attachment's id. A file over
    /// [`ZOHO_ATTACHMENT_MAX_BYTES`] is refused without being sent
    /// (`Rejected` with status 413, code `FILE_TOO_LARGE`); one Zoho refuses
    /// (its size limit, an unknown parent) is `Rejected` with Zoho's code.
    pub async fn upload_attachment(
        &self,
        parent: &RecordRef,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, CrmError> {
        let size = bytes.len() as u64;
        if size > ZOHO_ATTACHMENT_MAX_BYTES {
            tracing::info!(
                module = %parent.module,
                record_id = %parent.id,
                size,
                "attachment over Zoho's size limit; not sent"
            );
            return Err(CrmError::Rejected {
                status: 413,
                code: "FILE_TOO_LARGE".into(),
                message: format!(
                    "{size} bytes is over the {ZOHO_ATTACHMENT_MAX_BYTES}-byte attachment limit"
                ),
                field: Some("file".into()),
            });
        }
        // Checked once here: the builder below cannot return an error.
        let mime_type = if Part::bytes(&[][..]).mime_str(mime_type).is_ok() {
            mime_type
        } else {
            OCTET_STREAM
        };
        // `call` may build the request twice (again after a token refresh),
        // and a multipart body is consumed by sending: each attempt gets a
        // fresh form over the same bytes (a cheap reference-counted clone).
        let bytes = Bytes::from(bytes);
        let path = format!("{}/{}/Attachments", parent.module, parent.id);
        let (status, body) = self
            .call(Method::POST, &path, |request| {
                request.multipart(file_form(&bytes, file_name, mime_type))
            })
            .await?;
        let entry = single_write_result(status, body)?;
        let id = str_field(&entry["details"], "id")?;
        tracing::info!(
            module = %parent.module,
            record_id = %parent.id,
            attachment_id = %id,
            size,
            "attachment uploaded"
        );
        Ok(id)
    }
}

impl ZohoApi {
    /// The newest attachment of `parent` named `file_name`, of `size` bytes,
    /// created at `since` (unix seconds) or later (`GET …/Attachments`,
    /// newest first, 200 a page).
    pub async fn attachment_named(
        &self,
        parent: &RecordRef,
        file_name: &str,
        size: u64,
        since: i64,
    ) -> Result<Option<String>, CrmError> {
        let path = format!("{}/{}/Attachments", parent.module, parent.id);
        let mut page = 1;
        loop {
            let page_text = page.to_string();
            let (_, body) = self
                .call(Method::GET, &path, |request| {
                    request.query(&[
                        ("fields", "id,File_Name,Size,Created_Time"),
                        ("per_page", "200"),
                        ("page", page_text.as_str()),
                    ])
                })
                .await?;
            let Some(body) = body else {
                return Ok(None); // 204: no attachments
            };
            let found = body["data"].as_array().into_iter().flatten().find(|a| {
                let size_matches = match &a["Size"] {
                    serde_json::Value::String(s) => s.parse::<u64>().ok() == Some(size),
                    other => other.as_u64() == Some(size),
                };
                let recent = a["Created_Time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .is_some_and(|t| t.timestamp() >= since);
                a["File_Name"].as_str() == Some(file_name) && size_matches && recent
            });
            if let Some(found) = found {
                return Ok(found["id"].as_str().map(str::to_owned));
            }
            if body["info"]["more_records"].as_bool() != Some(true) {
                return Ok(None);
            }
            page += 1;
        }
    }
}

fn file_form(bytes: &Bytes, file_name: &str, mime_type: &str) -> Form {
    let part = || {
        Part::stream_with_length(bytes.clone(), bytes.len() as u64).file_name(file_name.to_owned())
    };
    // `mime_type` was checked by the caller; the fallback keeps this total.
    let part = part().mime_str(mime_type).unwrap_or_else(|_| part());
    Form::new().part("file", part)
}
