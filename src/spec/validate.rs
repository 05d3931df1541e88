//! Validation of a parsed spec. Every check adds to one list, so the user sees all problems at once.

use super::quantity::Quantity;
use super::{AccessMode, Spec, SpecIssue};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use toml::Spanned;

/// Names of objects that already exist in the cluster, for [`check_references`].
#[derive(Debug, Default, Clone)]
pub struct ClusterNames {
    pub storage_classes: BTreeSet<String>,
    /// PersistentVolumes by name: capacity, access modes and class.
    pub volumes: BTreeMap<String, ClusterVolume>,
    /// PersistentVolumeClaims in the target namespace.
    pub claims: BTreeSet<String>,
}

/// What validation needs to know about a PersistentVolume that exists in the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterVolume {
    pub capacity: Option<String>,
    pub access_modes: Vec<String>,
    pub class: String,
}

pub(super) fn validate(spec: &Spec) -> Vec<SpecIssue> {
    let mut v = Validator::default();
    if let Some(name) = &spec.name {
        v.label_value("name", name);
    }
    if let Some(ns) = &spec.namespace {
        v.dns_label("namespace", ns);
    }
    let mut seen = HashMap::new();
    for (i, sc) in spec.storage_classes.iter().enumerate() {
        let key = format!("storage_class[{i}]");
        v.subdomain(&format!("{key}.name"), &sc.get_ref().name);
        v.unique(&mut seen, "StorageClass", &key, &sc.get_ref().name);
    }
    let mut seen = HashMap::new();
    for (i, entry) in spec.volumes.iter().enumerate() {
        let key = format!("volume[{i}]");
        let vol = entry.get_ref();
        v.subdomain(&format!("{key}.name"), &vol.name);
        v.unique(&mut seen, "volume", &key, &vol.name);
        v.quantity(&format!("{key}.capacity"), &vol.capacity, true);
        v.access_modes(
            &format!("{key}.access_modes"),
            &vol.access_modes,
            entry.span(),
        );
        let sources = [
            vol.local.is_some(),
            vol.host_path.is_some(),
            vol.nfs.is_some(),
            vol.csi.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if sources != 1 {
            v.push(
                SpecIssue::new(
                    &key,
                    Some(vol.name.span()),
                    format!("a volume needs exactly one source, found {sources}"),
                )
                .help("set one of volume.local, volume.host_path, volume.nfs or volume.csi"),
            );
        }
        if vol.local.is_some() && vol.node.is_none() && vol.patch.is_none() {
            v.push(
                SpecIssue::new(
                    &key,
                    Some(vol.name.span()),
                    "a local volume needs node affinity",
                )
                .help(
                    "add node = \"<node name>\" so the scheduler places its consumers on that node",
                ),
            );
        }
        if let Some(node) = &vol.node {
            v.subdomain(&format!("{key}.node"), node);
        }
        v.class_name(&format!("{key}.class"), &vol.class);
    }
    let mut seen = HashMap::new();
    for (i, entry) in spec.claims.iter().enumerate() {
        let key = format!("claim[{i}]");
        let claim = entry.get_ref();
        v.subdomain(&format!("{key}.name"), &claim.name);
        v.unique(&mut seen, "claim", &key, &claim.name);
        v.quantity(&format!("{key}.size"), &claim.size, true);
        v.access_modes(
            &format!("{key}.access_modes"),
            &claim.access_modes,
            entry.span(),
        );
        v.class_name(&format!("{key}.class"), &claim.class);
        if let Some(vol) = &claim.volume {
            v.subdomain(&format!("{key}.volume"), vol);
        }
        if claim.volume.is_some() && !claim.selector.is_empty() {
            v.push(SpecIssue::new(
                &key,
                Some(entry.span()),
                "set either volume or selector, not both",
            ));
        }
        // A claim naming a volume of the spec must fit it.
        if let Some(vol_name) = &claim.volume
            && let Some(vol) = spec
                .volumes
                .iter()
                .find(|vol| vol.get_ref().name.get_ref() == vol_name.get_ref())
        {
            let vol = vol.get_ref();
            let fit = ClusterVolume {
                capacity: Some(vol.capacity.get_ref().clone()),
                access_modes: vol
                    .access_modes
                    .get_ref()
                    .iter()
                    .map(|m| m.to_string())
                    .collect(),
                class: vol
                    .class
                    .as_ref()
                    .map(|c| c.get_ref().clone())
                    .unwrap_or_default(),
            };
            v.claim_fits(&key, claim, entry.span(), &fit);
        }
    }
    let mut seen = HashMap::new();
    for (i, entry) in spec.snapshots.iter().enumerate() {
        let key = format!("snapshot[{i}]");
        let snap = entry.get_ref();
        v.subdomain(&format!("{key}.name"), &snap.name);
        v.unique(&mut seen, "snapshot", &key, &snap.name);
        v.subdomain(&format!("{key}.claim"), &snap.claim);
        if let Some(class) = &snap.class {
            v.subdomain(&format!("{key}.class"), class);
        }
    }
    for (i, entry) in spec.claims.iter().enumerate() {
        let claim = entry.get_ref();
        if let Some(snap) = &claim.from_snapshot {
            v.subdomain(&format!("claim[{i}].from_snapshot"), snap);
            if claim.volume.is_some() {
                v.push(SpecIssue::new(
                    format!("claim[{i}].from_snapshot"),
                    Some(snap.span()),
                    "a claim restored from a snapshot gets a new volume: set either from_snapshot or volume",
                ));
            }
        }
    }
    let mut services = HashMap::new();
    for (table, kind, list) in [
        ("statefulset", WorkloadKind::StatefulSet, &spec.statefulsets),
        ("deployment", WorkloadKind::Deployment, &spec.deployments),
        ("daemonset", WorkloadKind::DaemonSet, &spec.daemonsets),
    ] {
        let mut seen = HashMap::new();
        for (i, entry) in list.iter().enumerate() {
            let key = format!("{table}[{i}]");
            v.unique(&mut seen, table, &key, &entry.get_ref().name);
            v.workload(kind, &key, entry, &mut services);
        }
    }
    v.issues
}

/// The workload kinds sharing [`super::WorkloadSpec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkloadKind {
    StatefulSet,
    Deployment,
    DaemonSet,
}

