//! The TOML stack spec: its types, loading with byte spans, and validation into diagnostics that
//! point at `file:line:column` with the key path and a caret snippet.
//!
//! Loading is pure: [`load`] never touches the cluster. References to objects that may live in the
//! cluster instead of the spec (a claim's class or volume, a mounted claim) are checked afterwards
//! by [`check_references`] against the names the caller looked up.

pub mod locate;
mod model;
pub mod quantity;
mod source;
mod validate;

pub use source::SpecSource;

pub use model::*;
pub use validate::{
    ClusterNames, ClusterVolume, NOT_IMPORTED, check_label, check_label_key, check_label_value,
    check_references, check_subdomain, looks_secret, warnings,
};

use miette::{Diagnostic, SourceSpan};
use std::path::Path;

/// One problem in the spec, with the place it was found.
#[derive(Debug, Clone, thiserror::Error, Diagnostic)]
#[error("{key}: {message}")]
pub struct SpecIssue {
    /// Dotted key path, e.g. `claim[1].size`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// Where in the file, as a byte range.
    #[label("{label}")]
    pub span: Option<SourceSpan>,
    /// Short text under the caret.
    pub label: String,
    /// How to fix it, when we know.
    #[help]
    pub help: Option<String>,
    /// Without a span, point at the key of `key` rather than at its value.
    pub at_key: bool,
}

impl SpecIssue {
    pub(crate) fn new(
        key: impl Into<String>,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let message = clip_quoted(&message.into());
        SpecIssue {
            key: key.into(),
            label: "here".into(),
            span: span.map(|r| SourceSpan::new(r.start.into(), r.end.saturating_sub(r.start))),
            message,
            help: None,
            at_key: false,
        }
    }

    /// Points at the key itself (when the span is found from the key path).
    pub(crate) fn at_key(mut self) -> Self {
        self.at_key = true;
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// 1-based line and column of the issue in `source`.
    pub fn line_col(&self, source: &str) -> Option<(usize, usize)> {
        let mut offset = self.span?.offset().min(source.len());
        while !source.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, col))
    }
}

