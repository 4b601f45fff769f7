//! Query parameters, expansions and paging cursors shared by the APIs.

use super::error_json;
use crate::data::Status;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
pub(super) struct Q(Vec<(String, String)>);

impl Q {
    pub(super) fn parse(raw: Option<String>) -> Q {
        Q(raw
            .map(|r| {
                url::form_urlencoded::parse(r.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable, comma-separable parameter.
    pub(super) fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub(super) fn num(&self, key: &str, default: usize) -> Result<usize, Box<Response>> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Box::new(error_json(StatusCode::BAD_REQUEST, &format!("bad {key}")))),
        }
    }

    /// The query with `start`/`limit`/`cursor` replaced, for `next` links.
    pub(super) fn with_paging(&self, paging: &[(&str, String)]) -> String {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            if !paging.iter().any(|(p, _)| p == k) {
                ser.append_pair(k, v);
            }
        }
        for (k, v) in paging {
            ser.append_pair(k, v);
        }
        ser.finish()
    }
}

/// The statuses a listing asked for (`status=a,b` or repeated), or the
/// endpoint's default. `any` matches every status.
pub(super) fn wanted_status(q: &Q, default: &[Status]) -> Vec<Status> {
    let asked = q.list("status");
    if asked.is_empty() {
        return default.to_vec();
    }
    if asked.iter().any(|s| s == "any") {
        return vec![Status::Current, Status::Archived, Status::Trashed];
    }
    [Status::Current, Status::Archived, Status::Trashed]
        .into_iter()
        .filter(|s| asked.iter().any(|a| a == s.as_str()))
        .collect()
}

/// v2 listings return current and archived items unless told otherwise.
pub(super) const V2_DEFAULT_STATUS: &[Status] = &[Status::Current, Status::Archived];
/// v1 content endpoints return current items unless told otherwise.
pub(super) const V1_DEFAULT_STATUS: &[Status] = &[Status::Current];

pub(super) struct Expand {
    pub(super) version: bool,
    pub(super) ancestors: bool,
    pub(super) restrictions: bool,
    pub(super) labels: bool,
    pub(super) body: bool,
    /// `body.view` / `body.export_view`: storage rendered to HTML.
    pub(super) view: bool,
    pub(super) export_view: bool,
    pub(super) space: bool,
}

impl Expand {
    pub(super) fn parse(q: &Q) -> Expand {
        let parts: Vec<String> = q.list("expand");
        let has = |p: &str| {
            parts
                .iter()
                .any(|e| e == p || e.starts_with(&format!("{p}.")))
        };
        Expand {
            version: has("version"),
            ancestors: has("ancestors"),
            restrictions: parts.iter().any(|e| e.starts_with("restrictions.read")),
            labels: has("metadata.labels") || has("labels"),
            body: has("body.storage"),
            view: has("body.view"),
            export_view: has("body.export_view"),
            space: has("space"),
        }
    }
}

pub(super) fn encode_cursor(last_id: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("after:{last_id}"))
}

pub(super) fn decode_cursor(c: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("after:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip() {
        assert_eq!(decode_cursor(&encode_cursor(12345)), Some(12345));
        assert_eq!(decode_cursor("garbage"), None);
    }
}
