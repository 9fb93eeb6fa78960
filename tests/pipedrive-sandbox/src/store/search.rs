//! Person search (`GET /api/v2/persons/search`) and field search
//! (`GET /api/v2/itemSearch/field`).
//!
//! Matching (the sandbox's model; Pipedrive documents only "exact_match:
//! whole-value match, case-insensitive"): values are compared as stored —
//! no digit or punctuation normalisation — case-insensitively; `exact_match`
//! compares whole values, otherwise the term may occur anywhere. Searches see
//! the person as indexed, i.e. as it was `search_index_delay` ago.

use std::time::Instant;

use serde_json::{Value, json};

use super::page::{offset_page, q_u64, v2_list};
use super::persons::SearchDoc;
use super::validate::failed;
use super::{Answer, Ctx, Entity, Reply, Store, bad_request};

const PERSON_SEARCH_FIELDS: &[&str] = &["name", "email", "phone", "notes", "custom_fields"];

/// How a term must relate to a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// Whole value, case-insensitive (persons search `exact_match=true`).
    ExactFold,
    /// Substring, case-insensitive (persons search default).
    ContainsFold,
    /// itemSearch/field `match=exact|beginning|middle`: case-sensitive.
    Exact,
    Beginning,
    Middle,
}

/// Score of a match: 1 for a whole-value match, otherwise the share of the
/// value the term covers; `None` when it does not match.
fn score(m: Match, term: &str, value: &str) -> Option<f64> {
    let (t, v) = match m {
        Match::ExactFold | Match::ContainsFold => (term.to_lowercase(), value.to_lowercase()),
        _ => (term.to_string(), value.to_string()),
    };
    let hit = match m {
        Match::ExactFold | Match::Exact => t == v,
        Match::ContainsFold | Match::Middle => v.contains(&t),
        Match::Beginning => v.starts_with(&t),
    };
    let len = v.chars().count().max(1) as f64;
    hit.then(|| (t.chars().count() as f64 / len).min(1.0))
}

fn best(m: Match, term: &str, values: &[String]) -> Option<f64> {
    values
        .iter()
        .filter_map(|v| score(m, term, v))
        .fold(None, |acc: Option<f64>, s| {
            Some(acc.map_or(s, |a| a.max(s)))
        })
}

