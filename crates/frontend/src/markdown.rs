//! README rendering: CommonMark (with tables and strikethrough) to HTML that is safe to put in a
//! page. Raw HTML in the document is shown as text, links may only be relative or http(s)/mailto,
//! and relative links point into the repository at the same revision.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag};

/// Renders Markdown; relative links resolve against `blob_base` (files) and images against
/// `raw_base`, both URLs of the document's directory.
pub fn to_html(text: &str, blob_base: &str, raw_base: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(html) | Event::InlineHtml(html) => Event::Text(html),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: resolve(dest_url, blob_base),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: resolve(dest_url, raw_base),
            title,
            id,
        }),
        other => other,
    });
    let mut html = String::with_capacity(text.len() * 2);
    pulldown_cmark::html::push_html(&mut html, events);
    html
}

/// A link target made safe: absolute http(s) and mailto links stay, anchors stay, relative
/// paths are joined to `base`, anything else (such as `javascript:`) becomes `#`.
fn resolve<'a>(dest: CowStr<'a>, base: &str) -> CowStr<'a> {
    let lower = dest.trim().to_ascii_lowercase();
    if lower.starts_with("http://")
        || lower.starts_with("https://")
        || lower.starts_with("mailto:")
        || lower.starts_with('#')
    {
        return dest;
    }
    if lower.contains(':') || lower.starts_with("//") {
        return CowStr::Borrowed("#");
    }
    let relative = dest.trim_start_matches("./");
    if relative.starts_with('/') {
        return dest;
    }
    CowStr::from(format!("{}/{relative}", base.trim_end_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_and_script_links_are_neutralised() {
        let html = to_html(
            "# Title\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://e.com) [z](docs/a.md)\n\n![i](img.png)\n",
            "/r/-/blob",
            "/r/-/raw",
        );
        assert!(html.contains("<h1>Title</h1>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("href=\"#\""));
        assert!(html.contains("href=\"https://e.com\""));
        assert!(html.contains("href=\"/r/-/blob/docs/a.md\""));
        assert!(html.contains("src=\"/r/-/raw/img.png\""));
    }
}
