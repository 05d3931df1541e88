//! The plan as a graph: the stack's objects grouped by rollout phase, the bindings between them
//! (class → volume → claim → workload, templates, mounts, the headless Service) and each object
//! marked by its action. Rendered as Mermaid (for pull-request comments: GitHub draws it) and
//! as Graphviz DOT (`plan -o dot`). Pure.

use crate::kinds::{Kind, ROLLOUT_ORDER, phase_name};
use crate::plan::Plan;
use serde_json::Value;
use std::collections::BTreeMap;

/// One box.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    /// `pvc/data`.
    pub name: String,
    /// What happens to it: the plan action (`create`, `no-op`, …), `template` claims made by a
    /// StatefulSet, `external` objects the stack refers to but does not hold, `not-in-spec`.
    pub role: String,
    /// Index in [`ROLLOUT_ORDER`].
    pub phase: usize,
}

/// One arrow: `from` is what `to` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `class`, `binds`, `template`, `mounts`, `governs`.
    pub label: &'static str,
}

/// The plan's graph.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

impl Graph {
    fn node(&mut self, name: String, role: &str, phase: usize) -> String {
        let id = format!("n{}", self.nodes.len());
        self.nodes.push(Node {
            id: id.clone(),
            name,
            role: role.to_string(),
            phase,
        });
        id
    }

