//! Files (reference §7): uploaded to a person, deal or lead, and found
//! again when an upload's answer was lost.

use bytes::Bytes;
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use super::PipedriveApi;
use super::api::{Module, data_id, id_text};
use super::call::V1_PAGE;
use crate::crm::CrmError;
use crate::model::RecordRef;

const FILES: &str = "/v1/files";

/// What a file part without a usable MIME type is sent as.
const OCTET_STREAM: &str = "application/octet-stream";

/// Whether a file item is the upload looked for.
fn is_upload(file: &Value, name: &str, size: u64, since: i64) -> bool {
    file["file_name"].as_str() == Some(name)
        && file["file_size"].as_u64() == Some(size)
        && added_at(file).is_some_and(|t| t >= since)
}

/// A v1 time stamp (`YYYY-MM-DD HH:MM:SS`, UTC, or RFC 3339) in unix seconds.
fn added_at(item: &Value) -> Option<i64> {
    let raw = item["add_time"].as_str()?;
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S")
        .map(|t| t.and_utc().timestamp())
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|t| t.timestamp())
        })
}

fn file_form(bytes: &Bytes, file_name: &str, mime_type: &str, link: (&str, &str)) -> Form {
    let part = || {
        Part::stream_with_length(bytes.clone(), bytes.len() as u64).file_name(file_name.to_owned())
    };
    let part = part()
        .mime_str(mime_type)
        .or_else(|_| part().mime_str(OCTET_STREAM))
        .unwrap_or_else(|_| part());
    Form::new()
        .part("file", part)
        .text(link.0.to_owned(), link.1.to_owned())
}

impl PipedriveApi {
    /// `POST /v1/files` (multipart: `file` and the parent's id field).
    pub(super) async fn upload_file(
        &self,
        parent: &RecordRef,
        file_name: &str,
        mime_type: &str,
        bytes: Vec<u8>,
    ) -> Result<String, CrmError> {
        let link = Module::of(&parent.module)?.link_field();
        // A multipart body is used up by sending: each attempt gets a new
        // form over the same bytes.
        let bytes = Bytes::from(bytes);
        let answer = self
            .call(Method::POST, FILES, &[], |r| {
                r.multipart(file_form(&bytes, file_name, mime_type, (link, &parent.id)))
            })
            .await?;
        data_id(&answer["data"], "file")
    }

    /// The record's files, newest first, until one is older than `since`.
    /// Leads have no file list of their own: all files are read for them.
    pub(super) async fn file_named(
        &self,
        parent: &RecordRef,
        file_name: &str,
        size: u64,
        since: i64,
    ) -> Result<Option<String>, CrmError> {
        let module = Module::of(&parent.module)?;
        let (template, ids, limit): (&'static str, Vec<&str>, &str) = match module {
            Module::Persons => ("/v1/persons/{id}/files", vec![parent.id.as_str()], "100"),
            Module::Deals => ("/v1/deals/{id}/files", vec![parent.id.as_str()], "100"),
            Module::Leads => (FILES, Vec::new(), V1_PAGE),
        };
        let mut found = None;
        self.v1_scan(
            template,
            &ids,
            &[("sort", "add_time DESC"), ("limit", limit)],
            |file| {
                let own =
                    module != Module::Leads || file["lead_id"].as_str() == Some(parent.id.as_str());
                if own && is_upload(file, file_name, size, since) {
                    found = id_text(&file["id"]);
                    return found.is_some();
                }
                // Sorted newest first: the rest is older still.
                added_at(file).is_some_and(|t| t < since)
            },
        )
        .await?;
        Ok(found)
    }
}
