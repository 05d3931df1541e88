//! Unified diffs of YAML renderings of two objects.

use super::Style;
use owo_colors::OwoColorize;
use serde_json::Value;
use similar::TextDiff;

/// The unified diff between two objects rendered as YAML; absent means empty (create, delete).
pub fn unified_yaml_diff(before: Option<&Value>, after: Option<&Value>, style: Style) -> String {
    let yaml = |v: Option<&Value>| {
        v.map(|v| serde_yaml::to_string(v).unwrap_or_default())
            .unwrap_or_default()
    };
    let (a, b) = (yaml(before), yaml(after));
    let diff = TextDiff::from_lines(&a, &b);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(
            if before.is_some() {
                "live"
            } else {
                "/dev/null"
            },
            "planned",
        )
        .to_string();
    if !style.color {
        return text;
    }
    text.lines()
        .map(|l| {
            if l.starts_with("+++") || l.starts_with("---") {
                l.bold().to_string()
            } else if l.starts_with('+') {
                l.green().to_string()
            } else if l.starts_with('-') {
                l.red().to_string()
            } else if l.starts_with("@@") {
                l.cyan().to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