impl WorkloadKind {
    fn name(self) -> &'static str {
        match self {
            WorkloadKind::StatefulSet => "a StatefulSet",
            WorkloadKind::Deployment => "a Deployment",
            WorkloadKind::DaemonSet => "a DaemonSet",
        }
    }
}

impl Validator {
    /// The checks every workload kind shares, and the keys that do not apply to its kind.
    fn workload(
        &mut self,
        kind: WorkloadKind,
        key: &str,
        entry: &Spanned<super::WorkloadSpec>,
        services: &mut HashMap<String, String>,
    ) {
        let w = entry.get_ref();
        let v = self;
        v.dns_label(&format!("{key}.name"), &w.name);
        if w.name.get_ref().len() > 52 {
            v.push(
                SpecIssue::new(format!("{key}.name"), Some(w.name.span()), "workload names longer than 52 characters cannot label their pods")
                    .help("the controller adds a revision-hash label of <name>-<hash>, which must stay within 63 characters"),
            );
        }
        let not_for = |v: &mut Validator, field: &str, span: Option<std::ops::Range<usize>>| {
            v.push(SpecIssue::new(
                format!("{key}.{field}"),
                Some(span.unwrap_or_else(|| w.name.span())),
                format!("{field} does not apply to {}", kind.name()),
            ));
        };
        if kind != WorkloadKind::StatefulSet {
            if let Some(s) = &w.service {
                not_for(v, "service", Some(s.span()));
            }
            if w.pod_management_policy.is_some() {
                not_for(v, "pod_management_policy", None);
            }
            if w.retention.is_some() {
                not_for(v, "retention", None);
            }
            if let Some(t) = w.volume_claims.first() {
                v.push(
                    SpecIssue::new(
                        format!("{key}.volume_claim"),
                        Some(t.span()),
                        format!("claim templates are for StatefulSets, not {}", kind.name()),
                    )
                    .help("declare a [[claim]] and mount it with [[…mount]]"),
                );
            }
        }
        if kind != WorkloadKind::Deployment
            && let Some(s) = &w.strategy
        {
            not_for(v, "strategy", Some(s.span()));
        }
        if kind == WorkloadKind::Deployment && w.update_strategy.is_some() {
            v.push(
                SpecIssue::new(
                    format!("{key}.update_strategy"),
                    Some(w.name.span()),
                    "update_strategy does not apply to a Deployment",
                )
                .help("a Deployment takes strategy = { type = \"RollingUpdate\" } or { type = \"Recreate\" }"),
            );
        }
        if kind != WorkloadKind::DaemonSet
            && let Some(s) = &w.node_selector
        {
            not_for(v, "node_selector", Some(s.span()));
        }
        if kind == WorkloadKind::DaemonSet
            && let Some(r) = &w.replicas
        {
            v.push(
                SpecIssue::new(
                    format!("{key}.replicas"),
                    Some(r.span()),
                    "replicas does not apply to a DaemonSet: it runs one pod per selected node",
                )
                .help("use node_selector to choose the nodes"),
            );
        }
        if kind == WorkloadKind::StatefulSet {
            let service = w.service.clone().unwrap_or_else(|| w.name.clone());
            v.dns_label(&format!("{key}.service"), &service);
            v.unique(services, "service", &format!("{key}.service"), &service);
        }
        if let Some(r) = &w.replicas
            && *r.get_ref() < 0
        {
            v.push(SpecIssue::new(
                format!("{key}.replicas"),
                Some(r.span()),
                "replicas must not be negative",
            ));
        }
        if w.image.trim().is_empty() {
            v.push(SpecIssue::new(
                format!("{key}.image"),
                Some(w.name.span()),
                "image must not be empty",
            ));
        }
        for (name, value) in &w.env {
            if let super::EnvValue::Ref(r) = value.get_ref()
                && r.secret.is_some() == r.config_map.is_some()
            {
                v.push(SpecIssue::new(
                    format!("{key}.env.{name}"),
                    Some(value.span()),
                    "an environment reference names exactly one of secret or config_map",
                ));
            }
        }
        for (j, e) in w.env_from.iter().enumerate() {
            let r = e.get_ref();
            if r.secret.is_some() == r.config_map.is_some() {
                v.push(SpecIssue::new(
                    format!("{key}.env_from[{j}]"),
                    Some(e.span()),
                    "env_from names exactly one of secret or config_map",
                ));
            }
        }
        for (j, port) in w.ports.iter().enumerate() {
            let n = match port {
                super::PortSpec::Number(n) => *n,
                super::PortSpec::Full(p) => p.port,
            };
            if !(1..=65535).contains(&n) {
                v.push(SpecIssue::new(
                    format!("{key}.ports[{j}]"),
                    Some(w.name.span()),
                    format!("port {n} is not between 1 and 65535"),
                ));
            }
        }
        for (section, map) in [
            ("requests", &w.resources.requests),
            ("limits", &w.resources.limits),
        ] {
            for (res, q) in map {
                v.quantity(&format!("{key}.resources.{section}.{res}"), q, true);
            }
        }
        if let Some(us) = &w.update_strategy
            && us.kind == super::UpdateStrategyType::OnDelete
            && (us.partition.is_some() || us.max_unavailable.is_some())
        {
            v.push(SpecIssue::new(
                format!("{key}.update_strategy"),
                Some(w.name.span()),
                "partition and max_unavailable apply only to RollingUpdate",
            ));
        }
        if kind == WorkloadKind::DaemonSet
            && let Some(us) = &w.update_strategy
            && us.partition.is_some()
        {
            not_for(v, "update_strategy.partition", None);
        }
        let mut names = HashMap::new();
        let mut paths = HashMap::new();
        for (j, tpl) in w.volume_claims.iter().enumerate() {
            let tkey = format!("{key}.volume_claim[{j}]");
            let t = tpl.get_ref();
            v.dns_label(&format!("{tkey}.name"), &t.name);
            v.unique(&mut names, "volume", &tkey, &t.name);
            v.quantity(&format!("{tkey}.size"), &t.size, true);
            v.access_modes(&format!("{tkey}.access_modes"), &t.access_modes, tpl.span());
            v.class_name(&format!("{tkey}.class"), &t.class);
            v.mount_path(&format!("{tkey}.mount"), &t.mount, &mut paths);
        }
        for (j, m) in w.mounts.iter().enumerate() {
            let mkey = format!("{key}.mount[{j}]");
            let m = m.get_ref();
            v.dns_label(&format!("{mkey}.claim"), &m.claim);
            v.unique(&mut names, "volume", &mkey, &m.claim);
            v.mount_path(&format!("{mkey}.path"), &m.path, &mut paths);
        }
    }
}