    fn find(&self, name: &str) -> Option<String> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .map(|n| n.id.clone())
    }

    /// The node of `name`, added as an external reference when the plan does not hold it.
    fn reference(&mut self, kind: Kind, name: &str) -> String {
        let full = format!("{}/{name}", kind.short());
        match self.find(&full) {
            Some(id) => id,
            None => self.node(full, "external", kind.phase()),
        }
    }

    fn edge(&mut self, from: String, to: String, label: &'static str) {
        let e = Edge { from, to, label };
        if !self.edges.contains(&e) {
            self.edges.push(e);
        }
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The object whose bindings a step's node shows: the manifest apply sends, or — for a step that
/// sends only a name (`delete`, `release`, a protected object's `error`) — the live object as the
/// plan saw it, so that a deleted claim still shows its volume and a deleted workload its claims.
fn bindings_of(step: &crate::plan::Step) -> &Value {
    match &step.before {
        Some(before) if step.manifest.get("spec").is_none() => before,
        _ => &step.manifest,
    }
}

/// Builds the graph of a plan.
pub fn graph(plan: &Plan) -> Graph {
    let mut g = Graph::default();
    let mut step_nodes = Vec::new();
    let workloads = ROLLOUT_ORDER.len() - 1;
    // Snapshots of claims that a workload binds, and their restores, go with the workloads.
    let late = crate::plan::ops::late_step_indices(&plan.steps);
    for (i, step) in plan.steps.iter().enumerate() {
        let phase = if late.contains(&i) {
            workloads
        } else {
            step.object.kind.phase()
        };
        let id = g.node(step.object.short(), step.action.as_str(), phase);
        step_nodes.push(id);
    }
    for id in &plan.not_in_spec {
        g.node(id.short(), "not-in-spec", id.kind.phase());
    }
    for (step, id) in plan.steps.iter().zip(step_nodes) {
        let m = bindings_of(step);
        match step.object.kind {
            Kind::PersistentVolume => {
                if let Some(class) = str_at(m, "/spec/storageClassName") {
                    let from = g.reference(Kind::StorageClass, class);
                    g.edge(from, id, "class");
                }
            }
            Kind::PersistentVolumeClaim => {
                if let Some(volume) = str_at(m, "/spec/volumeName") {
                    let from = g.reference(Kind::PersistentVolume, volume);
                    g.edge(from, id, "binds");
                } else if let Some(class) = str_at(m, "/spec/storageClassName") {
                    let from = g.reference(Kind::StorageClass, class);
                    g.edge(from, id, "class");
                }
            }
            kind if kind.is_workload() => {
                if kind == Kind::StatefulSet {
                    if let Some(service) = str_at(m, "/spec/serviceName")
                        && let Some(from) = g.find(&format!("service/{service}"))
                    {
                        g.edge(from, id.clone(), "governs");
                    }
                    let templates = m
                        .pointer("/spec/volumeClaimTemplates")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    for t in &templates {
                        let Some(tpl) = str_at(t, "/metadata/name") else {
                            continue;
                        };
                        let prefix = format!("{tpl}-{}-", step.object.name);
                        let claims = if step.wait.template_claims.is_empty() {
                            crate::kinds::template_claims(&step.object.name, m)
                        } else {
                            step.wait.template_claims.clone()
                        };
                        let count = claims.iter().filter(|c| c.starts_with(&prefix)).count();
                        let name = match count {
                            0 => format!("pvc/{prefix}N"),
                            1 => format!("pvc/{prefix}0"),
                            n => format!("pvc/{prefix}0…{}", n - 1),
                        };
                        let tid = g.node(name, "template", workloads);
                        if let Some(class) = str_at(t, "/spec/storageClassName") {
                            let from = g.reference(Kind::StorageClass, class);
                            g.edge(from, tid.clone(), "class");
                        }
                        g.edge(tid, id.clone(), "template");
                    }
                }
                for claim in crate::desired::mounted_claims(m) {
                    let from = g.reference(Kind::PersistentVolumeClaim, &claim);
                    g.edge(from, id.clone(), "mounts");
                }
            }
            _ => {}
        }
    }
    g
}

/// Fill and stroke of each role (GitHub's diff palette).
fn colors(role: &str) -> (&'static str, &'static str) {
    match role {
        "create" => ("#dafbe1", "#1a7f37"),
        "update" => ("#fff8c5", "#9a6700"),
        "adopt" => ("#ddf4ff", "#0969da"),
        "replace" => ("#fbefff", "#8250df"),
        "resize" => ("#fff1e5", "#bc4c00"),
        "release" => ("#ffeff7", "#bf3989"),
        "delete" => ("#ffebe9", "#cf222e"),
        "error" => ("#ffebe9", "#82071e"),
        "no-op" => ("#f6f8fa", "#8c959f"),
        "template" => ("#ffffff", "#57606a"),
        _ => ("#ffffff", "#8c959f"),
    }
}

/// A Mermaid class name for a role (`no-op` → `noop`).
fn class_name(role: &str) -> String {
    role.chars().filter(char::is_ascii_alphanumeric).collect()
}

/// What the box says under the object's name.
fn caption(role: &str) -> &str {
    match role {
        "external" => "in the cluster",
        "not-in-spec" => "not in the spec",
        "template" => "from the template",
        other => other,
    }
}

/// Nodes by phase, in rollout order (the phases without objects left out, the others numbered
/// from 1).
fn by_phase(g: &Graph) -> BTreeMap<usize, Vec<&Node>> {
    let mut phases: BTreeMap<usize, Vec<&Node>> = BTreeMap::new();
    for n in &g.nodes {
        phases.entry(n.phase).or_default().push(n);
    }
    phases
}

/// A Mermaid flowchart.
pub fn mermaid(plan: &Plan) -> String {
    let g = graph(plan);
    let mut out = String::from("flowchart LR\n");
    for (step, (phase, nodes)) in by_phase(&g).into_iter().enumerate() {
        out.push_str(&format!(
            "  subgraph p{phase} [\"{}. {}\"]\n",
            step + 1,
            phase_name(phase)
        ));
        for n in nodes {
            let (open, close) = if n.role == "template" {
                ("([", "])")
            } else {
                ("[", "]")
            };
            out.push_str(&format!(
                "    {}{open}\"{}<br/><i>{}</i>\"{close}:::{}\n",
                n.id,
                mermaid_text(&n.name),
                caption(&n.role),
                class_name(&n.role)
            ));
        }
        out.push_str("  end\n");
    }
    for e in &g.edges {
        let arrow = if e.label == "mounts" || e.label == "governs" {
            "-.->"
        } else {
            "-->"
        };
        out.push_str(&format!("  {} {arrow}|{}| {}\n", e.from, e.label, e.to));
    }
    let mut roles: Vec<&str> = g.nodes.iter().map(|n| n.role.as_str()).collect();
    roles.sort_unstable();
    roles.dedup();
    for role in roles {
        let (fill, stroke) = colors(role);
        let dash = if matches!(role, "external" | "not-in-spec" | "template") {
            ",stroke-dasharray:4 3"
        } else {
            ""
        };
        out.push_str(&format!(
            "  classDef {} fill:{fill},stroke:{stroke},color:#1f2328{dash}\n",
            class_name(role)
        ));
    }
    out
}

/// Text inside a quoted Mermaid label.
fn mermaid_text(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// A Graphviz digraph, one cluster per phase.
pub fn dot(plan: &Plan) -> String {
    let g = graph(plan);
    let mut out = format!(
        "digraph {} {{\n  rankdir=LR;\n  fontname=\"Helvetica\";\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=11];\n  edge [fontname=\"Helvetica\", fontsize=9, color=\"#57606a\"];\n",
        dot_text(&format!("{} ({})", plan.stack, plan.namespace))
    );
    for (step, (phase, nodes)) in by_phase(&g).into_iter().enumerate() {
        out.push_str(&format!(
            "  subgraph cluster_p{phase} {{\n    label={};\n    style=\"rounded,dashed\";\n    color=\"#8c959f\";\n",
            dot_text(&format!("{}. {}", step + 1, phase_name(phase)))
        ));
        for n in nodes {
            let (fill, stroke) = colors(&n.role);
            let style = if matches!(n.role.as_str(), "external" | "not-in-spec" | "template") {
                ", style=\"rounded,filled,dashed\""
            } else {
                ""
            };
            out.push_str(&format!(
                "    {} [label={}, fillcolor=\"{fill}\", color=\"{stroke}\"{style}];\n",
                n.id,
                dot_text(&format!("{}\n{}", n.name, caption(&n.role)))
            ));
        }
        out.push_str("  }\n");
    }
    for e in &g.edges {
        let style = if e.label == "mounts" || e.label == "governs" {
            ", style=dashed"
        } else {
            ""
        };
        out.push_str(&format!(
            "  {} -> {} [label={}{style}];\n",
            e.from,
            e.to,
            dot_text(e.label)
        ));
    }
    out.push_str("}\n");
    out
}

/// A quoted DOT string.
fn dot_text(s: &str) -> String {
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::ObjectRef;
    use crate::plan::Action;
    use serde_json::json;

    /// A plan of a stack with every kind of binding, its steps given several actions.
    pub(crate) fn sample() -> Plan {
        let text = r#"
name = "shop"
[[storage_class]]
name = "local"
provisioner = "kubernetes.io/no-provisioner"
binding_mode = "WaitForFirstConsumer"
[[volume]]
name = "disk-1"
capacity = "10Gi"
class = "local"
node = "node-1"
local = { path = "/mnt/disks/1" }
[[volume]]
name = "media"
capacity = "50Gi"
access_modes = ["RWX"]
nfs = { server = "nfs.example.com", path = "/media" }
[[claim]]
name = "media"
size = "50Gi"
access_modes = ["RWX"]
volume = "media"
[[claim]]
name = "uploads"
size = "5Gi"
class = "standard"
[[statefulset]]
name = "db"
image = "postgres:17"
replicas = 3
[[statefulset.volume_claim]]
name = "data"
size = "10Gi"
class = "local"
mount = "/var/lib/postgresql"
[[deployment]]
name = "web"
image = "shop:2"
replicas = 2
[[deployment.mount]]
claim = "media"
path = "/media"
[[deployment.mount]]
claim = "uploads"
path = "/uploads"
"#;
        let spec = crate::spec::load("shop.toml", text, "shop").unwrap();
        let objects = crate::desired::desired_objects(
            &spec,
            &crate::desired::Context {
                namespace: "demo".into(),
                ..Default::default()
            },
        );
        let action = |id: &ObjectRef| match (id.kind, id.name.as_str()) {
            (_, "disk-1") => "no-op",
            (_, "uploads") => "update",
            (Kind::Service, "db") => "replace",
            (Kind::StatefulSet, "db") => "resize",
            (_, "web") => "adopt",
            _ => "create",
        };
        let mut steps: Vec<crate::plan::Step> = objects
            .iter()
            .map(|d| {
                serde_json::from_value(json!({
                    "object": d.id, "action": action(&d.id), "origin": d.origin,
                    "manifest": d.manifest, "wait": {"template_claims": d.template_claims},
                }))
                .unwrap()
            })
            .collect();
        // Objects that left the spec: their steps send only a name (as `plan::prune` makes
        // them); what they were bound to is in the live object, `before`.
        let gone = |kind: Kind, name: &str, action: &str, before: Value| {
            let id = ObjectRef::new(kind, "demo", name);
            serde_json::from_value::<crate::plan::Step>(json!({
                "object": id, "action": action, "origin": "not in the spec",
                "manifest": {"apiVersion": kind.api_version(), "kind": kind.as_str(),
                             "metadata": {"name": name, "namespace": "demo"}},
                "before": before,
            }))
            .unwrap()
        };
        steps.push(gone(
            Kind::PersistentVolumeClaim,
            "logs",
            "delete",
            json!({"spec": {"volumeName": "disk-1", "storageClassName": "local"}}),
        ));
        steps.push(gone(
            Kind::StatefulSet,
            "cache",
            "delete",
            json!({"spec": {"replicas": 2, "serviceName": "db",
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                          "spec": {"storageClassName": "standard"}}]}}),
        ));
        steps.push(gone(
            Kind::Deployment,
            "legacy",
            "release",
            json!({"spec": {"template": {"spec": {"volumes": [
                {"name": "m", "persistentVolumeClaim": {"claimName": "media"}}]}}}}),
        ));
        let mut plan = Plan::new("shop".into(), "demo".into(), String::new(), steps);
        plan.not_in_spec = vec![ObjectRef::new(
            Kind::PersistentVolumeClaim,
            "demo",
            "old-cache",
        )];
        plan
    }

    #[test]
    fn the_graph_follows_the_bindings() {
        let g = graph(&sample());
        let name = |id: &str| g.nodes.iter().find(|n| n.id == id).unwrap().name.clone();
        let edges: Vec<String> = g
            .edges
            .iter()
            .map(|e| format!("{} -{}-> {}", name(&e.from), e.label, name(&e.to)))
            .collect();
        assert_eq!(
            edges,
            vec![
                "storageclass/local -class-> pv/disk-1",
                "pv/media -binds-> pvc/media",
                "storageclass/standard -class-> pvc/uploads",
                "service/db -governs-> statefulset/db",
                "storageclass/local -class-> pvc/data-db-0…2",
                "pvc/data-db-0…2 -template-> statefulset/db",
                "pvc/media -mounts-> deployment/web",
                "pvc/uploads -mounts-> deployment/web",
                "pv/disk-1 -binds-> pvc/logs",
                "service/db -governs-> statefulset/cache",
                "storageclass/standard -class-> pvc/data-cache-0…1",
                "pvc/data-cache-0…1 -template-> statefulset/cache",
                "pvc/media -mounts-> deployment/legacy",
            ]
        );
        let external = g
            .nodes
            .iter()
            .find(|n| n.name == "storageclass/standard")
            .unwrap();
        assert_eq!((external.role.as_str(), external.phase), ("external", 1));
    }

    #[test]
    fn objects_that_leave_keep_their_bindings_from_the_live_object() {
        let plan = sample();
        let g = graph(&plan);
        for (name, action) in [
            ("pvc/logs", "delete"),
            ("statefulset/cache", "delete"),
            ("deployment/legacy", "release"),
        ] {
            let node = g.nodes.iter().find(|n| n.name == name).unwrap();
            assert_eq!(node.role, action);
            let step = plan
                .steps
                .iter()
                .find(|s| s.object.short() == name)
                .unwrap();
            assert!(step.manifest.get("spec").is_none(), "{name}: a name only");
            assert!(
                g.edges.iter().any(|e| e.to == node.id),
                "{name} is drawn with what it was bound to"
            );
        }
    }

    #[test]
    fn every_action_has_a_colour_and_a_class_of_its_own() {
        let actions = [
            Action::Create,
            Action::Update,
            Action::Adopt,
            Action::Replace,
            Action::Resize,
            Action::NoOp,
            Action::Delete,
            Action::Release,
            Action::Error,
        ];
        let mut seen = std::collections::BTreeMap::new();
        for a in actions {
            let c = colors(a.as_str());
            assert_ne!(c, colors("unknown"), "{} has no colour", a.as_str());
            if let Some(other) = seen.insert(c, a.as_str()) {
                panic!("{} and {other} look the same", a.as_str());
            }
        }
        let classes: std::collections::BTreeSet<String> =
            actions.iter().map(|a| class_name(a.as_str())).collect();
        assert_eq!(classes.len(), actions.len());
        // The sample draws every action but `error`.
        let text = mermaid(&sample());
        for a in actions.iter().filter(|a| **a != Action::Error) {
            assert!(
                text.contains(&format!(":::{}\n", class_name(a.as_str()))),
                "{} is not in the sample",
                a.as_str()
            );
        }
    }

    #[test]
    fn a_snapshot_of_a_template_claim_sits_with_the_workloads() {
        let text = "[[statefulset]]\nname = \"db\"\nimage = \"img:1\"\n[[statefulset.volume_claim]]\nname = \"data\"\nsize = \"1Gi\"\nmount = \"/data\"\n\n[[claim]]\nname = \"logs\"\nsize = \"1Gi\"\n\n[[snapshot]]\nname = \"db-backup\"\nclaim = \"data-db-0\"\n\n[[snapshot]]\nname = \"logs-backup\"\nclaim = \"logs\"\n";
        let spec = crate::spec::load("s.toml", text, "s").unwrap();
        let steps = crate::desired::desired_objects(
            &spec,
            &crate::desired::Context {
                namespace: "ns".into(),
                ..Default::default()
            },
        )
        .iter()
        .map(|d| {
            serde_json::from_value(json!({
                "object": d.id, "action": "create", "origin": d.origin,
                "manifest": d.manifest, "wait": {"template_claims": d.template_claims},
            }))
            .unwrap()
        })
        .collect();
        let g = graph(&Plan::new("s".into(), "ns".into(), String::new(), steps));
        let phase = |name: &str| g.nodes.iter().find(|n| n.name == name).unwrap().phase;
        assert_eq!(phase("volumesnapshot/db-backup"), phase("statefulset/db"));
        assert_eq!(phase("volumesnapshot/logs-backup"), phase("pvc/logs"));
    }

    #[test]
    fn mermaid_snapshot_is_well_formed() {
        let text = mermaid(&sample());
        check_mermaid(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn dot_snapshot_parses() {
        let text = dot(&sample());
        let parsed = graphviz_rust::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let graphviz_rust::dot_structures::Graph::DiGraph { stmts, .. } = parsed else {
            panic!("not a digraph");
        };
        let clusters = stmts
            .iter()
            .filter(|s| matches!(s, graphviz_rust::dot_structures::Stmt::Subgraph(_)))
            .count();
        assert_eq!(clusters, 5, "one cluster per phase with objects");
        let edges = stmts
            .iter()
            .filter(|s| matches!(s, graphviz_rust::dot_structures::Stmt::Edge(_)))
            .count();
        assert_eq!(edges, 13);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_markdown_plan_carries_the_diagram() {
        let md = crate::render::markdown(&sample());
        let block = md
            .split("```mermaid\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a mermaid block");
        check_mermaid(block);
        assert_eq!(block, mermaid(&sample()));
    }

    /// A structural check of the Mermaid flowchart subset the renderer writes: every line is a
    /// header, a subgraph, a node, an edge or a class definition; subgraphs close; edges join
    /// defined nodes; every node's class is defined; labels are quoted without stray quotes.
    pub(crate) fn check_mermaid(text: &str) {
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("flowchart LR"));
        let mut depth = 0;
        let mut nodes = std::collections::BTreeSet::new();
        let mut used_classes = std::collections::BTreeSet::new();
        let mut defined_classes = std::collections::BTreeSet::new();
        let mut edges = Vec::new();
        let ident =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        for line in lines {
            let t = line.trim();
            if let Some(rest) = t.strip_prefix("subgraph ") {
                let (id, title) = rest.split_once(' ').expect("subgraph title");
                assert!(ident(id), "{line}");
                assert!(title.starts_with("[\"") && title.ends_with("\"]"), "{line}");
                assert_eq!(title.matches('"').count(), 2, "{line}");
                depth += 1;
            } else if t == "end" {
                depth -= 1;
                assert!(depth >= 0, "unbalanced end");
            } else if let Some(rest) = t.strip_prefix("classDef ") {
                let (name, style) = rest.split_once(' ').expect("classDef style");
                assert!(ident(name) && style.contains("fill:"), "{line}");
                defined_classes.insert(name.to_string());
            } else if t.contains("-->|") || t.contains("-.->|") {
                let parts: Vec<&str> = t.split_whitespace().collect();
                assert_eq!(parts.len(), 3, "{line}");
                let label = parts[1].split('|').nth(1).expect("edge label");
                assert!(ident(label), "{line}");
                edges.push((parts[0].to_string(), parts[2].to_string()));
            } else {
                let (node, class) = t.rsplit_once(":::").expect("node with a class");
                let open = node.find(['[', '(']).expect("node shape");
                let (id, shape) = node.split_at(open);
                assert!(ident(id), "{line}");
                let inner = match shape {
                    s if s.starts_with("([") => {
                        s.strip_prefix("([").and_then(|s| s.strip_suffix("])"))
                    }
                    s => s.strip_prefix('[').and_then(|s| s.strip_suffix(']')),
                }
                .expect("balanced shape");
                assert!(
                    inner.starts_with('"')
                        && inner.ends_with('"')
                        && inner.matches('"').count() == 2,
                    "{line}"
                );
                assert!(depth > 0, "nodes sit in their phase: {line}");
                assert!(nodes.insert(id.to_string()), "node defined twice: {line}");
                used_classes.insert(class.to_string());
            }
        }
        assert_eq!(depth, 0, "unclosed subgraph");
        for (from, to) in edges {
            assert!(
                nodes.contains(&from) && nodes.contains(&to),
                "{from} -> {to}"
            );
        }
        assert_eq!(used_classes, defined_classes);
    }
}
