//! The contract pages under `docs/` stay true and reachable:
//!
//! - `docs/openapi.json` is the OpenAPI document the server serves at `GET /api/openapi.json`,
//!   pretty-printed in the generator's key order. When the API changes, regenerate it with
//!   `LATCHKEY_TEST_BLESS=1 cargo test -p server --test docs_contract` and commit the result.
//! - Every relative link and `#anchor` in the repository's Markdown files resolves: to a file or
//!   directory of the repository (never above its root), and to a heading of the target page
//!   (GitHub's heading slugs). Links with a scheme (`https://…`, `http://localhost…`) are not
//!   followed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

mod common;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::{Path, PathBuf},
};

use common::TestServer;
use latchkey_core::testing::TestBackend;
use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// Set to `1` to rewrite `docs/openapi.json` from the served document instead of comparing.
const BLESS_VAR: &str = "LATCHKEY_TEST_BLESS";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// docs/openapi.json

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committed_openapi_document_is_the_served_one() {
    let t = TestServer::start(TestBackend::Sqlite).await.unwrap();
    let res = t.get("/api/openapi.json").await;
    assert_eq!(res.status(), 200);
    let served = res.text().await.unwrap();

    // The endpoint serves the generated document in compact form; the committed copy is the
    // same document pretty-printed (same key order), so that its diffs can be reviewed.
    let generated = latchkey_server::http::api::served_document();
    assert_eq!(
        served,
        generated.to_string(),
        "GET /api/openapi.json is not the generated document"
    );
    let expected = format!("{}\n", serde_json::to_string_pretty(&generated).unwrap());

    let path = repo_root().join("docs").join("openapi.json");
    if std::env::var(BLESS_VAR).is_ok_and(|v| v == "1") {
        std::fs::write(&path, &expected).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read docs/openapi.json ({err}). Create it with\n    \
             {BLESS_VAR}=1 cargo test -p server --test docs_contract"
        )
    });
    if committed != expected {
        let first_difference = committed
            .lines()
            .zip(expected.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(expected.lines().count()));
        panic!(
            "docs/openapi.json is not the document GET /api/openapi.json serves (first \
             difference at line {}: committed {:?}, served {:?}).\nRegenerate it with\n    \
             {BLESS_VAR}=1 cargo test -p server --test docs_contract\nand commit docs/openapi.json.",
            first_difference + 1,
            committed
                .lines()
                .nth(first_difference)
                .unwrap_or("<end of file>"),
            expected
                .lines()
                .nth(first_difference)
                .unwrap_or("<end of file>"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Links in Markdown

/// The repository's files (paths relative to its root, `/`-separated) and their directories.
struct Tree {
    files: BTreeSet<String>,
    dirs: BTreeSet<String>,
}

impl Tree {
    fn new(files: impl IntoIterator<Item = String>) -> Self {
        let files: BTreeSet<String> = files.into_iter().collect();
        let mut dirs = BTreeSet::from([String::new()]);
        for file in &files {
            let mut dir = file.as_str();
            while let Some((parent, _)) = dir.rsplit_once('/') {
                dirs.insert(parent.to_owned());
                dir = parent;
            }
        }
        Self { files, dirs }
    }
}

/// The files that are (or would be, once committed) in the repository: tracked, or untracked
/// and not ignored. Without git, every file outside build output and dependencies.
fn repository_files(root: &Path) -> Vec<String> {
    let listed = std::process::Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output();
    if let Ok(out) = listed
        && out.status.success()
    {
        return String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|p| !p.is_empty() && root.join(p).is_file())
            .map(str::to_owned)
            .collect();
    }
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(name.as_str(), ".git" | "target" | "node_modules" | ".venv") {
                    pending.push(path);
                }
            } else if let Ok(relative) = path.strip_prefix(root) {
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files
}

/// GitHub's anchor for a heading: lower-case; letters, digits, `-` and `_` kept, spaces become
/// `-`, everything else dropped. Links must use it exactly (lower-case).
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn markdown_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_FOOTNOTES
}

/// The anchors a page's headings get, repeated ones numbered as GitHub does (`-1`, `-2`, …).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(markdown, markdown_options()) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(text) | Event::Code(text) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&text);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = slug(&h);
                    let n = seen.entry(base.clone()).or_insert(0);
                    anchors.insert(if *n == 0 { base } else { format!("{base}-{n}") });
                    *n += 1;
                }
            }
            _ => {}
        }
    }
    anchors
}

