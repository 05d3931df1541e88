//! Fuzz targets, with proptest as the engine (cargo-fuzz needs a nightly compiler):
//!
//! - `spec`: the spec loader and validator, and what follows a valid spec (desired objects,
//!   reference checks, a plan and its views, and the plan read back as a saved plan);
//! - `quantity`: the quantity parser and its exact comparison;
//! - `saved_plan`: the saved-plan loader, then every view of a plan it accepts.
//!
//! Inputs are seeds (the corpus in fuzz/corpus/<target>/, the examples, the bad-input corpus)
//! mutated by byte and token edits, plus specs generated from the spec's grammar. An input
//! that reaches behaviour no input showed before (a new kind of error or of plan) joins the
//! corpus; a failure is shrunk by proptest and saved as `crash-*` in the corpus, so that every
//! later `cargo test` replays it.
//!
//! `cargo test --test fuzz` replays the corpus and runs a few hundred new inputs per target.
//! `scripts/fuzz [--smoke | SECONDS | --execs N] [TARGET…]` runs longer (see fuzz/README.md).

use kubectl_stateful::plan::compute::{DryRun, StepInput, compute_step};
use kubectl_stateful::plan::{Plan, WaitPlan, saved};
use kubectl_stateful::spec::quantity::Quantity;
use kubectl_stateful::{desired, render, spec};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a run of a target showed: `Ok(signature)` (inputs with a new signature join the corpus)
/// or `Err(violation)`.
type Outcome = Result<String, String>;

struct Target {
    name: &'static str,
    run: fn(&[u8]) -> Outcome,
    dictionary: &'static [&'static str],
    /// Specs generated from the grammar, besides mutated seeds.
    generated: bool,
}

const TARGETS: &[Target] = &[
    Target {
        name: "spec",
        run: fuzz_spec,
        dictionary: TOML_TOKENS,
        generated: true,
    },
    Target {
        name: "quantity",
        run: fuzz_quantity,
        dictionary: QUANTITY_TOKENS,
        generated: false,
    },
    Target {
        name: "saved_plan",
        run: fuzz_saved_plan,
        dictionary: JSON_TOKENS,
        generated: false,
    },
];

const TOML_TOKENS: &[&str] = &[
    "[[statefulset]]\n",
    "[[claim]]\n",
    "[[volume]]\n",
    "[[storage_class]]\n",
    "[[statefulset.volume_claim]]\n",
    "[[statefulset.mount]]\n",
    "[statefulset.patch]\n",
    "[statefulset.patch.metadata.labels]\n",
    "[claim.patch.spec]\n",
    "[labels]\n",
    "name = \"db\"\n",
    "name = \"data-db-0\"\n",
    "image = \"img:1\"\n",
    "size = \"1Gi\"\n",
    "capacity = \"5Gi\"\n",
    "mount = \"/d\"\n",
    "path = \"/d\"\n",
    "claim = \"data\"\n",
    "service = \"db\"\n",
    "volume = \"pv\"\n",
    "class = \"\"\n",
    "replicas = ",
    "namespace = \"ns\"\n",
    "host_path = { path = \"x\" }\n",
    "local = { path = \"/mnt\" }\n",
    "node = \"node-1\"\n",
    "ports = [5432, { name = \"pg\", port = 1 }]\n",
    "env = { A = \"1\" }\n",
    "resources = { requests = { cpu = \"1\", memory = \"1Gi\" } }\n",
    "update_strategy = { type = \"OnDelete\", partition = 1 }\n",
    "access_modes = [\"RWO\", \"RWOP\"]\n",
    "\"kubectl-stateful/stack\" = \"x\"\n",
    "kind = \"Secret\"\n",
    "metadata = { name = \"x\" }\n",
    "x = nan\n",
    "t = 2024-01-01T00:00:00Z\n",
    "\"",
    "'",
    "\"\"\"",
    "=",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "\\u0000",
    "\t",
    "-1",
    "0",
    "99999999999999999999",
    "1e999",
    "500m",
    "0.5",
    "Ki",
    "é",
    "\u{feff}",
    "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
];