/// Checks the references that may point into the cluster: classes and volumes named by claims and
/// templates, claims mounted by workloads. Call it with the names found in the cluster.
///
/// A class needs no StorageClass object when a volume (in the spec or the cluster) carries it:
/// that is static binding (the tutorials' `manual` class). A claim naming a class that has
/// neither is not an error but a warning (see [`warnings`]): it stays Pending until such a
/// volume exists.
pub fn check_references(spec: &Spec, cluster: &ClusterNames) -> Vec<SpecIssue> {
    let mut v = Validator::default();
    let spec_volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .map(|s| s.get_ref().name.get_ref().as_str())
        .collect();
    let spec_claims: BTreeSet<&str> = spec
        .claims
        .iter()
        .map(|s| s.get_ref().name.get_ref().as_str())
        .collect();
    for (i, entry) in spec.claims.iter().enumerate() {
        let claim = entry.get_ref();
        let key = format!("claim[{i}]");
        if let Some(vol) = &claim.volume {
            let name = vol.get_ref().as_str();
            if !spec_volumes.contains(name) {
                match cluster.volumes.get(name) {
                    Some(found) => v.claim_fits(&key, claim, entry.span(), found),
                    None => v.push(
                        SpecIssue::new(format!("{key}.volume"), Some(vol.span()), format!("PersistentVolume {name:?} is neither in the spec nor in the cluster"))
                            .label("unknown volume")
                            .help(known("volumes", spec_volumes.iter().copied().chain(cluster.volumes.keys().map(String::as_str)))),
                    ),
                }
            }
        }
    }
    // A snapshot's claim: standalone (spec or namespace), or made from a StatefulSet's template.
    let from_template = |claim: &str| {
        spec.statefulsets.iter().any(|s| {
            let s = s.get_ref();
            s.volume_claims.iter().any(|t| {
                claim
                    .strip_prefix(&format!(
                        "{}-{}-",
                        t.get_ref().name.get_ref(),
                        s.name.get_ref()
                    ))
                    .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            })
        })
    };
    for (i, snap) in spec.snapshots.iter().enumerate() {
        let claim = snap.get_ref().claim.get_ref().as_str();
        if !spec_claims.contains(claim) && !cluster.claims.contains(claim) && !from_template(claim)
        {
            v.push(
                SpecIssue::new(
                    format!("snapshot[{i}].claim"),
                    Some(snap.get_ref().claim.span()),
                    format!("claim {claim:?} is neither in the spec, nor a claim of a StatefulSet's templates, nor in the namespace"),
                )
                .label("unknown claim"),
            );
        }
    }
    for (table, list) in workloads(spec) {
        for (i, w) in list.iter().enumerate() {
            for (j, m) in w.get_ref().mounts.iter().enumerate() {
                let claim = m.get_ref().claim.get_ref().as_str();
                if !spec_claims.contains(claim) && !cluster.claims.contains(claim) {
                    v.push(
                        SpecIssue::new(
                            format!("{table}[{i}].mount[{j}].claim"),
                            Some(m.get_ref().claim.span()),
                            format!("claim {claim:?} is neither in the spec nor in the namespace"),
                        )
                        .label("unknown claim")
                        .help(known(
                            "claims",
                            spec_claims
                                .iter()
                                .copied()
                                .chain(cluster.claims.iter().map(String::as_str)),
                        )),
                    );
                }
            }
        }
    }
    v.issues
}

