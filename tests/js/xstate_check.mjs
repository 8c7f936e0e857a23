// Load XState machine configs with XState v5's createMachine and run event sequences on them.
//
// Usage: node xstate_check.mjs INPUT.json
//   INPUT: [{"name", "config", "runs": [{"start": "open.unpaid" | null,
//                                       "events": [{"type", "payload"}]}]}]
// Prints one JSON array: per machine {name, ok, error, initial, runs: [[{legal, state}]]},
// where state is the dotted leaf name ("open.unpaid") after each event, and legal says
// whether XState had an enabled transition for it (guards evaluated).
import { readFileSync } from "node:fs";
import { createActor, createMachine } from "xstate";

const MISSING = Symbol("missing");

// The one guard our export uses: the chart's "PATH OP LITERAL", with the chart's rules, which
// are JSON's — a missing value is false (for != too), a boolean equals only a boolean, null only
// null, numbers compare numerically, and <, <=, >, >= hold only between two numbers or two
// strings.
function readPath(doc, steps) {
  let cur = doc;
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i];
    if (typeof step === "number") {
      if (!Array.isArray(cur)) return MISSING;
      const idx = step < 0 ? cur.length + step : step;
      if (idx < 0 || idx >= cur.length) return MISSING;
      cur = cur[idx];
    } else if (step === "*") {
      if (!Array.isArray(cur)) return MISSING;
      return cur.map((item) => readPath(item, steps.slice(i + 1))).filter((v) => v !== MISSING);
    } else {
      if (cur === null || typeof cur !== "object" || Array.isArray(cur)) return MISSING;
      if (!Object.hasOwn(cur, step)) return MISSING;
      cur = cur[step];
    }
  }
  return cur;
}

function kind(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

const SCALARS = ["null", "boolean", "number", "string"];

function jsonEqual(value, literal) {
  return kind(value) === kind(literal) && SCALARS.includes(kind(value)) && value === literal;
}

function payloadMatches({ event }, params) {
  const value = readPath(event.payload ?? null, params.steps);
  const literal = params.value;
  if (value === MISSING) return false;
  if (params.op === "==") return jsonEqual(value, literal);
  if (params.op === "!=") return !jsonEqual(value, literal);
  if (kind(value) !== kind(literal) || !["number", "string"].includes(kind(value))) {
    return false;
  }
  switch (params.op) {
    case "<": return value < literal;
    case "<=": return value <= literal;
    case ">": return value > literal;
    case ">=": return value >= literal;
    default: throw new Error(`unknown op ${params.op}`);
  }
}

function leaf(value) {
  if (typeof value === "string") return value;
  const keys = Object.keys(value);
  if (keys.length !== 1) throw new Error(`not one active state: ${JSON.stringify(value)}`);
  return `${keys[0]}.${leaf(value[keys[0]])}`;
}

function valueOf(dotted) {
  const parts = dotted.split(".");
  let value = parts.pop();
  while (parts.length) value = { [parts.pop()]: value };
  return value;
}

const warnings = [];
for (const level of ["warn", "error"]) {
  console[level] = (...args) => warnings.push(args.map(String).join(" "));
}

const inputs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const results = [];
for (const { name, config, runs } of inputs) {
  warnings.length = 0;
  try {
    const machine = createMachine(config).provide({ guards: { payloadMatches } });
    const first = createActor(machine).start();
    const initial = leaf(first.getSnapshot().value);
    first.stop();
    const outRuns = [];
    for (const run of runs ?? []) {
      const snapshot = run.start ? machine.resolveState({ value: valueOf(run.start) }) : undefined;
      const actor = createActor(machine, snapshot ? { snapshot } : {}).start();
      const steps = [];
      for (const ev of run.events) {
        const event = { type: ev.type, payload: ev.payload };
        const before = actor.getSnapshot();
        const legal = before.status === "active" && machine.getTransitionData(before, event).length > 0;
        actor.send(event);
        steps.push({ legal, state: leaf(actor.getSnapshot().value) });
      }
      actor.stop();
      outRuns.push(steps);
    }
    results.push({ name, ok: true, initial, runs: outRuns, warnings: [...warnings] });
  } catch (err) {
    results.push({ name, ok: false, error: String(err?.message ?? err), warnings: [...warnings] });
  }
}
process.stdout.write(JSON.stringify(results));