const QUANTITY_TOKENS: &[&str] = &[
    "Ki",
    "Mi",
    "Gi",
    "Ti",
    "Pi",
    "Ei",
    "n",
    "u",
    "m",
    "k",
    "M",
    "G",
    "T",
    "P",
    "E",
    "e",
    "E",
    "+",
    "-",
    ".",
    "0",
    "1",
    "5",
    "9",
    "1024",
    "000000000000",
    "e-",
    "e+",
    "99999999999999999999",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "0",
    "-1",
    "1e308",
    "99999999999999999999",
    "\"steps\": []",
    "\"operations\": []",
    "\"format_version\": 2",
    "\"kind\": \"StatefulSet\"",
    "\"action\": \"create\"",
    "\"action\": \"replace\"",
    "\"op\": \"wait\"",
    "\"rule\": \"gone\"",
    "\"after\": [0]",
    "\"step\": 1",
    "\"namespace\": \"other\"",
    "\"name\": \"\"",
    "\\u0000",
    "\\",
];

// ---------------------------------------------------------------------------------------------
// Targets

/// Rust `Debug` output or a backtrace in a user-facing message.
fn debug_output(text: &str) -> Option<&'static str> {
    [
        "panicked",
        "stack backtrace",
        "Error {",
        "Os {",
        "Custom {",
        "Some(",
        "SourceSpan",
        "SpecIssue",
    ]
    .into_iter()
    .find(|m| text.contains(m))
}

fn render_report(e: &dyn miette::Diagnostic) -> String {
    let mut out = String::new();
    let _ = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .render_report(&mut out, e);
    out
}

/// Spec errors: every entry positioned within the file, every message clean, the report
/// renders to one bounded screen.
fn check_spec_errors(e: &spec::SpecErrors, text: &str) -> Outcome {
    let lines = text.split('\n').count();
    let mut kinds = Vec::new();
    for entry in e.entries() {
        let (Some(line), Some(column)) = (entry.line, entry.column) else {
            return Err(format!("no position: {entry}"));
        };
        if line == 0 || column == 0 || line > lines {
            return Err(format!(
                "position outside the file ({lines} lines): {entry}"
            ));
        }
        if entry.message.trim().is_empty() || entry.key.is_empty() {
            return Err(format!("empty message or key: {entry}"));
        }
        if let Some(m) = debug_output(&entry.message) {
            return Err(format!("{m:?} in {entry}"));
        }
        // The kind of problem: the message's words without the values it quotes.
        let words: String = entry
            .message
            .split_whitespace()
            .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == ','))
            .take(4)
            .collect::<Vec<_>>()
            .join(" ");
        kinds.push(words);
    }
    let report = render_report(e);
    if report.len() > 200_000 {
        return Err(format!("the report is {} bytes long", report.len()));
    }
    if let Some(m) = debug_output(&report) {
        return Err(format!("{m:?} in the report:\n{report}"));
    }
    kinds.sort();
    kinds.dedup();
    Ok(format!("err {}", kinds.join("|")))
}

