//! The API reference page (`/api/reference`): the OpenAPI document rendered once, at start-up,
//! as one self-contained HTML page — no scripts, no CDN, readable offline.

use std::fmt::Write as _;

use utoipa::openapi::{
    OpenApi, RefOr, Schema,
    path::{Operation, ParameterIn},
};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `` `code` `` spans and paragraphs of a description, escaped.
fn prose(text: &str) -> String {
    let escaped = escape(text);
    let mut out = String::new();
    for paragraph in escaped.split("\n\n") {
        let mut html = String::new();
        for (i, part) in paragraph.split('`').enumerate() {
            if i % 2 == 1 {
                let _ = write!(html, "<code>{part}</code>");
            } else {
                html.push_str(&part.replace("**", ""));
            }
        }
        let _ = write!(out, "<p>{}</p>", html.replace('\n', " "));
    }
    out
}

fn schema_name(schema: &RefOr<Schema>) -> String {
    match schema {
        RefOr::Ref(r) => {
            let name = r.ref_location.rsplit('/').next().unwrap_or_default();
            format!("<a href=\"#schema-{name}\">{name}</a>")
        }
        RefOr::T(schema) => {
            let json = serde_json::to_value(schema).unwrap_or_default();
            let kind = json
                .get("type")
                .map(|t| t.to_string().replace('"', ""))
                .unwrap_or_else(|| "any".into());
            escape(&kind)
        }
    }
}

fn operation(out: &mut String, method: &str, path: &str, op: &Operation) {
    let id = format!("{method}-{path}")
        .replace(['/', '{', '}'], "-")
        .to_lowercase();
    let _ = write!(
        out,
        "<section class=\"op\" id=\"{id}\"><h3><span class=\"method {m}\">{M}</span> \
         <code>{p}</code></h3>",
        m = method,
        M = method.to_uppercase(),
        p = escape(path),
    );
    if let Some(summary) = &op.summary {
        let _ = write!(out, "<p class=\"summary\">{}</p>", escape(summary));
    }
    if let Some(description) = &op.description {
        out.push_str(&prose(description));
    }
    if let Some(security) = &op.security {
        let names: Vec<String> = security
            .iter()
            .filter_map(|s| serde_json::to_value(s).ok())
            .filter_map(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
            .flatten()
            .collect();
        if !names.is_empty() {
            let _ = write!(out, "<p><b>Authorization:</b> {}</p>", names.join(", "));
        }
    }
    if let Some(params) = op.parameters.as_ref().filter(|p| !p.is_empty()) {
        out.push_str("<h4>Parameters</h4><ul>");
        for p in params {
            let place = match p.parameter_in {
                ParameterIn::Path => "path",
                ParameterIn::Query => "query",
                ParameterIn::Header => "header",
                ParameterIn::Cookie => "cookie",
            };
            let _ = write!(
                out,
                "<li><code>{}</code> ({place}) {}</li>",
                escape(&p.name),
                p.description.as_deref().map(escape).unwrap_or_default()
            );
        }
        out.push_str("</ul>");
    }
    if let Some(body) = &op.request_body {
        out.push_str("<h4>Request body</h4>");
        for (content_type, content) in &body.content {
            let _ = write!(
                out,
                "<p><code>{}</code>: {}</p>",
                escape(content_type),
                content.schema.as_ref().map(schema_name).unwrap_or_default()
            );
            if let Some(example) = &content.example {
                example_block(out, example);
            }
        }
    }
    out.push_str("<h4>Responses</h4><ul class=\"responses\">");
    for (status, response) in &op.responses.responses {
        let RefOr::T(response) = response else {
            continue;
        };
        let _ = write!(
            out,
            "<li><b>{}</b> {}",
            escape(status),
            prose(&response.description)
        );
        for content in response.content.values() {
            if let Some(schema) = &content.schema {
                let _ = write!(out, "<p>Body: {}</p>", schema_name(schema));
            }
            if let Some(example) = &content.example {
                example_block(out, example);
            }
            for (name, example) in &content.examples {
                if let RefOr::T(example) = example
                    && let Some(value) = &example.value
                {
                    let _ = write!(out, "<p>Example <i>{}</i>:</p>", escape(name));
                    example_block(out, value);
                }
            }
        }
        out.push_str("</li>");
    }
    out.push_str("</ul></section>");
}

fn example_block(out: &mut String, value: &serde_json::Value) {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
    let _ = write!(out, "<pre>{}</pre>", escape(&pretty));
}

pub fn render(document: &OpenApi) -> String {
    let mut out = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Latchkey API reference</title><style>",
    );
    out.push_str(STYLE);
    out.push_str("</style></head><body><main>");
    let _ = write!(
        out,
        "<h1>{} API reference</h1>{}<p>Machine-readable: <a href=\"/api/openapi.json\">\
         OpenAPI 3.1 document</a>.</p>",
        escape(&document.info.title),
        document
            .info
            .description
            .as_deref()
            .map(prose)
            .unwrap_or_default()
    );
    let tags: Vec<String> = document
        .tags
        .iter()
        .flatten()
        .map(|t| t.name.clone())
        .collect();
    out.push_str("<nav><ul>");
    for tag in &tags {
        let _ = write!(
            out,
            "<li><a href=\"#{0}\">{1}</a></li>",
            tag.replace(' ', "-"),
            escape(tag)
        );
    }
    out.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav>");
    for tag in &tags {
        let _ = write!(
            out,
            "<h2 id=\"{}\">{}</h2>",
            tag.replace(' ', "-"),
            escape(tag)
        );
        for (path, item) in &document.paths.paths {
            let operations = [
                ("get", &item.get),
                ("post", &item.post),
                ("put", &item.put),
                ("patch", &item.patch),
                ("delete", &item.delete),
            ];
            for (method, op) in operations {
                if let Some(op) = op
                    && op.tags.as_ref().is_some_and(|t| t.contains(tag))
                {
                    operation(&mut out, method, path, op);
                }
            }
        }
    }
    out.push_str("<h2 id=\"schemas\">Schemas</h2>");
    if let Some(components) = &document.components {
        for (name, schema) in &components.schemas {
            let json = serde_json::to_string_pretty(schema).unwrap_or_default();
            let _ = write!(
                out,
                "<section id=\"schema-{n}\"><h3>{n}</h3><pre>{j}</pre></section>",
                n = escape(name),
                j = escape(&json)
            );
        }
    }
    out.push_str("</main></body></html>");
    out
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1f24;background:#fff}\
main{max-width:60rem;margin:0 auto;padding:1rem}\
code,pre{font-family:ui-monospace,monospace;font-size:.9em}\
pre{background:#f4f5f7;padding:.75rem;overflow:auto;border-radius:4px}\
.op{border-top:1px solid #d0d7de;padding:.5rem 0 1rem}\
.method{display:inline-block;min-width:4.5rem;text-align:center;border-radius:4px;color:#fff;\
padding:0 .4rem;font-size:.85em}\
.get{background:#0969da}.post{background:#1a7f37}.delete{background:#cf222e}\
.put,.patch{background:#9a6700}.summary{font-weight:600}\
nav ul{display:flex;gap:1rem;list-style:none;padding:0}\
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}\
pre{background:#161b22}a{color:#58a6ff}}";
