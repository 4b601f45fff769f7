//! The `view` and `export_view` body representations: storage format
//! rendered to HTML, as Confluence does for readers (LlamaIndex's reader
//! asks for `body.export_view`, LangChain's comments for `body.view`).
//!
//! Only the macros the simulator's content uses are rendered; any other
//! `ac:`/`ri:` element is dropped and its text kept.

/// Where rendered links point: the site's web root, the page's space and id.
pub(crate) struct ViewLinks<'a> {
    pub base: &'a str,
    pub space_key: &'a str,
    pub page_id: u64,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn attr<'a>(attrs: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let at = attrs.find(&key)? + key.len();
    let end = attrs[at..].find('"')?;
    Some(&attrs[at..at + end])
}

fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub(crate) fn view_html(storage: &str, links: &ViewLinks<'_>) -> String {
    let base = links.base.trim_end_matches('/');
    let mut out = String::with_capacity(storage.len() + storage.len() / 4);
    // Closing markup of each open `ac:structured-macro`.
    let mut macros: Vec<&'static str> = Vec::new();
    let mut image_alt: Option<String> = None;
    let mut rest = storage;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            out.push_str(&escape(&after[..end]));
            rest = after.get(end + 3..).unwrap_or("");
            continue;
        }
        let Some(gt) = rest.find('>') else {
            out.push_str(&escape(rest));
            return out;
        };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let self_closing = tag.ends_with('/');
        let body = tag.trim_start_matches('/').trim_end_matches('/');
        let (name, attrs) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
        if !(name.starts_with("ac:") || name.starts_with("ri:")) {
            out.push('<');
            out.push_str(tag);
            out.push('>');
            continue;
        }
        match (name, closing) {
            // A macro without a body (`<ac:structured-macro ac:name="toc"/>`)
            // renders nothing here.
            ("ac:structured-macro", false) if self_closing => {}
            ("ac:structured-macro", false) => match attr(attrs, "ac:name").unwrap_or("") {
                "code" | "noformat" => {
                    out.push_str("<div class=\"code panel pdl\"><div class=\"codeContent panelContent pdl\"><pre class=\"syntaxhighlighter-pre\">");
                    macros.push("</pre></div></div>");
                }
                kind @ ("info" | "note" | "warning" | "tip") => {
                    out.push_str(&format!(
                        "<div class=\"confluence-information-macro confluence-information-macro-{kind}\"><div class=\"confluence-information-macro-body\">"
                    ));
                    macros.push("</div></div>");
                }
                _ => {
                    out.push_str("<div>");
                    macros.push("</div>");
                }
            },
            ("ac:structured-macro", true) => out.push_str(macros.pop().unwrap_or("")),
            ("ac:parameter", false) => {
                // Macro parameters configure rendering; they are not text.
                let end = rest.find("</ac:parameter>").unwrap_or(rest.len());
                rest = rest.get(end + "</ac:parameter>".len()..).unwrap_or("");
            }
            ("ac:emoticon", false) => {
                let e = escape(attr(attrs, "ac:name").unwrap_or("smile"));
                out.push_str(&format!(
                    "<img class=\"emoticon emoticon-{e}\" src=\"{base}/images/icons/emoticons/{e}.svg\" alt=\"({e})\">"
                ));
            }
            ("ac:image", false) => {
                image_alt = Some(attr(attrs, "ac:alt").unwrap_or("").to_string())
            }
            ("ac:image", true) => image_alt = None,
            ("ri:attachment", false) => {
                if let Some(alt) = &image_alt {
                    let file = attr(attrs, "ri:filename").unwrap_or("");
                    out.push_str(&format!(
                        "<img class=\"confluence-embedded-image\" src=\"{base}/download/attachments/{}/{}\" alt=\"{}\">",
                        links.page_id,
                        path_segment(file),
                        escape(alt)
                    ));
                }
            }
            ("ri:page", false) => {
                let title = attr(attrs, "ri:content-title").unwrap_or("");
                let space = attr(attrs, "ri:space-key").unwrap_or(links.space_key);
                out.push_str(&format!(
                    "<a href=\"{base}/display/{}/{}\">{}</a>",
                    path_segment(space),
                    path_segment(title),
                    title
                ));
            }
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_macros_the_simulator_writes() {
        let links = ViewLinks {
            base: "https://x.example/wiki",
            space_key: "ENG",
            page_id: 7,
        };
        let html = view_html(
            "<p>a <ac:emoticon ac:name=\"smile\" /></p><ac:structured-macro ac:name=\"code\" ac:schema-version=\"1\"><ac:parameter ac:name=\"language\">bash</ac:parameter><ac:plain-text-body><![CDATA[run <x> && y]]></ac:plain-text-body></ac:structured-macro><p>See <ac:link><ri:page ri:content-title=\"Other Page\" /></ac:link></p><ac:image ac:alt=\"d\"><ri:attachment ri:filename=\"d.png\" /></ac:image>",
            &links,
        );
        assert!(
            html.contains("<pre class=\"syntaxhighlighter-pre\">run &lt;x&gt; &amp;&amp; y</pre>"),
            "{html}"
        );
        assert!(!html.contains("bash"), "{html}");
        assert!(
            html.contains(
                "<a href=\"https://x.example/wiki/display/ENG/Other+Page\">Other Page</a>"
            ),
            "{html}"
        );
        assert!(html.contains("/download/attachments/7/d.png"), "{html}");
        assert!(!html.contains("ac:") && !html.contains("ri:"), "{html}");
    }
}