fn fuzz_spec(bytes: &[u8]) -> Outcome {
    let text = match spec::utf8("fuzz.toml", bytes.to_vec()) {
        Ok(t) => t,
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            return check_spec_errors(&e, &lossy);
        }
    };
    let spec = match spec::load("fuzz.toml", &text, "fuzz") {
        Ok(spec) => spec,
        Err(e) => return check_spec_errors(&e, &text),
    };
    // A valid spec: its objects, the references checked against an empty cluster, a plan of
    // creates, its views, and the plan read back as a saved plan.
    let refs = spec::check_references(&spec, &spec::ClusterNames::default());
    if !refs.is_empty() {
        check_spec_errors(&spec::errors_for(&spec, refs), &text)?;
    }
    let ctx = desired::Context {
        namespace: "ns".into(),
        create_namespace: true,
        ..Default::default()
    };
    let objects = desired::desired_objects(&spec, &ctx);
    let mut kinds = Vec::new();
    for o in &objects {
        let labels = &o.manifest["metadata"]["labels"];
        if labels["app.kubernetes.io/managed-by"] != "kubectl-stateful"
            || labels["kubectl-stateful/stack"] != spec.stack_name()
        {
            return Err(format!("{} lost the stack's labels: {labels}", o.id));
        }
        if o.manifest["metadata"]["name"] != o.id.name.as_str()
            || o.manifest["kind"] != o.id.kind.as_str()
        {
            return Err(format!("{} does not match its manifest", o.id));
        }
        kinds.push(o.id.kind.as_str());
    }
    let ids: HashSet<_> = objects.iter().map(|o| &o.id).collect();
    if ids.len() != objects.len() {
        return Err("two objects of the spec have the same kind and name".into());
    }
    let steps = objects
        .iter()
        .map(|d| {
            compute_step(StepInput {
                desired: d,
                live: None,
                dry_run: DryRun::Ok(d.manifest.clone()),
                wait: WaitPlan::default(),
                stack: spec.stack_name(),
                conflicts: Vec::new(),
            })
        })
        .collect();
    let plan = Plan::new(spec.stack_name().into(), "ns".into(), String::new(), steps);
    let _ = render::human(&plan, render::Style { color: false });
    let _ = render::markdown(&plan);
    let _ = render::json(&plan);
    let json = render::plan_file(&plan);
    match saved::parse("fuzz.json", json.as_bytes()) {
        Ok(back) if back == plan => {}
        Ok(_) => return Err("the saved plan reads back differently".into()),
        Err(e) => return Err(format!("a plan made from a valid spec is refused: {e}")),
    }
    kinds.sort();
    kinds.dedup();
    Ok(format!("ok {}", kinds.join(",")))
}

fn fuzz_quantity(bytes: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(bytes);
    let mut parts = text.splitn(2, '\n');
    let a = parts.next().unwrap_or("");
    let b = parts.next().unwrap_or("1Gi");
    let (qa, qb) = match (Quantity::parse(a), Quantity::parse(b)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return Ok(format!("err {}", e.to_string().len())),
    };
    use std::cmp::Ordering::Equal;
    if qa.cmp_exact(&qa) != Equal {
        return Err(format!("{a:?} is not equal to itself"));
    }
    if qa.cmp_exact(&qb) != qb.cmp_exact(&qa).reverse() {
        return Err(format!("{a:?} and {b:?} compare both ways the same"));
    }
    if qa.cmp_exact(&qb) == Equal && qa.is_whole() != qb.is_whole() {
        return Err(format!("{a:?} == {b:?} but only one is whole"));
    }
    let f = qa.as_f64();
    // Floats only approximate: a whole quantity must be within rounding of an integer.
    if f.is_finite()
        && f.abs() < 1e15
        && qa.is_whole()
        && (f - f.round()).abs() > 1e-6 * f.abs().max(1.0)
    {
        return Err(format!("{a:?} is whole but is {f}"));
    }
    Ok(format!(
        "ok {} {} {}",
        qa.is_whole(),
        qa.is_negative(),
        a.trim_start_matches(|c: char| c.is_ascii_digit() || "+-.".contains(c))
            .len()
            .min(3)
    ))
}

