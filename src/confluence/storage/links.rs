//! Where `ac:link` and `ac:image` targets point.

/// Turns the targets of `ac:link`/`ac:image` into URLs.
pub trait LinkResolver {
    /// URL of a page given its title (and space key, when the link names one).
    fn page_url(&self, space_key: Option<&str>, title: &str) -> String;
    /// URL of a file attached to the page being converted.
    fn attachment_url(&self, filename: &str) -> String;
}

/// Resolves links the way both Confluence flavors accept without a lookup:
/// `/display/{space}/{title}` redirects to the page with that title, and
/// `/download/attachments/{page}/{file}` serves an attachment.
#[derive(Debug, Clone)]
pub struct SiteLinks {
    /// Site root including any context path (Cloud: `https://x.atlassian.net/wiki`).
    pub root: String,
    /// Space of the page being converted, for links that name no space.
    pub space_key: String,
    pub page_id: String,
}

impl LinkResolver for SiteLinks {
    fn page_url(&self, space_key: Option<&str>, title: &str) -> String {
        let space = space_key.unwrap_or(&self.space_key);
        format!(
            "{}/display/{}/{}",
            self.root.trim_end_matches('/'),
            encode_path(space),
            encode_path(title).replace("%20", "+")
        )
    }

    fn attachment_url(&self, filename: &str) -> String {
        format!(
            "{}/download/attachments/{}/{}",
            self.root.trim_end_matches('/'),
            encode_path(&self.page_id),
            encode_path(filename)
        )
    }
}

fn encode_path(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
