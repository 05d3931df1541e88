//! The rollout graph of a real plan: `plan -o dot` parses as Graphviz, and `plan -o markdown`
//! carries the Mermaid diagram.

use crate::support::{TestCtx, assert_contains};

#[tokio::test]
async fn plan_draws_the_rollout_as_dot_and_mermaid() {
    let ctx = TestCtx::new("graph").await;
    let spec = ctx.example("local-pv");
    let spec = spec.to_str().unwrap();
    let dot = ctx.run(&["plan", "-f", spec, "-o", "dot"]);
    dot.expect_code(0);
    let graph = graphviz_rust::parse(&dot.stdout).unwrap_or_else(|e| panic!("{e}\n{}", dot.stdout));
    assert!(matches!(
        graph,
        graphviz_rust::dot_structures::Graph::DiGraph { .. }
    ));
    for node in [
        "label=\"storageclass/",
        "label=\"pv/",
        "label=\"statefulset/kafka\\ncreate\"",
        "label=\"pvc/data-kafka-0…2\\nfrom the template\"",
        "[label=\"class\"]",
        "[label=\"template\"]",
    ] {
        assert_contains(&dot.stdout, node);
    }
    let md = ctx.run(&["plan", "-f", spec, "-o", "markdown"]);
    md.expect_code(0);
    assert_contains(&md.stdout, "#### Rollout\n\n```mermaid\nflowchart LR\n");
    assert_contains(
        &md.stdout,
        "\"statefulset/kafka<br/><i>create</i>\"]:::create",
    );
}
