//! User defaults from `<config dir>/kubectl-stateful/config.toml` (e.g. `~/.config/…` on Linux),
//! or the file named by `KUBECTL_STATEFUL_CONFIG`. Flags always win over these.
//!
//! ```toml
//! timeout = "10m"   # default for apply --timeout
//! color = false     # never color the output
//! request_timeout = "30s"  # default for --request-timeout
//! ```
//!
//! Only `plan` and `apply` read it: a broken file never stands in the way of `version` or
//! `completion`. Its errors point at `file:line:column` like the spec's.

use miette::{NamedSource, SourceSpan};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use toml::Spanned;

/// The user's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Default rollout timeout, e.g. `10m`.
    pub timeout: Option<Spanned<String>>,
    /// `false` turns colors off everywhere.
    pub color: Option<bool>,
    /// Bound on each API request, e.g. `30s`.
    pub request_timeout: Option<Spanned<String>>,
    #[serde(skip)]
    source: Option<(String, String)>,
}

/// An error in the user config file, with its position.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{file}:{line}:{column}: {key}{message}")]
#[diagnostic(help(
    "fix the file, or point KUBECTL_STATEFUL_CONFIG at another one (keys: timeout, color, request_timeout)"
))]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub key: String,
    pub message: String,
    #[source_code]
    source_code: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

impl ConfigError {
    fn new(file: &str, text: &str, span: std::ops::Range<usize>, key: &str, message: &str) -> Self {
        let issue = crate::spec::SpecIssue {
            key: String::new(),
            message: String::new(),
            span: Some(SourceSpan::new(span.start.into(), span.len())),
            label: String::new(),
            help: None,
            at_key: false,
        };
        let (line, column) = issue.line_col(text).unwrap_or((1, 1));
        ConfigError {
            file: file.to_string(),
            line,
            column,
            key: if key.is_empty() {
                String::new()
            } else {
                format!("{key}: ")
            },
            message: message.to_string(),
            source_code: NamedSource::new(file, text.to_string()),
            span: SourceSpan::new(span.start.into(), span.len()),
        }
    }
}

impl UserConfig {
    fn duration(
        &self,
        key: &str,
        value: &Option<Spanned<String>>,
    ) -> Result<Option<Duration>, Box<ConfigError>> {
        let Some(v) = value else {
            return Ok(None);
        };
        crate::cli::parse_duration(v.get_ref())
            .map(Some)
            .map_err(|e| {
                let (file, text) = self.source.clone().unwrap_or_default();
                Box::new(ConfigError::new(&file, &text, v.span(), key, &e))
            })
    }

    /// The configured timeout, validated.
    pub fn timeout(&self) -> miette::Result<Option<Duration>> {
        self.duration("timeout", &self.timeout)
            .map_err(|e| miette::Report::new(*e))
    }

    /// The configured request timeout, validated.
    pub fn request_timeout(&self) -> miette::Result<Option<Duration>> {
        self.duration("request_timeout", &self.request_timeout)
            .map_err(|e| miette::Report::new(*e))
    }
}

fn path() -> Option<PathBuf> {
    match std::env::var_os("KUBECTL_STATEFUL_CONFIG") {
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::config_dir().map(|d| d.join("kubectl-stateful").join("config.toml")),
    }
}

/// Loads the defaults; a missing file means none.
pub fn load() -> miette::Result<UserConfig> {
    let Some(path) = path() else {
        return Ok(UserConfig::default());
    };
    let file = path.display().to_string();
    let bytes = match crate::spec::read_limited(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(UserConfig::default()),
        Err(e) => {
            return Err(miette::miette!(
                "cannot read the user config {file}: {}",
                crate::spec::io_text(&e)
            ));
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            return Err(ConfigError::new(
                &file,
                &text,
                at..at + 1,
                "",
                "the file is not UTF-8 text",
            )
            .into());
        }
    };
    parse(&file, &text).map_err(|e| miette::Report::new(*e))
}

/// Parses config text; errors carry the position.
pub fn parse(file: &str, text: &str) -> Result<UserConfig, Box<ConfigError>> {
    match toml::from_str::<UserConfig>(text) {
        Ok(mut c) => {
            c.source = Some((file.to_string(), text.to_string()));
            Ok(c)
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            Err(Box::new(ConfigError::new(
                file,
                text,
                span,
                "",
                e.message().trim(),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_rejects_unknown_keys() {
        let c = parse("c.toml", "timeout = \"10m\"\ncolor = false\n").unwrap();
        assert_eq!(c.timeout().unwrap(), Some(Duration::from_secs(600)));
        assert_eq!(c.color, Some(false));
        let e = parse("c.toml", "color = true\ncolour = true").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:2:1: unknown field `colour`"),
            "{e}"
        );
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("c.toml", "timeout = [\n").unwrap_err();
        assert!(e.to_string().starts_with("c.toml:1:"), "{e}");
        let c = parse("c.toml", "\ntimeout = \"soon\"\n").unwrap();
        let e = c.timeout().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("c.toml:2:11: timeout: invalid duration"),
            "{e}"
        );
    }
}