/// Shortens every `"…"`-quoted value of a message longer than 80 characters, so that a
/// huge value in the file is never echoed whole.
pub fn clip_quoted(message: &str) -> String {
    const MAX: usize = 80;
    if message.len() <= 2 * MAX {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len().min(4096));
    let mut inside = false;
    let mut run = 0usize;
    let mut clipped = false;
    let mut escaped = false;
    for c in message.chars() {
        if inside && !escaped && c == '"' {
            inside = false;
            clipped = false;
            out.push(c);
            continue;
        }
        if !inside && c == '"' {
            inside = true;
            run = 0;
            out.push(c);
            continue;
        }
        escaped = inside && !escaped && c == '\\';
        if inside {
            run += 1;
            if run > MAX {
                if !clipped {
                    out.push('…');
                    clipped = true;
                }
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Every problem found in one spec file, rendered by miette with the file's text.
///
/// The issues' spans are in the coordinates of the displayed source, in which very long lines
/// are clipped around the place they point at; positions ([`SpecErrors::entries`]) are always
/// those of the original file.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}: {} in the spec", plural(self.entries.len(), "error"))]
pub struct SpecErrors {
    /// The file name as given by the user.
    pub file: String,
    #[source_code]
    pub source_code: SpecSource,
    /// The issues shown (the first [`MAX_SHOWN`], then one that counts the others).
    #[related]
    pub issues: Vec<SpecIssue>,
    /// Every issue, positioned.
    entries: Vec<IssueEntry>,
}

/// At most this many issues are shown with a snippet; the rest are counted (all of them are in
/// the JSON document).
pub const MAX_SHOWN: usize = 10;

impl SpecErrors {
    /// The issues found in `text` (spans are byte ranges of `text`), ready to render.
    pub fn new(file: &str, text: &str, mut issues: Vec<SpecIssue>) -> SpecErrors {
        let entries: Vec<IssueEntry> = issues
            .iter()
            .map(|i| {
                let (line, column) = i.line_col(text).unzip();
                IssueEntry {
                    file: file.to_string(),
                    line,
                    column,
                    key: i.key.clone(),
                    message: i.message.clone(),
                }
            })
            .collect();
        if issues.len() > MAX_SHOWN {
            let more = issues.len() - MAX_SHOWN;
            issues.truncate(MAX_SHOWN);
            issues.push(SpecIssue::new(
                "(more)",
                None,
                format!(
                    "{} not shown: fix the ones above, or see them all with plan -o json",
                    plural(more, "more error")
                ),
            ));
        }
        let starts: Vec<usize> = issues
            .iter()
            .filter_map(|i| i.span.map(|s| s.offset()))
            .collect();
        let source_code = SpecSource::new(file, text, &starts);
        for issue in &mut issues {
            if let Some(span) = issue.span {
                issue.span = Some(source_code.display_span(span));
            }
        }
        SpecErrors {
            file: file.to_string(),
            source_code,
            issues,
            entries,
        }
    }

    /// Every issue with its position, for machine-readable output.
    pub fn entries(&self) -> Vec<IssueEntry> {
        self.entries.clone()
    }

    /// One line per issue, `file:line:col: key: message`, for logs.
    pub fn lines(&self) -> Vec<String> {
        self.entries.iter().map(IssueEntry::to_string).collect()
    }
}

/// One spec issue, positioned (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IssueEntry {
    pub file: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for IssueEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => {
                write!(f, "{}:{l}:{c}: {}: {}", self.file, self.key, self.message)
            }
            _ => write!(f, "{}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// `1 object`, `2 objects`, `3 StorageClasses`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else if word.ends_with('s') {
        format!("{n} {word}es")
    } else {
        format!("{n} {word}s")
    }
}

/// Spec files larger than this are refused before they are parsed.
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Reads and validates a spec file. `Err` holds every problem found.
pub fn load_file(path: &Path) -> Result<Spec, LoadError> {
    let shown = path.display().to_string();
    let bytes = read_limited(path).map_err(|error| LoadError::Read {
        path: shown.clone(),
        error,
    })?;
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stack".into());
    let text = utf8(&shown, bytes).map_err(LoadError::Invalid)?;
    load(&shown, &text, &default_name).map_err(LoadError::Invalid)
}

/// Reads a file of at most [`MAX_FILE_BYTES`]; a directory or a bigger file is an error that
/// says so (instead of the OS's "Is a directory" or running out of memory).
pub fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    if path.is_dir() {
        return Err(std::io::Error::other(
            "it is a directory; name a file (e.g. stack.toml)",
        ));
    }
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {} MB, the limit for a spec",
            MAX_FILE_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// The file's text, or an error at the first byte that is not UTF-8.
pub fn utf8(file: &str, mut bytes: Vec<u8>) -> Result<String, Box<SpecErrors>> {
    // A UTF-8 byte order mark (some editors write one) carries no text.
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        bytes.drain(..3);
    }
    let utf16 = bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]);
    match String::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bad = e.as_bytes()[at];
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let key = key_at(&text, at);
            let key = if key.contains('\u{FFFD}') || key.is_empty() {
                "(top level)".to_string()
            } else {
                key
            };
            let message = if utf16 && at == 0 {
                "the file is UTF-16 text (it starts with a UTF-16 byte order mark), not UTF-8"
                    .to_string()
            } else {
                format!(
                    "the file is not UTF-8 text: byte 0x{bad:02X} cannot start a character here"
                )
            };
            let issue = SpecIssue::new(key, Some(at..at + 1), message)
                .label("not UTF-8")
                .help("save the file as UTF-8 (TOML files are UTF-8)");
            Err(Box::new(SpecErrors::new(file, &text, vec![issue])))
        }
    }
}

