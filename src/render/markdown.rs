//! The Markdown view, for pull-request comments: a summary table and collapsible diffs.

use super::{Style, symbol, unified_yaml_diff};
use crate::plan::{Action, Plan};

/// Renders the plan as GitHub-flavoured Markdown.
pub fn markdown(plan: &Plan) -> String {
    let plan = &crate::plan::mask::masked(plan);
    let mut out = format!(
        "### kubectl stateful plan: `{}` in namespace `{}`\n\n**{}**\n\n",
        plan.stack,
        plan.namespace,
        plan.summary_line()
    );
    for w in &plan.warnings {
        out.push_str(&format!("> ⚠️ **Warning** `{w}`\n>\n"));
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    out.push_str("| | Object | Action | Details |\n|---|---|---|---|\n");
    for step in &plan.steps {
        let details = match step.action {
            Action::Replace => format!("forced by `{}`", step.replace_paths.join("`, `")),
            Action::Resize => step
                .resize
                .iter()
                .flat_map(|r| r.claims.iter())
                .map(|c| format!("expand `pvc/{}` {} → {}", c.name, c.from, c.to))
                .chain(step.resize.as_ref().and_then(crate::plan::restart_note))
                .collect::<Vec<_>>()
                .join(", "),
            Action::Error => match &step.location {
                Some(at) => format!("{} (at {at})", step.error.clone().unwrap_or_default()),
                None => step.error.clone().unwrap_or_default(),
            },
            Action::Update => {
                let mut d = step
                    .changed_paths
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                if !step.conflicts.is_empty() {
                    d.push_str(&format!(
                        "; conflicts: {}",
                        crate::plan::compute::conflict_text(&step.conflicts)
                    ));
                }
                d
            }
            _ => step.reasons.join(" "),
        };
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} |\n",
            symbol(step.action),
            step.object.short(),
            step.action.as_str(),
            details.replace('|', "\\|").replace('\n', " ")
        ));
    }
    if !plan.kept.is_empty() {
        out.push_str("\nKept, not deleted:\n\n");
        for k in &plan.kept {
            out.push_str(&format!(
                "- `{}`: {}\n",
                k.object.short(),
                k.reason.replace('|', "\\|")
            ));
        }
    } else if !plan.not_in_spec.is_empty()
        && !plan
            .steps
            .iter()
            .any(|s| matches!(s.action, Action::Delete | Action::Release))
    {
        out.push_str(
            "\nNot in the spec any more (apply leaves them in place; `--prune` removes them): ",
        );
        out.push_str(
            &plan
                .not_in_spec
                .iter()
                .map(|id| format!("`{}`", id.short()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push('\n');
    }
    if !plan.steps.is_empty() {
        out.push_str(&format!(
            "\n#### Rollout\n\n```mermaid\n{}```\n",
            super::graph::mermaid(plan)
        ));
    }
    for step in &plan.steps {
        if !matches!(
            step.action,
            Action::Create | Action::Update | Action::Adopt | Action::Replace | Action::Resize
        ) {
            continue;
        }
        let diff = unified_yaml_diff(
            step.before.as_ref(),
            step.after.as_ref(),
            Style { color: false },
        );
        out.push_str(&format!(
            "\n<details><summary>{} <code>{}</code></summary>\n\n```diff\n{}```\n\n</details>\n",
            step.action.as_str(),
            step.object.short(),
            diff
        ));
    }
    out
}

/// Markdown for a plan that could not be made, with every spec error.
pub fn markdown_failure(message: &str, spec_errors: &[crate::spec::IssueEntry]) -> String {
    let mut out = format!(
        "### kubectl stateful plan failed\n\n**{}**\n",
        message.replace('\n', " ")
    );
    if !spec_errors.is_empty() {
        out.push_str("\n```text\n");
        for e in spec_errors {
            out.push_str(&format!("{e}\n"));
        }
        out.push_str("```\n");
    }
    out
}
