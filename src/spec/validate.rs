//! Validation of a parsed spec. Every check adds to one list, so the user sees all problems at once.

use super::quantity::Quantity;
use super::{AccessMode, Spec, SpecIssue};
use crate::kinds::statefulset::template_claim_ordinal;
use crate::kinds::{MANAGED_BY, STACK_LABEL};
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
    v.labels("labels", &spec.labels);
    if spec.storage_classes.is_empty()
        && spec.volumes.is_empty()
        && spec.claims.is_empty()
        && spec.snapshots.is_empty()
        && spec.statefulsets.is_empty()
        && spec.deployments.is_empty()
        && spec.daemonsets.is_empty()
    {
        v.push(
            SpecIssue::new("(top level)", Some(0..0), "the spec defines no objects")
                .label("nothing to plan")
                .help("add at least one [[storage_class]], [[volume]], [[claim]], [[snapshot]], [[statefulset]], [[deployment]] or [[daemonset]] table; to remove a whole stack, use `kubectl stateful destroy`"),
        );
    }
    let mut seen = HashMap::new();
    for (i, sc) in spec.storage_classes.iter().enumerate() {
        let key = format!("storage_class[{i}]");
        v.subdomain(&format!("{key}.name"), &sc.get_ref().name);
        v.unique(&mut seen, "StorageClass name", &key, &sc.get_ref().name);
        v.labels(&format!("{key}.labels"), &sc.get_ref().labels);
        v.patch(&key, sc.get_ref().patch.as_ref());
    }
    let mut seen = HashMap::new();
    for (i, entry) in spec.volumes.iter().enumerate() {
        let key = format!("volume[{i}]");
        let vol = entry.get_ref();
        v.subdomain(&format!("{key}.name"), &vol.name);
        v.unique(&mut seen, "volume name", &key, &vol.name);
        v.size(&format!("{key}.capacity"), &vol.capacity);
        v.labels(&format!("{key}.labels"), &vol.labels);
        v.patch(&key, vol.patch.as_ref());
        if let Some(l) = &vol.local {
            v.absolute(&format!("{key}.local.path"), &l.path);
        }
        if let Some(h) = &vol.host_path {
            v.absolute(&format!("{key}.host_path.path"), &h.path);
        }
        if let Some(n) = &vol.nfs {
            v.absolute(&format!("{key}.nfs.path"), &n.path);
        }
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
        v.unique(&mut seen, "claim name", &key, &claim.name);
        v.size(&format!("{key}.size"), &claim.size);
        v.labels(&format!("{key}.labels"), &claim.labels);
        v.selector(&format!("{key}.selector"), &claim.selector);
        v.patch(&key, claim.patch.as_ref());
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
            v.unique(
                &mut seen,
                &format!("{table} name"),
                &key,
                &entry.get_ref().name,
            );
            v.workload(kind, &key, entry, &mut services, &spec.claims);
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
        claims: &[Spanned<super::ClaimSpec>],
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
                span,
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
                    None,
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
            // The governing Service: generated per StatefulSet, so two may not share a name.
            let (service_key, service) = match &w.service {
                Some(s) => (format!("{key}.service"), s),
                None => (format!("{key}.name"), &w.name),
            };
            if w.service.is_some() {
                v.dns_label(&service_key, service);
            }
            if service.get_ref().starts_with(|c: char| c.is_ascii_digit()) {
                v.push(
                    SpecIssue::new(&service_key, Some(service.span()), format!("{:?} cannot name the governing Service: Service names must start with a letter", service.get_ref()))
                        .help(if w.service.is_some() { "choose another service name" } else { "set service = \"<name starting with a letter>\", or rename the StatefulSet" }),
                );
            }
            match services.get(service.get_ref()) {
                Some(first) => v.push(
                    SpecIssue::new(
                        &service_key,
                        Some(service.span()),
                        format!(
                            "the governing Service {:?} is already generated for {first}; two StatefulSets cannot share one generated Service",
                            service.get_ref()
                        ),
                    )
                    .label("Service name taken")
                    .help("give this StatefulSet its own service = \"…\""),
                ),
                None => {
                    services.insert(service.get_ref().clone(), key.to_string());
                }
            }
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
                None,
                "image must not be empty",
            ));
        }
        for (name, value) in &w.env {
            if let super::EnvValue::Plain(text) = value.get_ref()
                && text == NOT_IMPORTED
            {
                v.push(not_imported(
                    format!("{key}.env.{name}"),
                    Some(value.span()),
                    name,
                ));
            }
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
        v.labels(&format!("{key}.labels"), &w.labels);
        v.patch(key, w.patch.as_ref());
        let mut numbers = HashMap::new();
        for (j, port) in w.ports.iter().enumerate() {
            let pkey = format!("{key}.ports[{j}]");
            let (n, name, protocol) = match port {
                super::PortSpec::Number(n) => (*n, None, None),
                super::PortSpec::Full(p) => (p.port, p.name.as_deref(), p.protocol.as_deref()),
            };
            if !(1..=65535).contains(&n) {
                v.push(SpecIssue::new(
                    &pkey,
                    None,
                    format!("port {n} is not between 1 and 65535"),
                ));
            }
            let proto = protocol.unwrap_or("TCP");
            if !["TCP", "UDP", "SCTP"].contains(&proto) {
                v.push(SpecIssue::new(
                    format!("{pkey}.protocol"),
                    None,
                    format!("protocol {proto:?} is not TCP, UDP or SCTP"),
                ));
            }
            if let Some(name) = name
                && let Err(why) = check_port_name(name)
            {
                v.push(SpecIssue::new(
                    format!("{pkey}.name"),
                    None,
                    format!("{name:?} is not a valid port name: {why}"),
                ));
            }
            if let Some(first) = numbers.insert((n, proto.to_string()), j) {
                v.push(SpecIssue::new(
                    &pkey,
                    None,
                    format!("port {n}/{proto} is listed twice (first at ports[{first}])"),
                ));
            }
        }
        for (section, map) in [
            ("requests", &w.resources.requests),
            ("limits", &w.resources.limits),
        ] {
            for (res, q) in map {
                let rkey = format!(
                    "{key}.resources.{section}.{}",
                    super::locate::quote_key(res)
                );
                if res.ends_with("storage") {
                    v.size(&rkey, q);
                } else {
                    v.quantity(&rkey, q, true);
                }
            }
        }
        if let Some(us) = &w.update_strategy
            && us.kind == super::UpdateStrategyType::OnDelete
            && (us.partition.is_some() || us.max_unavailable.is_some())
        {
            v.push(SpecIssue::new(
                format!("{key}.update_strategy"),
                None,
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
            v.unique(&mut names, "pod volume name", &tkey, &t.name);
            v.size(&format!("{tkey}.size"), &t.size);
            v.access_modes(&format!("{tkey}.access_modes"), &t.access_modes, tpl.span());
            v.class_name(&format!("{tkey}.class"), &t.class);
            v.mount_path(&format!("{tkey}.mount"), &t.mount, &mut paths);
            v.labels(&format!("{tkey}.labels"), &t.labels);
            v.selector(&format!("{tkey}.selector"), &t.selector);
            // A standalone claim named like one this template creates would be taken by a pod.
            for (c, claim) in claims.iter().enumerate() {
                let name = claim.get_ref().name.get_ref();
                if let Some(ordinal) =
                    template_claim_ordinal(name, t.name.get_ref(), w.name.get_ref())
                {
                    v.push(
                        SpecIssue::new(
                            format!("claim[{c}].name"),
                            Some(claim.get_ref().name.span()),
                            format!(
                                "claim {name:?} has the name of the claim {tkey} creates for pod {ordinal} of StatefulSet {:?}; that pod would silently use this claim instead",
                                w.name.get_ref()
                            ),
                        )
                        .label("taken by a claim template")
                        .help("rename the claim, or drop it and let the template create it"),
                    );
                }
            }
        }
        for (j, m) in w.mounts.iter().enumerate() {
            let mkey = format!("{key}.mount[{j}]");
            let m = m.get_ref();
            v.dns_label(&format!("{mkey}.claim"), &m.claim);
            v.unique(&mut names, "pod volume name", &mkey, &m.claim);
            v.mount_path(&format!("{mkey}.path"), &m.path, &mut paths);
            if let Some(sub) = &m.sub_path
                && (sub.starts_with('/') || sub.split('/').any(|p| p == ".."))
            {
                v.push(SpecIssue::new(
                    format!("{mkey}.sub_path"),
                    None,
                    format!("sub_path {sub:?} must be a relative path inside the claim (no leading '/', no '..')"),
                ));
            }
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
                template_claim_ordinal(claim, t.get_ref().name.get_ref(), s.name.get_ref())
                    .is_some()
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

/// What `import` writes instead of a secret-looking env value: refused wherever it appears
/// (an `env` key, a value in a `patch`), so that it can never be applied in the value's place.
pub const NOT_IMPORTED: &str = "(sensitive value, not imported)";

/// The refusal of [`NOT_IMPORTED`] at `key`.
fn not_imported(key: String, span: Option<Range<usize>>, variable: &str) -> SpecIssue {
    SpecIssue::new(
        key,
        span,
        format!("{variable} holds the placeholder import writes for a value that looks secret, not a value"),
    )
    .label("not imported")
    .help(format!(
        "replace it by the value (plans mask it), or by a reference to a Secret holding it: {variable} = {{ secret = \"NAME\", key = \"KEY\" }}"
    ))
}

/// The refusal of [`NOT_IMPORTED`] in a patch at `key`.
fn not_imported_in_patch(key: String) -> SpecIssue {
    SpecIssue::new(
        key,
        None,
        "this value holds the placeholder import writes for a value that looks secret, not a value",
    )
    .label("not imported")
    .help("replace it by the value (plans mask it), or replace the entry's value by a reference to a Secret holding it: valueFrom = { secretKeyRef = { name = \"NAME\", key = \"KEY\" } }")
}

/// Names that look like they hold a secret.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "SECRET",
        "KEY",
        "CREDENTIAL",
        "PRIVATE",
    ]
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
                        "duplicate {what} {:?} (first defined at {first})",
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

    /// A storage size: a quantity of whole bytes, greater than zero.
    fn size(&mut self, key: &str, value: &Spanned<String>) {
        if let Some(q) = self.quantity(key, value, true)
            && !q.is_whole()
        {
            self.push(
                SpecIssue::new(
                    key,
                    Some(value.span()),
                    format!("{:?} is not a whole number of bytes", value.get_ref()),
                )
                .label("a fraction of a byte")
                .help(if value.get_ref().ends_with('m') {
                    "the suffix m means milli (1/1000): write 500Mi or 500M for megabytes"
                } else {
                    "sizes are whole bytes: write e.g. 1536Mi rather than 1.5"
                }),
            );
        }
    }

    /// An absolute path on a node or server.
    fn absolute(&mut self, key: &str, path: &str) {
        if !path.starts_with('/') {
            self.push(
                SpecIssue::new(key, None, format!("path {path:?} must be absolute"))
                    .help("write the full path, e.g. /mnt/disks/ssd1"),
            );
        }
    }

    /// A labels table: valid keys and values, and never the stack's own labels.
    fn labels(&mut self, key: &str, labels: &BTreeMap<String, String>) {
        for (k, value) in labels {
            let lkey = format!("{key}.{}", super::locate::quote_key(k));
            if k == MANAGED_BY.0 || k == STACK_LABEL {
                self.push(
                    SpecIssue::new(
                        &lkey,
                        None,
                        format!("label {k:?} is set by kubectl-stateful on every object of the stack and cannot be overridden"),
                    )
                    .at_key()
                    .label("reserved label")
                    .help("remove it; the stack name comes from `name` (or the file name)"),
                );
                continue;
            }
            if let Err(why) = check_label_key(k) {
                self.push(
                    SpecIssue::new(
                        &lkey,
                        None,
                        format!("{k:?} is not a valid label key: {why}"),
                    )
                    .at_key(),
                );
            }
            if let Err(why) = check_label_value(value) {
                self.push(SpecIssue::new(
                    &lkey,
                    None,
                    format!("{value:?} is not a valid label value: {why}"),
                ));
            }
        }
    }

    /// A label selector (`matchLabels`): valid keys and values.
    fn selector(&mut self, key: &str, selector: &BTreeMap<String, String>) {
        for (k, value) in selector {
            let lkey = format!("{key}.{}", super::locate::quote_key(k));
            if let Err(why) = check_label_key(k) {
                self.push(
                    SpecIssue::new(
                        &lkey,
                        None,
                        format!("{k:?} is not a valid label key: {why}"),
                    )
                    .at_key(),
                );
            }
            if let Err(why) = check_label_value(value) {
                self.push(SpecIssue::new(
                    &lkey,
                    None,
                    format!("{value:?} is not a valid label value: {why}"),
                ));
            }
        }
    }

    /// A `patch` may add fields, never change what makes the object the stack's: its kind, name,
    /// namespace or ownership labels. JSON has no NaN or infinity.
    fn patch(&mut self, key: &str, patch: Option<&toml::Table>) {
        let Some(patch) = patch else {
            return;
        };
        let at = |path: &str| format!("{key}.patch.{path}");
        for field in ["apiVersion", "kind"] {
            if patch.contains_key(field) {
                self.push(
                    SpecIssue::new(at(field), None, format!("patch cannot change {field}: the object would no longer be the one this table describes"))
                        .at_key()
                        .help("remove it from the patch"),
                );
            }
        }
        if patch.contains_key("status") {
            self.push(
                SpecIssue::new(
                    at("status"),
                    None,
                    "patch cannot set status: the API server ignores it on writes",
                )
                .at_key(),
            );
        }
        match patch.get("metadata") {
            None => {}
            Some(toml::Value::Table(meta)) => {
                for (field, from) in [
                    ("name", "the table's `name` key"),
                    ("generateName", "the table's `name` key"),
                    ("namespace", "the spec's `namespace` (or -n)"),
                ] {
                    if meta.contains_key(field) {
                        self.push(
                            SpecIssue::new(
                                at(&format!("metadata.{field}")),
                                None,
                                format!("patch cannot change metadata.{field}: it comes from {from}"),
                            )
                            .at_key()
                            .help(format!("set it with {from} instead")),
                        );
                    }
                }
                match meta.get("labels") {
                    None => {}
                    Some(toml::Value::Table(labels)) => {
                        for k in [MANAGED_BY.0, STACK_LABEL] {
                            if labels.contains_key(k) {
                                self.push(
                                    SpecIssue::new(at(&format!("metadata.labels.{}", super::locate::quote_key(k))), None, format!("label {k:?} is set by kubectl-stateful on every object of the stack and cannot be overridden"))
                                        .at_key()
                                        .label("reserved label"),
                                );
                            }
                        }
                    }
                    Some(_) => self.push(SpecIssue::new(
                        at("metadata.labels"),
                        None,
                        "patch.metadata.labels must be a table: anything else would remove the stack's labels",
                    )),
                }
            }
            Some(_) => self.push(SpecIssue::new(
                at("metadata"),
                None,
                "patch.metadata must be a table: anything else would remove the object's name and labels",
            )),
        }
        let mut placeholders = Vec::new();
        strings_equal_to(
            &toml::Value::Table(patch.clone()),
            &at(""),
            NOT_IMPORTED,
            &mut placeholders,
        );
        for path in placeholders {
            let path = path.trim_end_matches('.').to_string();
            self.push(not_imported_in_patch(path));
        }
        let mut bad = Vec::new();
        non_json_floats(&toml::Value::Table(patch.clone()), &at(""), &mut bad);
        for path in bad {
            self.push(SpecIssue::new(
                path.trim_end_matches('.'),
                None,
                "nan and inf cannot be sent to the API server (JSON has no such numbers)",
            ));
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

/// Paths (below `path`) of floats JSON cannot carry.
fn non_json_floats(value: &toml::Value, path: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::Float(f) if !f.is_finite() => out.push(path.to_string()),
        toml::Value::Table(t) => {
            for (k, v) in t {
                let sep = if path.ends_with('.') { "" } else { "." };
                non_json_floats(
                    v,
                    &format!("{path}{sep}{}", super::locate::quote_key(k)),
                    out,
                );
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                non_json_floats(v, &format!("{}[{i}]", path.trim_end_matches('.')), out);
            }
        }
        _ => {}
    }
}

/// The paths of the strings equal to `needle` in a TOML value.
fn strings_equal_to(value: &toml::Value, path: &str, needle: &str, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) if s == needle => out.push(path.to_string()),
        toml::Value::Table(t) => {
            for (k, v) in t {
                let sep = if path.ends_with('.') { "" } else { "." };
                let sub = format!("{path}{sep}{}", super::locate::quote_key(k));
                strings_equal_to(v, &sub, needle, out);
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                let sub = format!("{}[{i}]", path.trim_end_matches('.'));
                strings_equal_to(v, &sub, needle, out);
            }
        }
        _ => {}
    }
}

/// Checks a label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// letters, digits, `-`, `_` and `.`, starting and ending with a letter or digit.
pub fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        check_subdomain(p)
            .map_err(|why| format!("its prefix {p:?} is not a DNS subdomain: {why}"))?;
    }
    if name.is_empty() {
        return Err("the name part is empty".into());
    }
    check_label_value(name)
}

/// Checks a label value: empty, or at most 63 letters, digits, `-`, `_` and `.`, starting and
/// ending with a letter or digit.
pub fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err(format!(
            "it has {} characters, at most 63 are allowed",
            value.len()
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-_.".contains(*c)))
    {
        return Err(format!("{c:?} is not allowed"));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !value.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err("it must start and end with a letter or digit".into());
    }
    Ok(())
}

/// Checks a port name (IANA service name): at most 15 lower case letters, digits and `-`, with
/// at least one letter, no leading, trailing or double `-`.
pub fn check_port_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("it must have 1 to 15 characters".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("{c:?} is not allowed"));
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        return Err("it must contain a letter".into());
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("'-' may not start or end it, nor appear twice in a row".into());
    }
    Ok(())
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
