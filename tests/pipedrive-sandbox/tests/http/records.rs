//! Leads and conversion, deals, notes and files.

use pipedrive_sandbox::PipedriveSandboxConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Pd, id_of, person};

#[tokio::test]
async fn leads_need_a_person_or_organization() {
    let pd = Pd::new().await;
    let pid = person(&pd, "Lead Person", "+351933333333").await;
    let labels = pd.get("/v1/leadLabels").await;
    let hot = labels.body["data"][0]["id"]
        .as_str()
        .expect("label")
        .to_string();
    let sources = pd.get("/v1/leadSources").await;
    assert!(
        sources.body["data"]
            .as_array()
            .expect("sources")
            .iter()
            .any(|s| s["name"] == "API")
    );
    let created = pd
        .post(
            "/v1/leads",
            json!({"title": "WhatsApp: Lead Person", "person_id": pid, "label_ids": [hot],
            "value": {"amount": 0, "currency": "EUR"}, "visible_to": "3"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let lead = &created.body["data"];
    let id = lead["id"].as_str().expect("id").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert_eq!(lead["source_name"], "API");
    assert_eq!(
        pd.post("/v1/leads", json!({"title": "Orphan"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        pd.post(
            "/v1/leads",
            json!({"title": "Bad vis", "person_id": pid, "visible_to": "7"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    let listed = pd.get(&format!("/v1/leads?person_id={pid}")).await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    let patched = pd
        .call(
            Method::PATCH,
            &format!("/v1/leads/{id}"),
            Some(json!({"title": "Renamed", "expected_close_date": "2026-06-01"})),
        )
        .await;
    assert_eq!(patched.body["data"]["title"], "Renamed");
    let missing = pd.get(&format!("/v1/leads/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["error"], "requested lead not found");
    let unlinked = pd
        .call(
            Method::PATCH,
            &format!("/v1/leads/{id}"),
            Some(json!({"person_id": null})),
        )
        .await;
    assert_eq!(unlinked.status, StatusCode::BAD_REQUEST);
    assert_eq!(pd.sb.leads().len(), 1);
    let v = pd.sb.contract_violations();
    assert!(
        v.iter().all(|x| x.contains("POST /v1/leads request")),
        "{v:#?}"
    );
}

#[tokio::test]
async fn lead_conversion_moves_notes_and_files_and_deletes_the_lead() {
    let pd = Pd::new().await;
    let pid = person(&pd, "Convert Me", "+351944444444").await;
    let lead = pd
        .post(
            "/v1/leads",
            json!({"title": "To convert", "person_id": pid}),
        )
        .await;
    let lead_id = lead.body["data"]["id"].as_str().expect("lead").to_string();
    let note = pd
        .post(
            "/v1/notes",
            json!({"content": "<p>chat</p>", "lead_id": lead_id, "person_id": pid}),
        )
        .await;
    let note_id = id_of(&note.body);
    let form = reqwest::multipart::Form::new()
        .text("lead_id", lead_id.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"img".to_vec())
                .file_name("photo.jpg")
                .mime_str("image/jpeg")
                .expect("mime"),
        );
    let up = pd
        .http
        .post(pd.url("/v1/files"))
        .bearer_auth(&pd.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let file: Value = up.json().await.expect("json");
    let file_id = file["data"]["id"].as_u64().expect("file");
    let started = pd
        .post(&format!("/api/v2/leads/{lead_id}/convert/deal"), json!({}))
        .await;
    let cid = started.body["data"]["conversion_id"]
        .as_str()
        .expect("conversion")
        .to_string();
    let status_path = format!("/api/v2/leads/{lead_id}/convert/status/{cid}");
    let first = pd.get(&status_path).await;
    assert_eq!(first.body["data"]["status"], "running");
    assert_eq!(
        pd.get(&format!("/v1/leads/{lead_id}")).await.status,
        StatusCode::OK,
        "still a lead while running"
    );
    let done = pd.get(&status_path).await;
    assert_eq!(done.body["data"]["status"], "completed");
    let deal_id = done.body["data"]["deal_id"].as_u64().expect("deal");
    assert_eq!(
        pd.get(&format!("/v1/leads/{lead_id}")).await.body["error"],
        "requested lead not found"
    );
    let n = pd.get(&format!("/v1/notes/{note_id}")).await;
    assert_eq!(
        (
            n.body["data"]["deal_id"].as_u64(),
            n.body["data"]["lead_id"].clone()
        ),
        (Some(deal_id), Value::Null)
    );
    let f = pd.get(&format!("/v1/files/{file_id}")).await;
    assert_eq!(f.body["data"]["deal_id"], deal_id);
    let deals = pd
        .get(&format!(
            "/api/v2/deals?person_id={pid}&include_fields=source_lead_id"
        ))
        .await;
    assert_eq!(deals.body["data"][0]["source_lead_id"], lead_id.as_str());
    let plain = pd.get(&format!("/api/v2/deals/{deal_id}")).await;
    assert!(
        plain.body["data"].get("source_lead_id").is_none(),
        "only when asked for"
    );
    assert_eq!(
        pd.get(&format!("/v1/deals/{deal_id}/files")).await.body["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // A conversion done in the UI has the same effect.
    let other = pd
        .post("/v1/leads", json!({"title": "UI", "person_id": pid}))
        .await;
    let other_id = other.body["data"]["id"].as_str().expect("id").to_string();
    let ui_deal = pd.sb.convert_lead_in_ui(&other_id).expect("converted");
    assert!(
        pd.sb
            .deals()
            .iter()
            .any(|d| d["id"] == ui_deal && d["source_lead_id"] == other_id.as_str())
    );
    assert!(pd.sb.leads().is_empty());
    pd.assert_clean();
}

#[tokio::test]
async fn deals_pipelines_and_stages() {
    let pd = Pd::new().await;
    let pid = person(&pd, "Deal Person", "+351955555555").await;
    let pipelines = pd.get("/api/v2/pipelines").await;
    let list = pipelines.body["data"]
        .as_array()
        .expect("pipelines")
        .clone();
    assert_eq!(list.len(), 2);
    let second = list[1]["id"].as_u64().expect("id");
    let stages = pd
        .get(&format!("/api/v2/stages?pipeline_id={second}"))
        .await;
    assert!(
        stages.body["data"]
            .as_array()
            .expect("stages")
            .iter()
            .all(|s| s["pipeline_id"] == second)
    );
    let d = pd.post("/api/v2/deals", json!({"title": "WhatsApp: Deal Person", "person_id": pid, "value": 10, "currency": "EUR"})).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(
        d.body["data"]["pipeline_id"], list[0]["id"],
        "default pipeline"
    );
    let deal = id_of(&d.body);
    let moved = pd
        .call(
            Method::PATCH,
            &format!("/api/v2/deals/{deal}"),
            Some(json!({"pipeline_id": second})),
        )
        .await;
    assert_eq!(moved.body["data"]["stage_id"], stages.body["data"][0]["id"]);
    pd.call(
        Method::PATCH,
        &format!("/api/v2/deals/{deal}"),
        Some(json!({"status": "won"})),
    )
    .await;
    let open = pd
        .get(&format!("/api/v2/deals?person_id={pid}&status=open"))
        .await;
    assert_eq!(open.body["data"].as_array().map(Vec::len), Some(0));
    let won = pd
        .get(&format!(
            "/api/v2/deals?person_id={pid}&status=open,won&sort_by=update_time&sort_direction=desc"
        ))
        .await;
    assert_eq!(won.body["data"][0]["id"], deal);
    assert_eq!(
        pd.post("/api/v2/deals", json!({"title": "No link"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        pd.post(
            "/api/v2/deals",
            json!({"title": "T", "person_id": pid, "value": "10"})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    let v = pd.sb.contract_violations();
    assert!(
        v.iter().all(|x| x.contains("POST /api/v2/deals request")),
        "{v:#?}"
    );
}

#[tokio::test]
async fn notes_are_sanitised_limited_and_listed() {
    let pd = Pd::new().await;
    let pid = person(&pd, "Note Person", "+351966666666").await;
    let deal = id_of(
        &pd.post("/api/v2/deals", json!({"title": "D", "person_id": pid}))
            .await
            .body,
    );
    let html = "<p><b>WhatsApp Chat</b></p><p onclick=\"x()\">09:14 ← Ana: Hi!<script>alert(1)</script><br>09:15 → Rui</p>";
    let n = pd
        .post(
            "/v1/notes",
            json!({"content": html, "person_id": pid, "deal_id": deal, "pinned_to_person_flag": 1}),
        )
        .await;
    assert_eq!(n.status, StatusCode::OK, "{}", n.body);
    let note = &n.body["data"];
    assert_eq!(
        note["content"],
        "<p><b>WhatsApp Chat</b></p><p>09:14 ← Ana: Hi!<br>09:15 → Rui</p>"
    );
    assert_eq!(note["pinned_to_person_flag"], true);
    assert_eq!(note["person"]["name"], "Note Person");
    assert_eq!(note["user"]["is_you"], true);
    let id = note["id"].as_u64().expect("id");
    assert_eq!(
        pd.post(
            "/v1/notes",
            json!({"content": "x".repeat(100_001), "person_id": pid})
        )
        .await
        .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        pd.post(
            "/v1/notes",
            json!({"content": "x".repeat(100_000), "person_id": pid})
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        pd.post("/v1/notes", json!({"content": "no target"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    let put = pd
        .call(
            Method::PUT,
            &format!("/v1/notes/{id}"),
            Some(json!({"content": "<p>replaced</p>"})),
        )
        .await;
    assert_eq!(put.body["data"]["content"], "<p>replaced</p>");
    let page = pd
        .get(&format!("/v1/notes?person_id={pid}&start=0&limit=1"))
        .await;
    assert_eq!(page.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        page.body["additional_data"]["pagination"]["more_items_in_collection"],
        true
    );
    assert_eq!(page.body["additional_data"]["pagination"]["next_start"], 1);
    assert_eq!(
        pd.get(&format!("/v1/notes?deal_id={deal}")).await.body["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(pd.sb.notes_of("deal", &deal.to_string()).len(), 1);
    assert_eq!(
        pd.call(Method::DELETE, &format!("/v1/notes/{id}"), None)
            .await
            .body["data"],
        true
    );
    assert_eq!(
        pd.get(&format!("/v1/notes/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(pd.sb.notes().len(), 1);
    pd.assert_clean();
}

#[tokio::test]
async fn files_upload_list_download_and_size_limit() {
    let cfg = PipedriveSandboxConfig {
        file_max_bytes: 1024,
        ..Default::default()
    };
    let pd = Pd::with(cfg).await;
    let pid = person(&pd, "File Person", "+351977777777").await;
    let upload = |bytes: Vec<u8>, link: Option<(&'static str, String)>| {
        let mut form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("voice.ogg")
                .mime_str("audio/ogg")
                .expect("mime"),
        );
        if let Some((k, v)) = link {
            form = form.text(k, v);
        }
        pd.http
            .post(pd.url("/v1/files"))
            .bearer_auth(&pd.token)
            .multipart(form)
            .send()
    };
    let ok = upload(b"OggS-data".to_vec(), Some(("person_id", pid.to_string())))
        .await
        .expect("upload");
    assert_eq!(ok.status(), StatusCode::OK);
    let body: Value = ok.json().await.expect("json");
    let fid = id_of(&body);
    assert_eq!(body["data"]["file_size"], 9);
    assert_eq!(body["data"]["person_name"], "File Person");
    let too_big = upload(vec![0u8; 2048], Some(("person_id", pid.to_string())))
        .await
        .expect("upload");
    assert_eq!(too_big.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err: Value = too_big.json().await.expect("json");
    assert_eq!(err["success"], false);
    let unlinked = upload(b"x".to_vec(), None).await.expect("upload");
    assert_eq!(unlinked.status(), StatusCode::BAD_REQUEST);
    let listed = pd.get(&format!("/v1/persons/{pid}/files")).await;
    assert_eq!(listed.body["data"][0]["id"], fid);
    assert_eq!(
        pd.get("/v1/files").await.body["additional_data"]["pagination"]["more_items_in_collection"],
        false
    );
    let dl = pd
        .http
        .get(pd.url(&format!("/v1/files/{fid}/download")))
        .bearer_auth(&pd.token)
        .send()
        .await
        .expect("download");
    assert_eq!(dl.headers()["content-type"], "audio/ogg");
    assert_eq!(dl.bytes().await.expect("bytes").as_ref(), b"OggS-data");
    assert_eq!(pd.sb.files().len(), 1);
    let recorded = pd
        .sb
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/files")
        .expect("recorded");
    assert_eq!(recorded.body.expect("body")["file"], "voice.ogg");
    pd.sb.expire_access_tokens();
    let refused = upload(b"late".to_vec(), Some(("person_id", pid.to_string())))
        .await
        .expect("upload");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    pd.assert_clean();
}
