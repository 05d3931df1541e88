// Parses Mermaid diagrams with the real `mermaid` package, as GitHub's renderer does, and checks
// the flowchart it yields: every node is declared with a label inside a subgraph, every edge joins
// declared nodes, every class a node uses is defined.
//
//   node tests/mermaid/check.mjs FILE…     (`-` reads stdin)
//
// A FILE may be Markdown (every ```mermaid block) or a bare diagram, either possibly an insta
// snapshot (`.snap`: the text after its header). Prints one line per diagram; exit 1 if any
// fails. Needs `npm ci` in this folder first (tests/it/graph.rs does it).
import { readFileSync } from 'node:fs';
import { JSDOM } from 'jsdom';

// mermaid sanitizes labels with DOMPurify, which needs a DOM even just to parse.
const dom = new JSDOM('<!doctype html><html><body></body></html>');
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false, securityLevel: 'strict' });

function diagrams(name, text) {
  if (name.endsWith('.snap')) {
    const parts = text.split(/^---$/m);
    if (parts.length < 3) throw new Error('not an insta snapshot');
    text = parts.slice(2).join('---').replace(/^\n/, '');
  }
  const blocks = [...text.matchAll(/^```mermaid\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  if (blocks.length > 0) return blocks;
  if (/^\s*(flowchart|graph)\b/.test(text)) return [text];
  throw new Error('no Mermaid diagram in it');
}

async function check(text) {
  const parsed = await mermaid.parse(text);
  if (parsed.diagramType !== 'flowchart-v2') {
    throw new Error(`a ${parsed.diagramType}, not a flowchart`);
  }
  const db = (await mermaid.mermaidAPI.getDiagramFromText(text)).db;
  const vertices = db.getVertices();
  const classes = db.getClasses();
  const problems = [];
  const inSubgraph = new Map();
  for (const sg of db.getSubGraphs()) {
    for (const n of sg.nodes) inSubgraph.set(n, (inSubgraph.get(n) ?? 0) + 1);
  }
  for (const [id, v] of vertices) {
    // A node that only appears in an edge gets its id as text: a reference to nothing declared.
    if (v.text === undefined || v.text === id) problems.push(`node ${id} has no label (undeclared?)`);
    if (inSubgraph.get(id) !== 1) problems.push(`node ${id} is in ${inSubgraph.get(id) ?? 0} subgraphs, not 1`);
    if (v.classes.length === 0) problems.push(`node ${id} has no class`);
    for (const c of v.classes) if (!classes.has(c)) problems.push(`node ${id}: class ${c} is not defined`);
  }
  for (const e of db.getEdges()) {
    if (!vertices.has(e.start) || !vertices.has(e.end)) problems.push(`edge ${e.start} -> ${e.end}: unknown node`);
    if (!e.text) problems.push(`edge ${e.start} -> ${e.end} has no label`);
  }
  if (vertices.size === 0) problems.push('no nodes');
  if (problems.length > 0) throw new Error(problems.join('; '));
  return `${vertices.size} nodes, ${db.getEdges().length} edges, ${db.getSubGraphs().length} subgraphs`;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node check.mjs FILE… (- for stdin)');
  process.exit(2);
}
let failed = 0;
for (const file of files) {
  const name = file === '-' ? 'stdin' : file;
  let list;
  try {
    list = diagrams(name, readFileSync(file === '-' ? 0 : file, 'utf8'));
  } catch (e) {
    console.log(`FAIL ${name}: ${e.message}`);
    failed++;
    continue;
  }
  for (const [i, text] of list.entries()) {
    try {
      console.log(`ok   ${name}#${i + 1}: ${await check(text)}`);
    } catch (e) {
      console.log(`FAIL ${name}#${i + 1}: ${String(e.message ?? e).split('\n').slice(0, 4).join(' | ')}`);
      failed++;
    }
  }
}
process.exit(failed > 0 ? 1 : 0);