fn fuzz_saved_plan(bytes: &[u8]) -> Outcome {
    match saved::parse("fuzz.json", bytes) {
        Err(e) => {
            let text = e.to_string();
            if !text.starts_with("fuzz.json") {
                return Err(format!("the error does not name the file: {text}"));
            }
            if let Some(m) = debug_output(&text) {
                return Err(format!("{m:?} in {text}"));
            }
            let words: String = e
                .message
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" ");
            Ok(format!(
                "err {}",
                words
                    .chars()
                    .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
                    .collect::<String>()
            ))
        }
        Ok(plan) => {
            for op in &plan.operations {
                if op.step >= plan.steps.len() || op.after.iter().any(|a| *a >= op.id) {
                    return Err(format!("a malformed operation was accepted: {op:?}"));
                }
            }
            let _ = kubectl_stateful::apply::check_executable(&plan, &Default::default());
            let _ = render::human(&plan, render::Style { color: false });
            let _ = render::markdown(&plan);
            let _ = render::json(&plan);
            let again = render::plan_file(&plan);
            match saved::parse("fuzz.json", again.as_bytes()) {
                Ok(back) if back == plan => {}
                _ => return Err("an accepted plan does not read back the same".into()),
            }
            Ok(format!(
                "ok {} {}",
                plan.steps.len().min(9),
                plan.summary.has_changes()
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs: mutated seeds and generated specs

#[derive(Debug, Clone)]
enum Mutation {
    Byte(Index, u8),
    Flip(Index, u8),
    Insert(Index, Index),
    Delete(Index, u8),
    Duplicate(Index, u8),
    Splice(Index, Index, Index, u16),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), any::<u8>()).prop_map(|(a, b)| Mutation::Byte(a, b)),
        1 => (any::<Index>(), 0u8..8).prop_map(|(a, b)| Mutation::Flip(a, b)),
        4 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::Insert(a, b)),
        2 => (any::<Index>(), 1u8..32).prop_map(|(a, b)| Mutation::Delete(a, b)),
        1 => (any::<Index>(), 1u8..64).prop_map(|(a, b)| Mutation::Duplicate(a, b)),
        1 => (any::<Index>(), any::<Index>(), any::<Index>(), 1u16..512)
            .prop_map(|(a, b, c, d)| Mutation::Splice(a, b, c, d)),
        1 => (any::<Index>()).prop_map(Mutation::Truncate),
    ]
}

fn apply(seed: &[u8], mutations: &[Mutation], seeds: &[Vec<u8>], dict: &[&str]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for m in mutations {
        let len = out.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len + 1) };
        match m {
            Mutation::Byte(i, b) if len > 0 => {
                let p = i.index(len);
                out[p] = *b;
            }
            Mutation::Flip(i, bit) if len > 0 => {
                let p = i.index(len);
                out[p] ^= 1 << bit;
            }
            Mutation::Insert(i, t) => {
                let token = dict[t.index(dict.len())].as_bytes();
                let p = at(i);
                out.splice(p..p, token.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let p = i.index(len);
                let end = (p + *n as usize).min(len);
                out.drain(p..end);
            }
            Mutation::Duplicate(i, n) if len > 0 => {
                let p = i.index(len);
                let end = (p + *n as usize).min(len);
                let chunk: Vec<u8> = out[p..end].to_vec();
                out.splice(end..end, chunk);
            }
            Mutation::Splice(i, s, from, n) if !seeds.is_empty() => {
                let other = &seeds[s.index(seeds.len())];
                if !other.is_empty() {
                    let start = from.index(other.len());
                    let end = (start + *n as usize).min(other.len());
                    let p = at(i);
                    out.splice(p..p, other[start..end].iter().copied());
                }
            }
            Mutation::Truncate(i) if len > 0 => out.truncate(i.index(len)),
            _ => {}
        }
        out.truncate(1 << 16);
    }
    out
}