/// Every link and image destination of a page, with its line number.
fn destinations(markdown: &str) -> Vec<(usize, String)> {
    let line_of = |offset: usize| markdown[..offset].matches('\n').count() + 1;
    Parser::new_ext(markdown, markdown_options())
        .into_offset_iter()
        .filter_map(|(event, range)| match event {
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                Some((line_of(range.start), dest_url.into_string()))
            }
            _ => None,
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || u8::from_str_radix(text.get(i + 1..i + 3)?, 16).ok();
        match (bytes[i], hex()) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `target` (a link's path part) seen from the page `from`, as a repository path; `None` when it
/// climbs above the repository's root.
fn resolve(from: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        from.split('/').collect::<Vec<_>>()[..from.matches('/').count()].to_vec()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// What is wrong with the links of `pages` (path → Markdown), one line each.
fn link_problems(tree: &Tree, pages: &BTreeMap<String, String>) -> Vec<String> {
    let page_anchors: HashMap<&str, BTreeSet<String>> = pages
        .iter()
        .map(|(path, text)| (path.as_str(), anchors(text)))
        .collect();
    let mut problems = Vec::new();
    for (page, text) in pages {
        for (line, dest) in destinations(text) {
            let mut problem =
                |what: String| problems.push(format!("{page}:{line}: {dest}: {what}"));
            let scheme = dest
                .split_once(':')
                .map(|(s, _)| s)
                .filter(|s| !s.contains('/') && !s.contains('#') && !s.is_empty());
            match scheme {
                Some("http" | "https" | "mailto") => continue,
                Some(other) => {
                    problem(format!("a `{other}:` link cannot be followed"));
                    continue;
                }
                None => {}
            }
            let (path, anchor) = match dest.split_once('#') {
                Some((path, anchor)) => (path, Some(percent_decode(anchor))),
                None => (dest.as_str(), None),
            };
            let path = percent_decode(path.split('?').next().unwrap_or_default());
            let target = if path.is_empty() {
                page.clone()
            } else {
                match resolve(page, &path) {
                    Some(target) => target,
                    None => {
                        problem("leaves the repository".into());
                        continue;
                    }
                }
            };
            let markdown_target = if tree.files.contains(&target) {
                Path::new(&target)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("md"))
                    .then(|| target.clone())
            } else if tree.dirs.contains(&target) {
                // GitHub shows a directory's README below its listing.
                let readme = if target.is_empty() {
                    "README.md".to_owned()
                } else {
                    format!("{target}/README.md")
                };
                tree.files.contains(&readme).then_some(readme)
            } else {
                problem(format!("no file or directory `{target}` in the repository"));
                continue;
            };
            let Some(anchor) = anchor.filter(|a| !a.is_empty()) else {
                continue;
            };
            let known = markdown_target
                .as_deref()
                .and_then(|t| page_anchors.get(t))
                .is_some_and(|a| a.contains(&anchor));
            if !known && markdown_target.is_some() {
                problem(format!("no heading with the anchor `#{anchor}`"));
            }
        }
    }
    problems
}

fn is_checked_page(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".md")
        && !path
            .split('/')
            .any(|part| matches!(part, "node_modules" | "target"))
}

#[test]
fn every_relative_link_in_the_markdown_files_resolves() {
    let root = repo_root();
    let tree = Tree::new(repository_files(&root));
    let pages: BTreeMap<String, String> = tree
        .files
        .iter()
        .filter(|path| is_checked_page(path))
        .map(|path| {
            let text = std::fs::read_to_string(root.join(path)).unwrap();
            (path.clone(), text)
        })
        .collect();
    for expected in ["README.md", "docs/README.md", "docs/errors.md"] {
        assert!(pages.contains_key(expected), "{expected} was not checked");
    }
    let problems = link_problems(&tree, &pages);
    assert!(
        problems.is_empty(),
        "broken links in the repository's Markdown:\n{}",
        problems.join("\n")
    );
}

/// The checker itself: it finds what it is there to find.
#[test]
fn the_link_checker_reports_broken_links_and_anchors() {
    let tree = Tree::new(
        ["README.md", "docs/README.md", "docs/a.md", "sdk/src/x.js"]
            .into_iter()
            .map(str::to_owned),
    );
    let pages = BTreeMap::from([
        (
            "README.md".to_owned(),
            "# Top\n\n## Running it\n\n[a](docs/a.md#the-api-v1) [ok](#running-it) \
             [dir](docs/) [js](sdk/src/x.js) [web](https://example.com/x) \
             [local](http://localhost:3000/api/reference)\n\n\
             [gone](docs/missing.md) [bad](#nowhere) [up](../shared/spec/latchkey.md) \
             [file](file:///etc/passwd)\n"
                .to_owned(),
        ),
        (
            "docs/README.md".to_owned(),
            "# Docs\n\n[back](../README.md#top) [a](a.md#errors-1) [b](./a.md#Errors)\n".to_owned(),
        ),
        (
            "docs/a.md".to_owned(),
            "# The API (v1)\n\n## `Errors`\n\n## Errors\n\n[root](/README.md#running-it) \
             [root-up](../../README.md)\n"
                .to_owned(),
        ),
    ]);
    let problems = link_problems(&tree, &pages);
    let expected = [
        "README.md:7: docs/missing.md: no file or directory `docs/missing.md` in the repository",
        "README.md:7: #nowhere: no heading with the anchor `#nowhere`",
        "README.md:7: ../shared/spec/latchkey.md: leaves the repository",
        "README.md:7: file:///etc/passwd: a `file:` link cannot be followed",
        // Anchors are matched exactly: GitHub's are lower-case.
        "docs/README.md:3: ./a.md#Errors: no heading with the anchor `#Errors`",
        "docs/a.md:7: ../../README.md: leaves the repository",
    ];
    assert_eq!(problems, expected);
    assert_eq!(
        slug("Security: what Latchkey promises"),
        "security-what-latchkey-promises"
    );
    assert_eq!(slug("`lk_sk_…` API keys"), "lk_sk_-api-keys");
}
