//! Pagination (reference §2): v1 `start`/`limit` with
//! `additional_data.pagination`, v2 `limit`/`cursor` with
//! `additional_data.next_cursor`.
//!
//! v2 cursors are keyset cursors in the shape of the spec's example
//! (base64url of `{"field","fieldValue","sortDirection","id"}` naming the
//! first item of the next page), so items added or removed between pages
//! neither repeat nor vanish.

use std::cmp::Ordering;

use base64::Engine;
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde_json::{Value, json};

use super::validate::failed;
use super::{Answer, Ctx, Reply, bad_request};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// v2 `limit` (default 100, at most 500; strict: anything else is a 400).
pub fn v2_limit(ctx: &Ctx) -> Result<usize, Reply> {
    match ctx.q("limit") {
        None => Ok(100),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(bad_request(
                "Validation failed: limit: must be an integer from 1 to 500",
            )),
        },
    }
}

/// v1 `start` and `limit` (`limit` at most `max`).
pub fn v1_window(ctx: &Ctx, max: usize) -> Result<(usize, usize), Reply> {
    let start = match ctx.q("start") {
        None => 0,
        Some(s) => s
            .parse::<usize>()
            .map_err(|_| bad_request("start must be a non-negative integer"))?,
    };
    let limit = match ctx.q("limit") {
        None => max.min(100),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n >= 1 => n.min(max),
            _ => return Err(bad_request("limit must be a positive integer")),
        },
    };
    Ok((start, limit))
}

/// v1 `sort`: `field` or `field ASC|DESC` (one of `allowed`); sorts the
/// items by it, then by id (default: `default` ascending).
pub fn v1_sorted(
    ctx: &Ctx,
    mut items: Vec<Value>,
    allowed: &[&str],
    default: &str,
) -> Result<Vec<Value>, Reply> {
    let spec = ctx.q("sort").unwrap_or(default);
    let mut parts = spec.split_whitespace();
    let field = parts.next().unwrap_or(default);
    let desc = match parts.next() {
        None => false,
        Some(d) if d.eq_ignore_ascii_case("asc") => false,
        Some(d) if d.eq_ignore_ascii_case("desc") => true,
        Some(d) => return Err(bad_request(format!("sort: unknown direction {d}"))),
    };
    if !allowed.contains(&field) {
        return Err(bad_request(format!("sort: unsupported field {field}")));
    }
    items.sort_by(|a, b| {
        let (ka, kb) = (key_of(a, field), key_of(b, field));
        let o = cmp_values(ka.0, kb.0).then_with(|| cmp_values(ka.1, kb.1));
        if desc { o.reverse() } else { o }
    });
    Ok(items)
}

/// v1 `updated_since` (RFC 3339 or `YYYY-MM-DD HH:MM:SS`, UTC).
pub fn v1_since(ctx: &Ctx) -> Result<Option<DateTime<Utc>>, Reply> {
    ctx.q("updated_since")
        .map(|s| parse_v1_time(s).ok_or_else(|| bad_request("updated_since must be a date-time")))
        .transpose()
}

/// Whether an item's `update_time` is at or after `since`.
pub fn updated_since(item: &Value, since: Option<DateTime<Utc>>) -> bool {
    since.is_none_or(|s| {
        item.get("update_time")
            .and_then(Value::as_str)
            .and_then(parse_v1_time)
            .is_some_and(|u| u >= s)
    })
}

/// RFC 3339 or `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn parse_v1_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// An optional integer query parameter (anything else is a 400).
pub fn q_u64(ctx: &Ctx, k: &str) -> Result<Option<u64>, Reply> {
    ctx.q(k)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad_request(failed(k, "must be an integer")))
        })
        .transpose()
}

/// Integer filters by field name (`person_id=…`, `owner_id=…`).
pub fn q_filters<'a>(ctx: &Ctx, names: &[&'a str]) -> Result<Vec<(&'a str, Option<u64>)>, Reply> {
    names.iter().map(|k| Ok((*k, q_u64(ctx, k)?))).collect()
}

/// Whether `item` has every filter's value (unset filters match).
pub fn filters_match(item: &Value, filters: &[(&str, Option<u64>)]) -> bool {
    filters
        .iter()
        .all(|(k, v)| v.is_none_or(|v| item.get(*k).and_then(Value::as_u64) == Some(v)))
}

/// v2 `ids`: up to 100 comma-separated integers.
pub fn q_ids(ctx: &Ctx) -> Result<Option<Vec<u64>>, Reply> {
    let Some(s) = ctx.q("ids") else {
        return Ok(None);
    };
    let ids: Vec<u64> = s
        .split(',')
        .map(|x| x.trim().parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad_request(failed("ids", "must be a comma-separated list of integers")))?;
    if ids.len() > 100 {
        return Err(bad_request(failed("ids", "at most 100 ids")));
    }
    Ok(Some(ids))
}

/// v2 `updated_since` (inclusive) and `updated_until` (exclusive), RFC 3339.
pub struct UpdatedWindow {
    since: Option<DateTime<FixedOffset>>,
    until: Option<DateTime<FixedOffset>>,
}

impl UpdatedWindow {
    pub fn from_query(ctx: &Ctx) -> Result<Self, Reply> {
        let time = |k: &str| {
            ctx.q(k)
                .map(|v| {
                    DateTime::parse_from_rfc3339(v)
                        .map_err(|_| bad_request(failed(k, "must be an RFC 3339 date-time")))
                })
                .transpose()
        };
        Ok(Self {
            since: time("updated_since")?,
            until: time("updated_until")?,
        })
    }