/// Values per spec key, valid and hostile.
fn values(key: &str) -> &'static [&'static str] {
    match key {
        "name" | "service" | "claim" | "volume" | "class" | "node" | "namespace" => &[
            "\"db\"",
            "\"data\"",
            "\"data-db-0\"",
            "\"pv-a\"",
            "\"\"",
            "\"Db\"",
            "\"1db\"",
            "\"a.b\"",
            "\"x_y\"",
            "\"standard\"",
            "1",
        ],
        "size" | "capacity" => &[
            "\"1Gi\"",
            "\"500m\"",
            "\"0\"",
            "\"-1\"",
            "\"1.5\"",
            "\"10GB\"",
            "\"1e3\"",
            "\"0.5Gi\"",
            "\"\"",
            "5",
        ],
        "replicas" | "min_ready_seconds" => &["1", "0", "-1", "3", "2147483648", "\"3\""],
        "mount" | "path" => &["\"/d\"", "\"d\"", "\"/\"", "\"\"", "\"/d/../e\""],
        "access_modes" => &[
            "[\"RWO\"]",
            "[]",
            "[\"RWOP\", \"RWX\"]",
            "[\"X\"]",
            "\"RWO\"",
        ],
        "labels" | "selector" | "env" | "parameters" => &[
            "{ a = \"b\" }",
            "{ \"kubectl-stateful/stack\" = \"x\" }",
            "{ \"app.kubernetes.io/managed-by\" = \"y\" }",
            "{ \"a b\" = \"c\" }",
            "{ a = \"b/c\" }",
            "{}",
            "[]",
        ],
        "ports" => &[
            "[5432]",
            "[0]",
            "[{ name = \"pg\", port = 1 }]",
            "[5432, 5432]",
            "[\"x\"]",
        ],
        "patch" => &[
            "{ kind = \"X\" }",
            "{ metadata = { name = \"x\" } }",
            "{ spec = { template = { spec = { terminationGracePeriodSeconds = 2024-01-01 } } } }",
            "{ x = nan }",
            "{ metadata = \"x\" }",
            "{ status = {} }",
            "{}",
        ],
        "local" | "host_path" | "nfs" | "csi" => &[
            "{ path = \"/mnt\" }",
            "{ path = \"mnt\" }",
            "{ server = \"s\", path = \"/x\" }",
            "{ driver = \"d\", volume_handle = \"h\" }",
            "{}",
        ],
        "update_strategy" => &[
            "{ type = \"RollingUpdate\", partition = 1 }",
            "{ type = \"OnDelete\", partition = 1 }",
            "{ type = \"Nope\" }",
        ],
        _ => &["\"x\"", "1", "true", "[]", "{}"],
    }
}

const TABLES: &[(&str, &[&str])] = &[
    (
        "[[storage_class]]",
        &[
            "name",
            "provisioner",
            "labels",
            "parameters",
            "patch",
            "adopt",
        ],
    ),
    (
        "[[volume]]",
        &[
            "name",
            "capacity",
            "access_modes",
            "class",
            "node",
            "local",
            "host_path",
            "nfs",
            "csi",
            "labels",
            "patch",
        ],
    ),
    (
        "[[claim]]",
        &[
            "name",
            "size",
            "access_modes",
            "class",
            "volume",
            "selector",
            "labels",
            "patch",
        ],
    ),
    (
        "[[statefulset]]",
        &[
            "name",
            "image",
            "replicas",
            "service",
            "ports",
            "env",
            "labels",
            "min_ready_seconds",
            "update_strategy",
            "patch",
        ],
    ),
    (
        "[[statefulset.volume_claim]]",
        &["name", "size", "mount", "class", "labels", "access_modes"],
    ),
    ("[[statefulset.mount]]", &["claim", "path", "sub_path"]),
];

/// A spec from the grammar: tables with keys drawn from each table's keys and values from
/// [`values`].
fn generated_spec() -> impl Strategy<Value = Vec<u8>> {
    let table = (
        any::<Index>(),
        prop::collection::vec((any::<Index>(), any::<Index>()), 0..7),
    );
    (
        prop::collection::vec(table, 0..7),
        prop::collection::vec((any::<Index>(), any::<Index>()), 0..3),
    )
        .prop_map(|(tables, top)| {
            let mut out = String::new();
            for (k, v) in top {
                let key = ["name", "namespace", "labels"][k.index(3)];
                let vals = values(key);
                out.push_str(&format!("{key} = {}\n", vals[v.index(vals.len())]));
            }
            for (t, keys) in tables {
                let (header, allowed) = TABLES[t.index(TABLES.len())];
                out.push_str(header);
                out.push('\n');
                for (k, v) in keys {
                    let key = allowed[k.index(allowed.len())];
                    let vals = values(key);
                    out.push_str(&format!("{key} = {}\n", vals[v.index(vals.len())]));
                }
            }
            out.into_bytes()
        })
}

// ---------------------------------------------------------------------------------------------
// Corpus and runner

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| exts.is_empty() || exts.iter().any(|x| p.to_string_lossy().ends_with(x)))
        .collect();
    files.sort();
    files
}