fn text_of_html(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl Store {
    fn term_and_len(ctx: &Ctx, exact: bool) -> Result<String, Reply> {
        let term = ctx.q("term").unwrap_or("").to_string();
        let min = if exact { 1 } else { 2 };
        if term.trim().chars().count() < min {
            return Err(bad_request(failed(
                "term",
                &format!("must be at least {min} characters long"),
            )));
        }
        Ok(term)
    }

    /// Notes attached to a person, as plain text.
    fn person_note_texts(&self, company_id: u64, person_id: u64) -> Vec<String> {
        self.notes
            .values()
            .filter(|n| n.company_id == company_id && n.field_u64("person_id") == Some(person_id))
            .map(|n| text_of_html(&n.content()))
            .collect()
    }

    fn person_item(
        &self,
        company_id: u64,
        id: u64,
        doc: &SearchDoc,
        custom: Vec<String>,
        notes: Vec<String>,
    ) -> Value {
        let organization = doc.org_id.map_or(
            Value::Null,
            |o| json!({"id": o, "name": self.org_name(company_id, o)}),
        );
        json!({
            "id": id, "type": "person", "name": doc.name,
            "phones": doc.phones, "emails": doc.emails,
            "visible_to": doc.visible_to, "owner": {"id": doc.owner_id},
            "organization": organization, "custom_fields": custom, "notes": notes
        })
    }

    pub fn search_persons(&mut self, ctx: &Ctx) -> Answer {
        self.search_persons_inner(ctx)
    }

    fn search_persons_inner(&self, ctx: &Ctx) -> Result<Reply, Reply> {
        let exact = match ctx.q("exact_match") {
            None | Some("false") => false,
            Some("true") => true,
            Some(_) => return Err(bad_request(failed("exact_match", "must be true or false"))),
        };
        let term = Self::term_and_len(ctx, exact)?;
        let fields: Vec<&str> = match ctx.q("fields") {
            None => PERSON_SEARCH_FIELDS.to_vec(),
            Some(s) => s.split(',').map(str::trim).collect(),
        };
        if let Some(bad) = fields.iter().find(|f| !PERSON_SEARCH_FIELDS.contains(f)) {
            return Err(bad_request(failed(
                "fields",
                &format!("{bad} is not one of {}", PERSON_SEARCH_FIELDS.join(", ")),
            )));
        }
        let org_filter = q_u64(ctx, "organization_id")?;
        let m = if exact {
            Match::ExactFold
        } else {
            Match::ContainsFold
        };
        let company = ctx.caller.company_id;
        let now = Instant::now();
        let mut hits: Vec<(f64, u64, Value)> = Vec::new();
        for p in self.persons.values().filter(|p| p.company_id == company) {
            let Some(doc) = p.indexed(now) else {
                continue;
            };
            if org_filter.is_some_and(|o| doc.org_id != Some(o)) {
                continue;
            }
            let mut scores = Vec::new();
            let on = |f: &str| fields.contains(&f);
            if on("name") {
                scores.extend(score(m, &term, &doc.name));
            }
            if on("email") {
                scores.extend(best(m, &term, &doc.emails));
            }
            if on("phone") {
                scores.extend(best(m, &term, &doc.phones));
            }
            let custom: Vec<String> = if on("custom_fields") {
                doc.custom
                    .iter()
                    .filter(|(_, v)| score(m, &term, v).is_some())
                    .map(|(_, v)| v.clone())
                    .collect()
            } else {
                Vec::new()
            };
            scores.extend(best(m, &term, &custom));
            let notes: Vec<String> = if on("notes") {
                self.person_note_texts(company, p.id())
                    .into_iter()
                    .filter(|t| score(m, &term, t).is_some())
                    .collect()
            } else {
                Vec::new()
            };
            scores.extend(best(m, &term, &notes));
            if let Some(s) = scores.into_iter().reduce(f64::max) {
                let item = self.person_item(company, p.id(), doc, custom, notes);
                hits.push((s, p.id(), item));
            }
        }
        hits.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let items = hits
            .into_iter()
            .map(
                |(s, _, item)| json!({"result_score": (s * 1000.0).round() / 1000.0, "item": item}),
            )
            .collect();
        let (page, next) = offset_page(ctx, items)?;
        Ok(Reply::json(
            200,
            json!({"success": true, "data": {"items": page}, "additional_data": {"next_cursor": next}}),
        ))
    }

    pub fn item_search_field(&mut self, ctx: &Ctx) -> Answer {
        self.item_search_field_inner(ctx)
    }

    fn item_search_field_inner(&self, ctx: &Ctx) -> Result<Reply, Reply> {
        let m = match ctx.q("match").unwrap_or("exact") {
            "exact" => Match::Exact,
            "beginning" => Match::Beginning,
            "middle" => Match::Middle,
            _ => {
                return Err(bad_request(failed(
                    "match",
                    "must be one of exact, beginning, middle",
                )));
            }
        };
        let term = Self::term_and_len(ctx, m == Match::Exact)?;
        let field = ctx.q("field").unwrap_or("");
        if field.is_empty() {
            return Err(bad_request(failed("field", "is required")));
        }
        let company = ctx.caller.company_id;
        let entity = ctx.q("entity_type").unwrap_or("");
        let mut found: Vec<(u64, String)> = Vec::new();
        match Entity::parse(entity) {
            Some(Entity::Person) if entity == "person" => {
                let now = Instant::now();
                for p in self.persons.values().filter(|p| p.company_id == company) {
                    let Some(doc) = p.indexed(now) else { continue };
                    let values: Vec<String> = match field {
                        "name" => vec![doc.name.clone()],
                        "email" => doc.emails.clone(),
                        "phone" => doc.phones.clone(),
                        key => doc
                            .custom
                            .iter()
                            .filter(|(k, _)| k == key)
                            .map(|(_, v)| v.clone())
                            .collect(),
                    };
                    if best(m, &term, &values).is_some() {
                        found.push((p.id(), doc.name.clone()));
                    }
                }
            }
            Some(Entity::Deal) if entity == "deal" => {
                for d in self
                    .deals
                    .values()
                    .filter(|d| d.company_id == company && !d.is_deleted())
                {
                    let value = match field {
                        "title" => d.data.get("title").cloned(),
                        key => d
                            .data
                            .get("custom_fields")
                            .and_then(|c| c.get(key))
                            .cloned(),
                    };
                    if value
                        .and_then(|v| v.as_str().map(str::to_string))
                        .is_some_and(|v| score(m, &term, &v).is_some())
                    {
                        found.push((d.id(), d.title()));
                    }
                }
            }
            _ if ["lead", "organization", "product", "project"].contains(&entity) => {}
            _ => {
                return Err(bad_request(failed(
                    "entity_type",
                    "must be one of deal, lead, person, organization, product, project",
                )));
            }
        }
        let items = found
            .into_iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        let (page, next) = offset_page(ctx, items)?;
        Ok(v2_list(page, next))
    }
}
