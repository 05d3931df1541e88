//! User defaults from `<config dir>/kubectl-stateful/config.toml` (e.g. `~/.config/…` on Linux),
//! or the file named by `KUBECTL_STATEFUL_CONFIG`. Flags always win over these.
//!
//! ```toml
//! timeout = "10m"   # default for apply --timeout
//! color = false     # never color the output
//! request_timeout = "30s"  # default for --request-timeout
//! ```

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The user's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// Default rollout timeout, e.g. `10m`.
    pub timeout: Option<String>,
    /// `false` turns colors off everywhere.
    pub color: Option<bool>,
    /// Bound on each API request, e.g. `30s`.
    pub request_timeout: Option<String>,
}

impl UserConfig {
    /// The configured timeout, validated.
    pub fn timeout(&self) -> miette::Result<Option<Duration>> {
        self.timeout
            .as_deref()
            .map(|t| {
                crate::cli::parse_duration(t)
                    .map_err(|e| miette::miette!("{}: timeout: {e}", path_display()))
            })
            .transpose()
    }

    /// The configured request timeout, validated.
    pub fn request_timeout(&self) -> miette::Result<Option<Duration>> {
        self.request_timeout
            .as_deref()
            .map(|t| {
                crate::cli::parse_duration(t)
                    .map_err(|e| miette::miette!("{}: request_timeout: {e}", path_display()))
            })
            .transpose()
    }
}

fn path() -> Option<PathBuf> {
    match std::env::var_os("KUBECTL_STATEFUL_CONFIG") {
        Some(p) => Some(PathBuf::from(p)),
        None => dirs::config_dir().map(|d| d.join("kubectl-stateful").join("config.toml")),
    }
}

fn path_display() -> String {
    path()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config".into())
}

/// Loads the defaults; a missing file means none.
pub fn load() -> miette::Result<UserConfig> {
    let Some(path) = path() else {
        return Ok(UserConfig::default());
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| miette::miette!("{}: {}", path.display(), e.message())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
        Err(e) => Err(miette::miette!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_defaults_and_rejects_unknown_keys() {
        let c: UserConfig = toml::from_str("timeout = \"10m\"\ncolor = false\n").unwrap();
        assert_eq!(c.timeout().unwrap(), Some(Duration::from_secs(600)));
        assert_eq!(c.color, Some(false));
        assert!(toml::from_str::<UserConfig>("colour = true").is_err());
    }
}