/// The corpus of a target (its directory) and further seeds (examples, bad inputs, plans
/// made from the examples).
/// Corpus files (path, content) and further seeds.
type Seeds = (Vec<(PathBuf, Vec<u8>)>, Vec<Vec<u8>>);

fn seeds(target: &str) -> Seeds {
    let corpus: Vec<(PathBuf, Vec<u8>)> = files_in(&root().join("fuzz/corpus").join(target), &[])
        .into_iter()
        .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
        .collect();
    let mut extra: Vec<Vec<u8>> = Vec::new();
    let read = |dir: &str, exts: &[&str]| -> Vec<Vec<u8>> {
        files_in(&root().join(dir), exts)
            .into_iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect()
    };
    match target {
        "spec" => {
            extra.extend(read("examples", &[".toml"]));
            extra.extend(read("tests/bad-inputs", &[".toml"]));
        }
        "saved_plan" => {
            extra.extend(read("tests/bad-inputs", &[".json"]));
            for text in read("examples", &[".toml"]) {
                if let Some(plan) = plan_of(&String::from_utf8_lossy(&text)) {
                    extra.push(render::plan_file(&plan).into_bytes());
                }
            }
        }
        _ => {}
    }
    (corpus, extra)
}

/// A plan of creates for a spec, as a saved plan would hold it.
fn plan_of(text: &str) -> Option<Plan> {
    let spec = spec::load("seed.toml", text, "seed").ok()?;
    let ctx = desired::Context {
        namespace: "demo".into(),
        ..Default::default()
    };
    let objects = desired::desired_objects(&spec, &ctx);
    let steps = objects
        .iter()
        .map(|d| {
            compute_step(StepInput {
                desired: d,
                live: None,
                dry_run: DryRun::Ok(d.manifest.clone()),
                wait: WaitPlan::default(),
                stack: spec.stack_name(),
                conflicts: Vec::new(),
            })
        })
        .collect();
    Some(Plan::new(
        spec.stack_name().into(),
        "demo".into(),
        "https://demo".into(),
        steps,
    ))
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x100000001b3)
    })
}

/// How long (or how much) to run each target.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// Replay the corpus and run this many new inputs.
    Cases(u64),
    Seconds(u64),
    Execs(u64),
}

struct Report {
    execs: u64,
    added: usize,
    seconds: f64,
}