/// Parses and validates spec text; `file` names it in messages, `default_name` is the stack name
/// when the spec sets none.
pub fn load(file: &str, text: &str, default_name: &str) -> Result<Spec, Box<SpecErrors>> {
    let errors = |issues| Box::new(SpecErrors::new(file, text, issues));
    if let Some((at, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\t' | '\r'))
    {
        let name = if c == '\0' { " (NUL)" } else { "" };
        let issue = SpecIssue::new(
            key_at(text, at),
            Some(at..at + c.len_utf8()),
            format!(
                "control character U+{:04X}{name} is not allowed in a TOML file",
                c as u32
            ),
        )
        .label("control character")
        .help("remove it; write \\u0000-style escapes inside strings if the character is really meant");
        let mut issue = issue;
        if issue.key.is_empty() {
            issue.key = "(top level)".into();
        }
        return Err(errors(vec![issue]));
    }
    let mut spec: Spec = match toml::from_str(text) {
        Ok(spec) => spec,
        Err(e) => return Err(errors(vec![syntax_issue(text, &e)])),
    };
    spec.source_file = file.to_string();
    spec.source_text = text.to_string();
    if spec.name.is_none() {
        spec.default_name = default_name.to_string();
    }
    let mut issues = validate::validate(&spec);
    locate::fill_spans(text, &mut issues);
    if issues.is_empty() {
        Ok(spec)
    } else {
        Err(errors(issues))
    }
}

/// The issue for a TOML or type error, always with a position: errors the parser reports without
/// one (a dotted key of more than 80 parts) point at the line it gave up on.
fn syntax_issue(text: &str, e: &toml::de::Error) -> SpecIssue {
    let message = e.message().trim();
    let span = e.span().or_else(|| {
        let at = if message.contains("recursion") {
            deep_key(text).unwrap_or(0)
        } else {
            0
        };
        Some(at..at)
    });
    let mut issue = SpecIssue::new("", span.clone(), message.to_string());
    if let Some(span) = span {
        issue.key = key_at(text, span.start);
    }
    if message.contains("recursion") {
        issue.message =
            "nested too deeply: TOML keys and values may be nested at most 80 levels".into();
        issue = issue.help(
            "a spec never needs that many levels; check the file was not generated by mistake",
        );
    }
    if issue.message.starts_with("unknown field") {
        issue = issue.label("unknown key");
    }
    if let Some(format) = foreign_format(text) {
        issue = issue.help(format!(
            "this looks like {format}; a stack spec is TOML, e.g. [[statefulset]] then name = \"db\" (see README, \"The spec\")"
        ));
    }
    if issue.key.is_empty() {
        issue.key = "(top level)".into();
    }
    issue
}

/// `YAML`/`JSON` when the text looks like one of them rather than TOML.
fn foreign_format(text: &str) -> Option<&'static str> {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))?;
    if first.starts_with('{') || first.starts_with("[{") || first == "[" {
        return Some("JSON");
    }
    if first == "---" || first.starts_with("- ") {
        return Some("YAML");
    }
    let key = first.split(':').next()?;
    let yaml_key = first.contains(':')
        && !first.contains('=')
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.\"'".contains(c));
    yaml_key.then_some("YAML")
}

/// Offset of the first line whose key has 80 or more dotted parts.
fn deep_key(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let key = line.split('=').next().unwrap_or("");
        let mut dots = 0;
        let mut quote: Option<char> = None;
        for c in key.chars() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '.') => dots += 1,
                _ => {}
            }
        }
        if dots + 1 >= 80 {
            return Some(offset + (line.len() - line.trim_start().len()));
        }
        offset += line.len();
    }
    None
}

/// Best-effort dotted key path of the TOML key at byte `offset`, for syntax-level errors:
/// `statefulset[1].volume_claim[0].size`.
fn key_at(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    // Arrays of tables are counted per parent item: `[[statefulset.volume_claim]]` belongs to
    // the last `[[statefulset]]`.
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut table = String::new();
    let indexed = |name: &str, counts: &std::collections::HashMap<String, usize>| -> String {
        let mut path = String::new();
        let mut plain = String::new();
        for part in name.split('.').map(str::trim) {
            if !plain.is_empty() {
                plain.push('.');
            }
            plain.push_str(part);
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(part);
            if let Some(n) = counts.get(&plain) {
                path.push_str(&format!("[{}]", n.saturating_sub(1)));
            }
        }
        path
    };
    for line in text[..offset].lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            *counts.entry(name.clone()).or_insert(0) += 1;
            // A new parent item restarts the counts of its nested arrays.
            let nested = format!("{name}.");
            counts.retain(|k, _| !k.starts_with(&nested));
            table = indexed(&name, &counts);
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = indexed(name.trim(), &counts);
        }
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    // The error is on a table header: the key is that table.
    let t = line.trim();
    if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
        let name = name.trim().to_string();
        *counts.entry(name.clone()).or_insert(0) += 1;
        return indexed(&name, &counts);
    }
    if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
        return indexed(name.trim(), &counts);
    }
    let key = line.split('=').next().unwrap_or("").trim();
    let is_key = line.contains('=') && !key.starts_with('[') && !key.is_empty();
    let key = if key.len() > 80 {
        format!("{}…", &key[..floor_char(key, 80)])
    } else {
        key.to_string()
    };
    let table = if table.len() > 80 {
        format!("{}…", &table[..floor_char(&table, 80)])
    } else {
        table
    };
    match (table.is_empty(), is_key) {
        (true, true) => key,
        (false, true) => format!("{table}.{key}"),
        _ => table,
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Wraps issues found after loading (e.g. by [`check_references`]) with the spec's text.
pub fn errors_for(spec: &Spec, mut issues: Vec<SpecIssue>) -> SpecErrors {
    locate::fill_spans(&spec.source_text, &mut issues);
    SpecErrors::new(&spec.source_file, &spec.source_text, issues)
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {}", io_text(.error))]
    Read { path: String, error: std::io::Error },
    /// The file was read but is not a valid spec.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<SpecErrors>),
}

/// An I/O error in words, without the OS's error number.
pub fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            }
        }
    }
}

#[cfg(test)]
mod tests;