/// The workload tables of a spec, with their TOML names.
pub(crate) fn workloads(spec: &Spec) -> [(&'static str, &Vec<Spanned<super::WorkloadSpec>>); 3] {
    [
        ("statefulset", &spec.statefulsets),
        ("deployment", &spec.deployments),
        ("daemonset", &spec.daemonsets),
    ]
}

/// Names that look like they hold a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "PASSWD", "TOKEN", "SECRET", "KEY"]
        .iter()
        .any(|w| upper.contains(w))
}

/// Problems that do not stop a plan but that the user should see, at their place in the spec:
/// claims of a class that has neither a StorageClass nor a volume, ReadWriteOnce claims shared
/// by pods that may run on several nodes, and secrets written in plain text.
pub fn warnings(spec: &Spec, cluster: &ClusterNames) -> Vec<SpecIssue> {
    let mut out = Vec::new();
    let mut classes: BTreeSet<String> = cluster.storage_classes.clone();
    classes.extend(
        spec.storage_classes
            .iter()
            .map(|s| s.get_ref().name.get_ref().clone()),
    );
    // Classes carried by volumes bind statically without a StorageClass object.
    classes.extend(cluster.volumes.values().map(|v| v.class.clone()));
    classes.extend(
        spec.volumes
            .iter()
            .filter_map(|v| v.get_ref().class.as_ref().map(|c| c.get_ref().clone())),
    );
    let mut class_ref = |key: String, class: &Option<Spanned<String>>| {
        if let Some(class) = class {
            let name = class.get_ref();
            if !name.is_empty() && !classes.contains(name) {
                out.push(
                    SpecIssue::new(
                        key,
                        Some(class.span()),
                        format!("no StorageClass and no volume has class {name:?}: the claim stays Pending until a volume of class {name:?} exists"),
                    )
                    .label("unknown class")
                    .help(known("classes", classes.iter().map(String::as_str).filter(|c| !c.is_empty()))),
                );
            }
        }
    };
    for (i, c) in spec.claims.iter().enumerate() {
        class_ref(format!("claim[{i}].class"), &c.get_ref().class);
    }
    for (i, sts) in spec.statefulsets.iter().enumerate() {
        for (j, t) in sts.get_ref().volume_claims.iter().enumerate() {
            class_ref(
                format!("statefulset[{i}].volume_claim[{j}].class"),
                &t.get_ref().class,
            );
        }
    }
    let single_node =
        |claim: &str| {
            spec.claims
                .iter()
                .find(|c| c.get_ref().name.get_ref() == claim)
                .is_some_and(|c| {
                    c.get_ref().access_modes.get_ref().iter().all(|m| {
                        matches!(m, AccessMode::ReadWriteOnce | AccessMode::ReadWriteOncePod)
                    })
                })
        };
    for (table, list) in workloads(spec) {
        for (i, entry) in list.iter().enumerate() {
            let w = entry.get_ref();
            let shared = table == "daemonset" || w.replicas() > 1;
            for (j, m) in w.mounts.iter().enumerate() {
                let claim = m.get_ref().claim.get_ref();
                if shared && single_node(claim) {
                    let who = match table {
                        "daemonset" => "a DaemonSet runs a pod on every node".to_string(),
                        _ => format!("{} replicas may run on different nodes", w.replicas()),
                    };
                    out.push(
                        SpecIssue::new(
                            format!("{table}[{i}].mount[{j}].claim"),
                            Some(m.get_ref().claim.span()),
                            format!("claim {claim:?} is ReadWriteOnce but {who}: pods on other nodes cannot mount it and stay Pending"),
                        )
                        .label("single-node claim")
                        .help("give the claim access_modes = [\"ReadWriteMany\"] (a class that supports it), or run one replica"),
                    );
                }
            }
            for (name, value) in &w.env {
                if let super::EnvValue::Plain(_) = value.get_ref()
                    && looks_secret(name)
                {
                    out.push(
                        SpecIssue::new(
                            format!("{table}[{i}].env.{name}"),
                            Some(value.span()),
                            format!("{name} looks like a secret but is written in plain text; it is masked in plans, but it is stored in the object and in this file"),
                        )
                        .label("plain-text secret")
                        .help(format!("reference a Secret instead: {name} = {{ secret = \"NAME\", key = \"KEY\" }}")),
                    );
                }
            }
        }
    }
    out
}