    pub fn contains(&self, item: &Value) -> bool {
        let u = item
            .get("update_time")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        self.since.is_none_or(|s| u.is_some_and(|u| u >= s))
            && self.until.is_none_or(|s| u.is_some_and(|u| u < s))
    }
}

/// One v1 page and its pagination object.
pub fn v1_page(items: Vec<Value>, start: usize, limit: usize) -> (Vec<Value>, Value) {
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(start).take(limit).collect();
    let more = start + page.len() < total;
    let mut pagination = json!({
        "start": start,
        "limit": limit,
        "more_items_in_collection": more
    });
    if more {
        pagination["next_start"] = json!(start + limit);
    }
    (page, pagination)
}

/// A v1 list in the `additional_data.pagination` shape.
pub fn v1_list(ctx: &Ctx, items: Vec<Value>, max: usize) -> Answer {
    let (start, limit) = v1_window(ctx, max)?;
    let (page, pagination) = v1_page(items, start, limit);
    Ok(Reply::list(page, json!({ "pagination": pagination })))
}

/// A v1 list whose `additional_data` is the flat pagination object (leads,
/// per-entity file lists, field lists — as their spec entries say).
pub fn v1_flat_list(ctx: &Ctx, items: Vec<Value>, max: usize) -> Answer {
    let (start, limit) = v1_window(ctx, max)?;
    let (page, pagination) = v1_page(items, start, limit);
    Ok(Reply::list(page, pagination))
}

pub fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

fn key_of<'a>(item: &'a Value, field: &str) -> (&'a Value, &'a Value) {
    (
        item.get(field).unwrap_or(&Value::Null),
        item.get("id").unwrap_or(&Value::Null),
    )
}

/// v2 sorting parameters: `sort_by` (one of `allowed`, default `id`) and
/// `sort_direction` (`asc`/`desc`).
pub fn v2_sort(ctx: &Ctx, allowed: &[&str]) -> Result<(String, bool), Reply> {
    let by = ctx.q("sort_by").unwrap_or("id");
    if !allowed.contains(&by) {
        return Err(bad_request(format!(
            "Validation failed: sort_by: must be one of {}",
            allowed.join(", ")
        )));
    }
    let desc = match ctx.q("sort_direction").unwrap_or("asc") {
        "asc" => false,
        "desc" => true,
        _ => {
            return Err(bad_request(
                "Validation failed: sort_direction: must be one of asc, desc",
            ));
        }
    };
    Ok((by.to_string(), desc))
}

/// Sorts `items` and cuts the page the cursor points at; returns the page
/// and the next cursor (`None` at the end).
pub fn keyset_page(
    ctx: &Ctx,
    mut items: Vec<Value>,
    sort_by: &str,
    desc: bool,
) -> Result<(Vec<Value>, Option<String>), Reply> {
    let limit = v2_limit(ctx)?;
    let order = |a: &Value, b: &Value| {
        let (ka, kb) = (key_of(a, sort_by), key_of(b, sort_by));
        let o = cmp_values(ka.0, kb.0).then_with(|| cmp_values(ka.1, kb.1));
        if desc { o.reverse() } else { o }
    };
    items.sort_by(order);
    let start = match ctx.q("cursor") {
        None => 0,
        Some(c) => {
            let invalid = || bad_request("Validation failed: cursor: invalid cursor");
            let decoded: Value = B64
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(invalid)?;
            let direction = if desc { "desc" } else { "asc" };
            if decoded.get("field").and_then(Value::as_str) != Some(sort_by)
                || decoded.get("sortDirection").and_then(Value::as_str) != Some(direction)
            {
                return Err(invalid());
            }
            let mut mark = serde_json::Map::new();
            mark.insert(
                sort_by.to_string(),
                decoded.get("fieldValue").cloned().unwrap_or(Value::Null),
            );
            mark.insert(
                "id".into(),
                decoded.get("id").cloned().unwrap_or(Value::Null),
            );
            let mark = Value::Object(mark);
            items
                .iter()
                .position(|i| order(i, &mark) != Ordering::Less)
                .unwrap_or(items.len())
        }
    };
    let next = items.get(start + limit).map(|first| {
        let (value, id) = key_of(first, sort_by);
        let c = json!({
            "field": sort_by,
            "fieldValue": value,
            "sortDirection": if desc { "desc" } else { "asc" },
            "id": id
        });
        B64.encode(c.to_string())
    });
    let page = items.into_iter().skip(start).take(limit).collect();
    Ok((page, next))
}

/// A v2 list answer.
pub fn v2_list(page: Vec<Value>, next: Option<String>) -> Reply {
    Reply::list(page, json!({ "next_cursor": next }))
}

/// Offset cursors (search results have no stable sort key).
pub fn offset_page(ctx: &Ctx, items: Vec<Value>) -> Result<(Vec<Value>, Option<String>), Reply> {
    let limit = v2_limit(ctx)?;
    let start = match ctx.q("cursor") {
        None => 0,
        Some(c) => B64
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v.get("offset").and_then(Value::as_u64))
            .ok_or_else(|| bad_request("Validation failed: cursor: invalid cursor"))?
            as usize,
    };
    let next = (start + limit < items.len())
        .then(|| B64.encode(json!({"offset": start + limit}).to_string()));
    Ok((items.into_iter().skip(start).take(limit).collect(), next))
}
