// Parse Mermaid diagrams with the real mermaid library and report what it understood.
//
// Usage: node mermaid_check.mjs INPUT.json   (INPUT: [{"name": ..., "text": ...}, ...])
// Prints one JSON array: per diagram {name, ok, error, type, nodes, edges}, where nodes and
// edges are mermaid's own parsed state-diagram data (ids, labels with entities decoded,
// parents, descriptions, CSS classes), so the Python test can check that mermaid read the
// diagram we meant, not just that it did not throw.
//
// mermaid needs a DOM even to parse (it imports DOMPurify); jsdom provides one.
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

// mermaid swaps "#name;" entities for placeholders before parsing and decodes them when it
// draws; decode them the same way so labels compare with the chart's own text.
function decode(text) {
  if (typeof text !== "string") return text;
  const html = text.replace(/ﬂ°°/g, "&#").replace(/ﬂ°/g, "&").replace(/¶ß/g, ";");
  const el = dom.window.document.createElement("textarea");
  el.innerHTML = html;
  return el.value;
}

const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(args.map(String).join(" "));
}

const inputs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];
for (const { name, text } of inputs) {
  warnings.length = 0;
  try {
    const parsed = await mermaid.parse(text); // throws on a syntax error
    const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
    const data = diagram.db.getData();
    results.push({
      name,
      ok: true,
      type: parsed.diagramType,
      nodes: data.nodes.map((n) => ({
        id: n.id,
        label: decode(n.label),
        parent: n.parentId ?? null,
        group: Boolean(n.isGroup),
        shape: n.shape,
        description: (n.description ?? []).map(decode),
        classes: (n.cssClasses ?? "").trim().split(/\s+/).filter(Boolean),
      })),
      edges: data.edges.map((e) => ({ start: e.start, end: e.end, label: decode(e.label ?? "") })),
      warnings: [...warnings],
    });
  } catch (err) {
    results.push({ name, ok: false, error: String(err?.message ?? err), warnings: [...warnings] });
  }
}
process.stdout.write(JSON.stringify(results));