fn known<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: BTreeSet<&str> = names.collect();
    if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!(
            "known {what}: {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )
    }
}

#[derive(Default)]
struct Validator {
    issues: Vec<SpecIssue>,
}

impl Validator {
    fn push(&mut self, issue: SpecIssue) {
        self.issues.push(issue);
    }

    fn subdomain(&mut self, key: &str, name: &Spanned<String>) {
        if let Err(why) = check_subdomain(name.get_ref()) {
            self.push(
                SpecIssue::new(key, Some(name.span()), format!("{:?} is not a valid name: {why}", name.get_ref()))
                    .label("not a DNS-1123 subdomain")
                    .help("use lower case letters, digits, '-' and '.', starting and ending with a letter or digit"),
            );
        }
    }

    /// A class reference: empty (no class) or a valid name.
    fn class_name(&mut self, key: &str, class: &Option<Spanned<String>>) {
        if let Some(class) = class
            && !class.get_ref().is_empty()
        {
            self.subdomain(key, class);
        }
    }

    fn dns_label(&mut self, key: &str, name: &Spanned<String>) {
        if let Err(why) = check_label(name.get_ref()) {
            self.push(
                SpecIssue::new(key, Some(name.span()), format!("{:?} is not a valid name: {why}", name.get_ref()))
                    .label("not a DNS-1123 label")
                    .help("use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit"),
            );
        }
    }