fn run_target(t: &Target, budget: Budget, save: bool) -> Result<Report, String> {
    let start = Instant::now();
    let (corpus, extra) = seeds(t.name);
    let dir = root().join("fuzz/corpus").join(t.name);
    let mut seen: HashSet<String> = HashSet::new();
    // Replay: every corpus file must pass (crash-* files are regressions once fixed).
    for (path, bytes) in &corpus {
        match std::panic::catch_unwind(|| (t.run)(bytes)) {
            Ok(Ok(sig)) => {
                seen.insert(sig);
            }
            Ok(Err(v)) => return Err(format!("{}: {v}", path.display())),
            Err(_) => return Err(format!("{}: panicked: {}", path.display(), last_panic())),
        }
    }
    for bytes in &extra {
        if let Ok(Ok(sig)) = std::panic::catch_unwind(|| (t.run)(bytes)) {
            seen.insert(sig);
        }
    }
    let mut pool: Vec<Vec<u8>> = corpus.iter().map(|(_, b)| b.clone()).collect();
    pool.extend(extra);
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let pool = Arc::new(pool);
    let execs = Arc::new(AtomicU64::new(0));
    let added = Arc::new(Mutex::new(0usize));
    let seen = Arc::new(Mutex::new(seen));
    let existing = corpus.len();
    let mutated = {
        let pool = pool.clone();
        let dict = t.dictionary;
        (any::<Index>(), prop::collection::vec(mutation(), 0..6))
            .prop_map(move |(i, ms)| apply(&pool[i.index(pool.len())], &ms, &pool, dict))
    };
    let strategy = if t.generated {
        prop_oneof![3 => mutated, 1 => generated_spec()].boxed()
    } else {
        mutated.boxed()
    };
    let batch = 2000u32;
    let mut round = 0u64;
    loop {
        let done = execs.load(Ordering::Relaxed);
        let more = match budget {
            Budget::Cases(n) => round == 0 && n > 0,
            Budget::Seconds(s) => start.elapsed() < Duration::from_secs(s),
            Budget::Execs(n) => done < n,
        };
        if !more {
            break;
        }
        let cases = match budget {
            Budget::Cases(n) => n as u32,
            _ => batch,
        };
        let seed = fnv(format!("{}-{round}-{:?}", t.name, start.elapsed()).as_bytes());
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let mut runner = TestRunner::new_with_rng(
            Config {
                cases,
                max_shrink_iters: 4096,
                failure_persistence: None,
                ..Config::default()
            },
            TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
        );
        let result = runner.run(&strategy, |input| {
            execs.fetch_add(1, Ordering::Relaxed);
            match (t.run)(&input) {
                Ok(sig) => {
                    if save {
                        let mut seen = seen.lock().unwrap();
                        let mut added = added.lock().unwrap();
                        if existing + *added < 300 && *added < 60 && seen.insert(sig) {
                            let path = dir.join(format!("{:016x}", fnv(&input)));
                            if std::fs::write(&path, &input).is_ok() {
                                *added += 1;
                            }
                        }
                    }
                    Ok(())
                }
                Err(v) => Err(TestCaseError::fail(v)),
            }
        });
        if let Err(e) = result {
            let (reason, input) = match e {
                TestError::Fail(reason, input) => (reason.to_string(), input),
                TestError::Abort(reason) => return Err(format!("aborted: {reason}")),
            };
            let path = dir.join(format!("crash-{:016x}", fnv(&input)));
            let _ = std::fs::create_dir_all(&dir);
            let _ = std::fs::write(&path, &input);
            let reason = if reason.contains("panicked") || reason.is_empty() {
                format!("{reason} {}", last_panic())
            } else {
                reason
            };
            return Err(format!(
                "{reason}\n  input saved to {} (shrunk; replayed by every cargo test)",
                path.display()
            ));
        }
        round += 1;
    }
    let added = *added.lock().unwrap();
    Ok(Report {
        execs: execs.load(Ordering::Relaxed),
        added,
        seconds: start.elapsed().as_secs_f64(),
    })
}

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn last_panic() -> String {
    LAST_PANIC.lock().map(|p| p.clone()).unwrap_or_default()
}

fn main() {
    // Panics are failures to report once, shrunk, not noise on every shrinking step.
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut p) = LAST_PANIC.lock() {
            *p = info.to_string();
        }
    }));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut budget = Budget::Cases(300);
    let mut save = false;
    let mut only: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--smoke" => budget = Budget::Seconds(5),
            "--seconds" => {
                budget = Budget::Seconds(it.next().and_then(|s| s.parse().ok()).unwrap_or(60));
                save = true;
            }
            "--execs" => {
                budget = Budget::Execs(it.next().and_then(|s| s.parse().ok()).unwrap_or(1_000_000));
                save = true;
            }
            "--save" => save = true,
            // cargo test's own flags (e.g. --test-threads 8) are not ours.
            "--test-threads" | "--skip" => {
                it.next();
            }
            s if s.starts_with('-') => {}
            name if TARGETS.iter().any(|t| t.name == name) => only.push(name.to_string()),
            _ => {}
        }
    }
    let mut failed = false;
    for t in TARGETS
        .iter()
        .filter(|t| only.is_empty() || only.iter().any(|o| o == t.name))
    {
        match run_target(t, budget, save) {
            Ok(r) => println!(
                "fuzz {:<10} {:>10} executions in {:>6.1}s ({:.0}/s), {} new corpus entries",
                t.name,
                r.execs,
                r.seconds,
                r.execs as f64 / r.seconds.max(0.001),
                r.added
            ),
            Err(e) => {
                failed = true;
                println!("fuzz {:<10} FAILED: {e}", t.name);
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
