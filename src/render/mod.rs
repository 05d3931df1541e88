//! Views of a plan: human text with unified YAML diffs, JSON and Markdown. Pure functions of the
//! plan; colors are decided by the caller.

mod diff;
pub mod graph;
mod markdown;

pub use diff::unified_yaml_diff;
pub use graph::{dot, mermaid};
pub use markdown::{markdown, markdown_failure};

use crate::plan::{Action, Plan, Step};
use owo_colors::OwoColorize;

/// Terminal styling on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub(crate) fn paint(&self, text: &str, action: Action) -> String {
        if !self.color {
            return text.to_string();
        }
        match action {
            Action::Create => text.green().to_string(),
            Action::Update => text.yellow().to_string(),
            Action::Adopt => text.cyan().to_string(),
            Action::Delete => text.red().to_string(),
            Action::Release => text.cyan().to_string(),
            Action::Replace => text.magenta().to_string(),
            Action::Resize => text.yellow().to_string(),
            Action::Error => text.red().bold().to_string(),
            Action::NoOp => text.dimmed().to_string(),
        }
    }
}

/// Terraform-like marker for an action.
pub fn symbol(action: Action) -> &'static str {
    match action {
        Action::Create => "+",
        Action::Update => "~",
        Action::Adopt => "<~",
        Action::Delete => "-",
        Action::Release => "~>",
        Action::Replace => "-/+",
        Action::Resize => "~+",
        Action::NoOp => "=",
        Action::Error => "!",
    }
}

fn headline(step: &Step) -> String {
    let obj = step.object.short();
    match step.action {
        Action::Create => format!("{obj} will be created"),
        Action::Update => format!("{obj} will be updated in place"),
        Action::Adopt => format!("{obj} will be adopted into this stack"),
        Action::Delete => format!("{obj} will be deleted"),
        Action::Release => format!(
            "{obj} will be released from this stack (its labels and field ownership go, the object stays)"
        ),
        Action::Replace => format!("{obj} must be replaced"),
        Action::Resize => {
            format!("{obj} claim templates will be resized (claims expanded, pods kept)")
        }
        Action::NoOp => format!("{obj} is unchanged"),
        Action::Error => format!("{obj} could not be planned"),
    }
}

/// The human view: per changed object a headline, reasons and a unified YAML diff, then the summary.
pub fn human(plan: &Plan, style: Style) -> String {
    let mut text = String::new();
    human_to(plan, style, &mut |chunk| text.push_str(chunk));
    text
}

/// [`human`], handed to `emit` a step at a time (a large plan is printed as it is rendered, never
/// held whole as text).
pub fn human_to(plan: &Plan, style: Style, emit: &mut dyn FnMut(&str)) {
    let mut out = String::new();
    out.push_str(&format!(
        "Stack {} in namespace {} ({})\n\n",
        plan.stack,
        plan.namespace,
        crate::spec::plural(plan.steps.len(), "object")
    ));
    for w in &plan.warnings {
        let line = format!("Warning: {w}");
        if style.color {
            out.push_str(&line.yellow().to_string());
        } else {
            out.push_str(&line);
        }
        out.push('\n');
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    for step in &plan.steps {
        if step.action == Action::NoOp && step.reasons.is_empty() {
            continue;
        }
        let head = format!("{} {}", symbol(step.action), headline(step));
        out.push_str(&style.paint(&head, step.action));
        out.push_str(&format!("  ({})\n", step.origin));
        if step.action == Action::Replace {
            out.push_str(&format!(
                "    forced by: {}\n",
                step.replace_paths.join(", ")
            ));
        }
        if let Some(r) = &step.resize {
            if r.retain_first {
                out.push_str("    first: retention whenDeleted Delete → Retain, so no delete can take the claims\n");
            }
            for c in &r.claims {
                out.push_str(&format!(
                    "    expand pvc/{}: {} → {}\n",
                    c.name, c.from, c.to
                ));
            }
            if let Some(note) = crate::plan::restart_note(r) {
                out.push_str(&format!("    {note}\n"));
            }
        }
        for r in &step.reasons {
            out.push_str(&format!("    {r}\n"));
        }
        if let Some(e) = &step.error {
            out.push_str(&format!("    error: {e}\n"));
        }
        if let Some(at) = &step.location {
            out.push_str(&format!("    at {at}\n"));
        }
        if matches!(
            step.action,
            Action::Create
                | Action::Update
                | Action::Adopt
                | Action::Replace
                | Action::Resize
                | Action::Release
        ) {
            let (before, after) = crate::plan::mask::masked_sides(step);
            let diff = unified_yaml_diff(before.as_ref(), after.as_ref(), style);
            for line in diff.lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        emit(&out);
        out.clear();
    }
    if !plan.kept.is_empty() {
        out.push_str(&format!("Kept, not deleted ({}):\n", plan.kept.len()));
        for k in &plan.kept {
            out.push_str(&format!("    {}: {}\n", k.object.short(), k.reason));
        }
        if let Some(data) = &plan.kept_data {
            out.push_str(&format!("    ({data})\n"));
        }
        out.push('\n');
    } else if !plan.not_in_spec.is_empty()
        && !plan
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::Delete | Action::Release))
    {
        out.push_str(&format!(
            "Not in the spec any more ({}); apply leaves them in place (prune them with --prune):\n",
            plan.not_in_spec.len()
        ));
        for id in &plan.not_in_spec {
            out.push_str(&format!("    {}\n", id.short()));
        }
        out.push('\n');
    }
    let summary = plan.summary_line();
    if style.color {
        out.push_str(&summary.bold().to_string());
    } else {
        out.push_str(&summary);
    }
    out.push('\n');
    emit(&out);
}

/// The JSON view: the plan document itself (see README, "JSON plan"), sensitive values masked.
pub fn json(plan: &Plan) -> String {
    let mut out = Vec::new();
    json_to(plan, &mut out).expect("plans serialize");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// [`json`], written as it is serialized (a large plan is never held whole as text or copied).
pub fn json_to(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    crate::plan::mask::masking_views(|| serde_json::to_writer_pretty(&mut *out, plan))?;
    out.write_all(b"\n")
}

/// The saved plan (`plan --out`): the whole plan, values included, since apply sends it.
pub fn plan_file(plan: &Plan) -> String {
    serde_json::to_string_pretty(plan).expect("plans serialize") + "\n"
}

/// The JSON document for a plan that could not be made: `{"format_version":1,"error":{…}}`.
pub fn json_failure(message: &str, spec_errors: &[crate::spec::IssueEntry]) -> String {
    let doc = serde_json::json!({
        "format_version": crate::plan::FORMAT_VERSION,
        "error": { "message": message, "spec_errors": spec_errors },
    });
    serde_json::to_string_pretty(&doc).expect("errors serialize") + "\n"
}

#[cfg(test)]
mod tests;