    fn label_value(&mut self, key: &str, value: &Spanned<String>) {
        let s = value.get_ref();
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            self.push(
                SpecIssue::new(key, Some(value.span()), format!("{s:?} cannot be used as a label value"))
                    .help("use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"),
            );
        }
    }

    fn unique(
        &mut self,
        seen: &mut HashMap<String, String>,
        what: &str,
        key: &str,
        name: &Spanned<String>,
    ) {
        if let Some(first) = seen.get(name.get_ref()) {
            self.push(
                SpecIssue::new(
                    key,
                    Some(name.span()),
                    format!(
                        "duplicate {what} name {:?} (first defined at {first})",
                        name.get_ref()
                    ),
                )
                .label("duplicate"),
            );
        } else {
            seen.insert(name.get_ref().clone(), key.to_string());
        }
    }

    fn quantity(&mut self, key: &str, value: &Spanned<String>, positive: bool) -> Option<Quantity> {
        match Quantity::parse(value.get_ref()) {
            Ok(q) if positive && (q.is_negative() || q.as_f64() == 0.0) => {
                self.push(SpecIssue::new(
                    key,
                    Some(value.span()),
                    format!("{:?} must be greater than zero", value.get_ref()),
                ));
                None
            }
            Ok(q) => Some(q),
            Err(e) => {
                self.push(
                    SpecIssue::new(
                        key,
                        Some(value.span()),
                        format!("invalid quantity {:?}: {e}", value.get_ref()),
                    )
                    .label("not a quantity")
                    .help("write sizes like 10Gi, 500Mi or 1Ti (binary) or 10G (decimal)"),
                );
                None
            }
        }
    }

    fn access_modes(&mut self, key: &str, modes: &Spanned<Vec<AccessMode>>, entry: Range<usize>) {
        let span = if modes.span().is_empty() {
            entry
        } else {
            modes.span()
        };
        if modes.get_ref().is_empty() {
            self.push(SpecIssue::new(
                key,
                Some(span),
                "at least one access mode is required",
            ));
        } else if modes.get_ref().contains(&AccessMode::ReadWriteOncePod)
            && modes.get_ref().len() > 1
        {
            self.push(SpecIssue::new(
                key,
                Some(span),
                "ReadWriteOncePod cannot be combined with other access modes",
            ));
        }
    }

    fn mount_path(
        &mut self,
        key: &str,
        path: &Spanned<String>,
        seen: &mut HashMap<String, String>,
    ) {
        if !path.get_ref().starts_with('/') {
            self.push(SpecIssue::new(
                key,
                Some(path.span()),
                format!("mount path {:?} must be absolute", path.get_ref()),
            ));
        }
        self.unique(seen, "mount path", key, path);
    }

    fn claim_fits(
        &mut self,
        key: &str,
        claim: &super::ClaimSpec,
        entry: Range<usize>,
        vol: &ClusterVolume,
    ) {
        let vol_name = claim
            .volume
            .as_ref()
            .map(|v| v.get_ref().as_str())
            .unwrap_or_default();
        if let (Ok(size), Some(Ok(cap))) = (
            Quantity::parse(claim.size.get_ref()),
            vol.capacity.as_deref().map(Quantity::parse),
        ) && size > cap
        {
            self.push(
                SpecIssue::new(
                    format!("{key}.size"),
                    Some(claim.size.span()),
                    format!(
                        "claim asks for {} but volume {vol_name:?} holds only {}",
                        claim.size.get_ref(),
                        vol.capacity.as_deref().unwrap_or("?")
                    ),
                )
                .label("larger than its volume"),
            );
        }
        let missing: Vec<String> = claim
            .access_modes
            .get_ref()
            .iter()
            .map(|m| m.to_string())
            .filter(|m| !vol.access_modes.contains(m))
            .collect();
        if !missing.is_empty() {
            let span = if claim.access_modes.span().is_empty() {
                entry
            } else {
                claim.access_modes.span()
            };
            self.push(
                SpecIssue::new(
                    format!("{key}.access_modes"),
                    Some(span),
                    format!(
                        "volume {vol_name:?} does not offer {} (it offers {})",
                        missing.join(", "),
                        vol.access_modes.join(", ")
                    ),
                )
                .label("access mode mismatch"),
            );
        }
        if let Some(class) = &claim.class
            && class.get_ref() != &vol.class
        {
            self.push(
                SpecIssue::new(
                    format!("{key}.class"),
                    Some(class.span()),
                    format!("claim class {:?} differs from volume {vol_name:?}'s class {:?}; they would never bind", class.get_ref(), vol.class),
                )
                .label("class mismatch"),
            );
        }
    }
}

/// Checks a DNS-1123 subdomain (names of most objects).
pub fn check_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "it has {} characters, at most 253 are allowed",
            s.len()
        ));
    }
    for part in s.split('.') {
        check_label_chars(part)?;
    }
    Ok(())
}

/// Checks a DNS-1123 label (namespaces, StatefulSets, Services, volume names).
pub fn check_label(s: &str) -> Result<(), String> {
    if s.len() > 63 {
        return Err(format!(
            "it has {} characters, at most 63 are allowed",
            s.len()
        ));
    }
    check_label_chars(s)
}

fn check_label_chars(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it has an empty part".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("{c:?} is not allowed"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}
