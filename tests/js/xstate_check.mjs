// Load XState machine configs with XState v5's createMachine and run event sequences on them.
//
// Usage: node xstate_check.mjs INPUT.json
//   INPUT: [{"name", "config", "runs": [{"start": "open.unpaid" | null,
//                                       "events": [{"type", "payload"}]}]}]
//   (start: a configuration, "open.unpaid" or "fin.pay.pending+fin.od.no")
// Prints one JSON array: per machine {name, ok, error, initial, runs: [[{legal, state}]]},
// where state is the configuration after each event ("open.unpaid"; the active leaves joined
// by "+" in a parallel state), and legal says whether XState had an enabled transition for it
// (guards evaluated).
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

// A snapshot's value as the chart's configuration: the active leaves' dotted names joined by
// "+" ("open.unpaid"; "fin.pay.pending+fin.od.no" in a parallel state, where the value holds
// one key per region). Leaves come in the config's own order, which is the chart's.
function leaves(value, prefix = "") {
  if (typeof value === "string") return [prefix + value];
  const keys = Object.keys(value);
  if (keys.length === 0) throw new Error(`no active state under ${JSON.stringify(prefix)}`);
  return keys.flatMap((key) => {
    const inner = value[key];
    const empty = inner !== null && typeof inner === "object" && !Object.keys(inner).length;
    return empty ? [prefix + key] : leaves(inner, `${prefix}${key}.`);
  });
}

function configuration(value) {
  return leaves(value).join("+");
}

// The snapshot value of a configuration: "a.x+a.y" is {a: {x: {}, y: {}}} with each leaf's
// name as the innermost string ({a: {pay: "pending", od: "no"}}).
function valueOf(config) {
  const root = {};
  for (const dotted of config.split("+")) {
    const parts = dotted.split(".");
    let cur = root;
    for (let i = 0; i < parts.length - 2; i++) cur = cur[parts[i]] ??= {};
    if (parts.length === 1) return parts[0];
    cur[parts.at(-2)] = parts.at(-1);
  }
  return root;
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
    const initial = configuration(first.getSnapshot().value);
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
        steps.push({ legal, state: configuration(actor.getSnapshot().value) });
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
