//! The TOML stack spec: its types, loading with byte spans, and validation into diagnostics that
//! point at `file:line:column` with the key path and a caret snippet.
//!
//! Loading is pure: [`load`] never touches the cluster. References to objects that may live in the
//! cluster instead of the spec (a claim's class or volume, a mounted claim) are checked afterwards
//! by [`check_references`] against the names the caller looked up.

pub mod locate;
mod model;
pub mod quantity;
mod validate;

pub use model::*;
pub use validate::{ClusterNames, ClusterVolume, check_references, looks_secret, warnings};

use miette::{Diagnostic, NamedSource, SourceSpan};
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
}

impl SpecIssue {
    pub(crate) fn new(
        key: impl Into<String>,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        SpecIssue {
            key: key.into(),
            label: "here".into(),
            span: span.map(|r| SourceSpan::new(r.start.into(), r.end.saturating_sub(r.start))),
            message,
            help: None,
        }
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
        let offset = self.span?.offset().min(source.len());
        let before = &source[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, col))
    }
}

/// Every problem found in one spec file, rendered by miette with the file's text.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{file}: {} in the spec", plural(issues.len(), "error"))]
pub struct SpecErrors {
    /// The file name as given by the user.
    pub file: String,
    #[source_code]
    pub source_code: NamedSource<String>,
    #[related]
    pub issues: Vec<SpecIssue>,
}

impl SpecErrors {
    /// Every issue with its position, for machine-readable output.
    pub fn entries(&self) -> Vec<IssueEntry> {
        let text = self.source_code.inner();
        self.issues
            .iter()
            .map(|i| {
                let (line, column) = i.line_col(text).unzip();
                IssueEntry {
                    file: self.file.clone(),
                    line,
                    column,
                    key: i.key.clone(),
                    message: i.message.clone(),
                }
            })
            .collect()
    }

    /// One line per issue, `file:line:col: key: message`, for logs.
    pub fn lines(&self) -> Vec<String> {
        self.entries().iter().map(IssueEntry::to_string).collect()
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

pub(crate) fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Reads and validates a spec file. `Err` holds every problem found.
pub fn load_file(path: &Path) -> Result<Spec, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let default_name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "stack".into());
    load(&path.display().to_string(), &text, &default_name).map_err(LoadError::Invalid)
}

/// Parses and validates spec text; `file` names it in messages, `default_name` is the stack name
/// when the spec sets none.
pub fn load(file: &str, text: &str, default_name: &str) -> Result<Spec, Box<SpecErrors>> {
    let errors = |issues| {
        Box::new(SpecErrors {
            file: file.to_string(),
            source_code: NamedSource::new(file, text.to_string()),
            issues,
        })
    };
    let mut spec: Spec = match toml::from_str(text) {
        Ok(spec) => spec,
        Err(e) => {
            let mut issue = SpecIssue::new("", e.span(), e.message().trim().to_string());
            if let Some(span) = e.span() {
                issue.key = key_at(text, span.start);
            }
            if issue.message.starts_with("unknown field") {
                issue = issue.label("unknown key");
            }
            return Err(errors(vec![issue]));
        }
    };
    spec.source_file = file.to_string();
    spec.source_text = text.to_string();
    if spec.name.is_none() {
        spec.default_name = default_name.to_string();
    }
    let issues = validate::validate(&spec);
    if issues.is_empty() {
        Ok(spec)
    } else {
        Err(errors(issues))
    }
}

/// Best-effort dotted key path of the TOML key at byte `offset`, for syntax-level errors.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    for line in text[..offset].lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        }
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let key = line.split('=').next().unwrap_or("").trim();
    let is_key = line.contains('=') && !key.starts_with('[') && !key.is_empty();
    match (table.is_empty(), is_key) {
        (true, true) => key.to_string(),
        (false, true) => format!("{table}.{key}"),
        _ => table,
    }
}

/// Wraps issues found after loading (e.g. by [`check_references`]) with the spec's text.
pub fn errors_for(spec: &Spec, issues: Vec<SpecIssue>) -> SpecErrors {
    SpecErrors {
        file: spec.source_file.clone(),
        source_code: NamedSource::new(&spec.source_file, spec.source_text.clone()),
        issues,
    }
}

/// Why a spec could not be loaded.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid spec.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<SpecErrors>),
}

#[cfg(test)]
mod tests;
