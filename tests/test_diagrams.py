"""Diagrams are checked by the real tools, never by string comparison alone.

* DOT: Graphviz's ``dot`` renders it with nothing on stderr (no warnings);
* Mermaid: the ``mermaid`` npm package parses it (in node, with jsdom), and what it understood
  — states, parents, labels, arrows — is compared with the chart;
* SCXML: python-statemachine loads it and, on generated event sequences from every state,
  accepts, rejects and moves exactly as the chart does;
* XState: XState v5's ``createMachine`` accepts it and behaves like the chart the same way.

Every bundled chart goes through all of them (the ``chart_name`` fixture), and so does an
"awkward" chart whose names and guards are hostile to each format's syntax. Tools that are
missing skip these tests on a developer's machine, never in CI (``CI`` set), where ``.ci/run``
installs Graphviz and the node packages.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from statemachine import StateChart
from statemachine.exceptions import TransitionNotAllowed as SMNotAllowed
from statemachine.io import load as load_statechart
from statemachine.orderedset import OrderedSet

import engine
from engine import Chart, DiagramError, TransitionNotAllowed, diagrams, load_chart
from engine.chart import bundled_chart_dir
from engine.chart.expr import Guard
from engine.chart.load import load_yaml, parse_chart
from engine.cli import main
from engine.diagrams import _dot, _graphviz, _highlight, _model
from engine.diagrams._mermaid import _text
from engine.diagrams._scxml import guard_to_ecmascript
from engine.testing import covering_paths
from engine.testing._paths import legal_steps  # not exported: one payload per guarded step

HERE = Path(__file__).resolve().parent
JS = HERE / "js"
IN_CI = bool(os.environ.get("CI"))
SCXML = "{http://www.w3.org/2005/07/scxml}"

AWKWARD = r"""
provider: awkward
title: 'Awkward "names"; #1: <a> & b %% direction LR'
initial: [draft, with space]
states:
  - {name: draft, canonical: draft}
  - {name: payment_pending, canonical: open}
  - {name: open-overdue, canonical: open}
  - {name: with space, canonical: open, description: 'a "quoted"; #description'}
  - {name: end, canonical: void, final: true}
  - {name: state, canonical: open}
  - {name: class, canonical: open}
  - {name: 1st, canonical: open}
  - {name: root_start, canonical: open}
  - {name: 'semi;colon:hash#', canonical: open}
  - {name: 'quote"d', canonical: open}
  - {name: direction LR, canonical: open}
  - {name: déjà vu, canonical: open}
  - {name: closed_start, canonical: open}
  - name: closed
    initial: start
    states:
      - {name: start, canonical: paid}
      - {name: note, canonical: refunded}
  - name: archive
    states:
      - {name: start, canonical: void, final: true}
transitions:
  - {trigger: go, source: draft, dest: payment_pending, guard: '$.amount >= 1.5'}
  - {trigger: go, source: draft, dest: open-overdue, guard: '$.amount > 1'}
  - {trigger: go, source: draft, dest: with space, guard: '$.note == "a;b:c#d"'}
  - {trigger: end, source: [payment_pending, open-overdue], dest: end}
  - {trigger: ping, source: '*', internal: true}
  - {trigger: go-now, source: draft, dest: with space}
  - {trigger: close, source: [with space, state, class, 1st, root_start], dest: closed}
  - {trigger: refund, source: '*', dest: closed.note, guard: '$.flag == true'}
  - {trigger: skip, source: direction LR, dest: 'semi;colon:hash#', guard: '$.status != "void"'}
  - {trigger: nest, source: 'quote"d', dest: déjà vu, guard: '$.a.b < 3'}
  - {trigger: reopen, source: closed.note, dest: closed_start}
  - {trigger: reopen, source: closed, dest: draft}
  - {trigger: spread, source: closed_start, dest: state}
  - {trigger: hop, source: payment_pending, dest: 'quote"d'}
  - {trigger: hop, source: 'semi;colon:hash#', dest: direction LR}
  - {trigger: hop, source: [déjà vu, 1st], dest: class}
  - {trigger: hop, source: state, dest: 1st}
  - {trigger: hop, source: with space, dest: root_start}
  - {trigger: turn, source: draft, dest: direction LR}
  - {trigger: archive, source: closed.note, dest: archive}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.invoice}
events: {e.go: go}
"""
# A user's chart (issue 17): a transition written on a compound state into a state inside it,
# and "*" transitions, both arrow and internal. Pictures must start each arrow where the
# invoice was; the machine formats must behave the same (SCXML, XState run it too).
ZEBRA = r"""
provider: zebrapay
title: ZebraPay
initial: [draft]
states:
  - {name: draft, canonical: draft}
  - name: issued
    canonical: open
    initial: unpaid
    states: [{name: unpaid}, {name: partially_paid}, {name: overdue}]
  - {name: paid, canonical: paid, final: true}
  - {name: void, canonical: void, final: true}
transitions:
  - {trigger: issue, source: draft, dest: issued}
  - {trigger: part_pay, source: issued, dest: issued.partially_paid}
  - {trigger: lapse, source: issued.unpaid, dest: issued.overdue}
  - {trigger: pay, source: issued, dest: paid}
  - {trigger: void, source: '*', dest: void}
  - {trigger: ping, source: '*', internal: true}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.invoice}
events: {created: {create: true}, issued: issue, part: part_pay, paid: pay, voided: void}
"""
# Parallel states (the lead's example): regions entered together, a transition inside one
# region, one leaving from the parallel state's border, an internal one on it, a rule table.
PAR = (HERE / "charts_parallel" / "par.yaml").read_text(encoding="utf-8")
# Everything else parallel states let a chart say, each a place where SCXML or XState would
# exit or enter something else than the chart's machine if written naively: a region with an
# initial that isn't its first state and a compound state inside; one trigger moving two
# regions at once; a leaf's transition beating the parallel state's; a transition back to its
# own region (SCXML and XState would restart the other regions), from a region into itself,
# from the parallel state back to itself; internal ones on a region and on "*"; "*" arrows.
REGIONS = r"""
provider: regions
initial: [draft]
states:
  - {name: draft, canonical: draft}
  - name: fin
    parallel: true
    canonical:
      - {when: {pay: done}, canonical: paid}
      - {when: {pay: [partial], dispute: open}, canonical: uncollectible}
      - {canonical: open}
    states:
      - name: pay
        initial: pending
        states: [{name: partial}, {name: pending}, {name: done}]
      - name: od
        states: [{name: "no"}, {name: "yes"}]
      - name: dispute
        states:
          - {name: none}
          - name: open
            states: [{name: a}, {name: b}]
  - {name: void, canonical: void, final: true}
  - {name: gone, canonical: void, final: true}
transitions:
  - {trigger: finalize, source: draft, dest: fin}
  - {trigger: pay, source: fin.pay.pending, dest: fin.pay.partial, guard: "$.amount < 10"}
  - {trigger: pay, source: [fin.pay.pending, fin.pay.partial], dest: fin.pay.done}
  - {trigger: overdue, source: fin.od.no, dest: fin.od.yes, guard: "$.late == true"}
  - {trigger: tick, source: fin.pay.pending, dest: fin.pay.partial}
  - {trigger: tick, source: fin.od.no, dest: fin.od.yes}
  - {trigger: dispute, source: fin.dispute.none, dest: fin.dispute.open}
  - {trigger: flip, source: fin.dispute.open.a, dest: fin.dispute.open.b}
  - {trigger: settle, source: fin.dispute.open, dest: fin.dispute.none}
  - {trigger: restart, source: fin.pay.done, dest: fin.pay}
  - {trigger: rewind, source: fin.dispute, dest: fin.dispute.open.b}
  - {trigger: reset, source: fin, dest: fin}
  - {trigger: void, source: fin.pay.done, dest: gone}
  - {trigger: void, source: fin, dest: void}
  - {trigger: clear, source: fin.od, dest: void}
  - {trigger: note, source: fin, internal: true}
  - {trigger: poke, source: fin.od, internal: true}
  - {trigger: ping, source: '*', internal: true}
  - {trigger: kill, source: '*', dest: gone, guard: '$.why != "test"'}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.inv}
events: {created: {create: true}}
"""
_INLINE = {
    "awkward": AWKWARD,
    "zebrapay": ZEBRA,
    "par": PAR,
    "regions": REGIONS,
}
BUNDLED = sorted(p.stem for p in bundled_chart_dir().glob("*.yaml"))
# The module-scoped node runs need the names up front; per-chart tests use ``chart_name``.
ALL = [*BUNDLED, *_INLINE]
# The charts with parallel states, told from their text so that collecting the tests loads
# none: the two above, and every bundled one that has some (Lago).
_TEXTS = {**{n: (bundled_chart_dir() / f"{n}.yaml").read_text("utf-8") for n in BUNDLED}, **_INLINE}
PARALLEL = [n for n, text in _TEXTS.items() if re.search(r"\bparallel:\s*(true|yes)\b", text)]


@cache
def chart_of(name: str) -> Chart:
    if name in _INLINE:
        return Chart(parse_chart(load_yaml(_INLINE[name]), f"{name}.yaml"))
    return load_chart(name)


@dataclass(frozen=True)
class Entry:
    """A history entry as the engine's Outcome has it (the diagrams' HistoryEntry protocol)."""

    status: str
    trigger: str | None
    from_state: str | None
    to_state: str | None
    event_type: str | None
    adopted: bool = False


STRIPE_HISTORY = [
    Entry("applied", None, None, "draft", "invoice.created"),
    Entry("unchanged", "notify", "draft", "draft", "invoice.sent"),
    Entry("rejected", "pay", "draft", None, "invoice.paid"),
    Entry("applied", "finalize", "draft", "open", "invoice.finalized"),
    Entry("duplicate", "finalize", None, None, "invoice.finalized"),
    Entry("applied", "pay", "open", "paid", "invoice.paid"),
    Entry("rejected", "void", "paid", None, "invoice.voided"),
]


CHARGEOVER_HISTORY = [
    Entry("applied", None, None, "open.overdue", "invoice.insert", adopted=True),
    Entry("applied", "extend_due_date", "open.overdue", "open.unpaid", "invoice.status"),
    Entry("rejected", "void", "open.unpaid", None, "invoice.status"),
    Entry("applied", "pay", "open.unpaid", "closed.paid", "invoice.status"),
]


def require(ok: bool, what: str) -> None:
    """Skip when a tool is truly missing on a developer's machine; in CI, fail instead."""
    if ok:
        return
    if IN_CI:
        pytest.fail(f"{what} is missing in CI; .ci/run must install it")
    pytest.skip(f"{what} is not installed")


def need_dot() -> None:
    require(shutil.which("dot") is not None, "Graphviz (apt-get install graphviz)")


def run_node(script: str, items: list[dict[str, Any]], tmp: Path) -> dict[str, dict[str, Any]]:
    """Run one tests/js harness over ``items``; results by name."""
    require(
        shutil.which("node") is not None and (JS / "node_modules").is_dir(),
        "node with tests/js/node_modules (npm ci --prefix tests/js)",
    )
    inp = tmp / f"{script}.json"
    inp.write_text(json.dumps(items), encoding="utf-8")
    proc = subprocess.run(
        ["node", str(JS / script), str(inp)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr
    return {r["name"]: r for r in json.loads(proc.stdout)}


# ------------------------------------------------------------------ behaviour: event sequences


def guard_values(chart: Chart) -> dict[tuple[str, ...], list[Any]]:
    """For each guard path, values on both sides of its literal, of other JSON types too
    (a string for a number, a list, ``null``), and missing (left to chance).

    Two corners are left out because python-statemachine, the SCXML peer, is not ECMAScript:
    no booleans for number guards, nor numbers for boolean ones (it evaluates ``===`` as
    Python's ``==``, where ``True == 1``), and no ``null`` for ``!=`` guards (it reads a
    missing field as ``null``, so it can't tell them apart; the conditions take both as
    missing there). Real ECMAScript keeps them apart, as the chart does:
    ``test_scxml_guard_conditions_compare_as_json_in_real_ecmascript`` checks those in node,
    and XState's guard is JavaScript.
    """
    out: dict[tuple[str, ...], list[Any]] = {}
    for t in chart.spec.transitions:
        g = t.guard
        if g is None:
            continue
        lit = g.literal
        if isinstance(lit, bool):
            vals: list[Any] = [lit, not lit, "true"]
        elif isinstance(lit, int | float):
            vals = [lit, lit - 1, lit + 1, lit + 0.5, float(lit), str(lit)]
        elif isinstance(lit, str):
            vals = [lit, lit + "x", "", 1]
        else:
            vals = [0, "x"]
        vals += [[lit]] if g.op == "!=" else [None, [lit]]
        key = tuple(str(s) for s in g.steps)
        out.setdefault(key, []).extend(v for v in vals if v not in out.get(key, []))
    return out


def payload(rng: random.Random, pools: dict[tuple[str, ...], list[Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for steps, values in pools.items():
        if rng.random() < 0.15:
            continue  # the field is missing
        cur = body
        for key in steps[:-1]:
            cur = cur.setdefault(key, {})
        cur[steps[-1]] = rng.choice(values)
    return body


def fold(chart: Chart, start: str, events: list[tuple[str, Any]]) -> list[tuple[bool, str]]:
    """What the chart itself says after each event: (legal, configuration)."""
    state: str = start
    out: list[tuple[bool, str]] = []
    for trigger, body in events:
        try:
            state = chart.next_state(state, trigger, body)
            out.append((True, state))
        except TransitionNotAllowed:
            out.append((False, state))
    return out


def event_runs(chart: Chart, per_state: int = 10, length: int = 8) -> list[tuple[str, list[Any]]]:
    """Sequences from every configuration, mostly legal triggers, some illegal ones."""
    rng = random.Random(chart.name)
    pools = guard_values(chart)
    runs: list[tuple[str, list[Any]]] = []
    for start in chart.states:
        for _ in range(per_state):
            state: str = start
            events: list[tuple[str, Any]] = []
            for _ in range(length):
                allowed = chart.allowed_triggers(state)
                pick = allowed if allowed and rng.random() < 0.75 else chart.triggers
                trigger, body = rng.choice(pick), payload(rng, pools)
                events.append((trigger, body))
                state = fold(chart, state, [(trigger, body)])[0][1]
            runs.append((start, events))
    return runs


# ------------------------------------------------------------------------------------- DOT


def check_dot(name: str, history: list[Entry] | None = None) -> None:
    need_dot()
    chart = chart_of(name)
    text = diagrams.to_dot(chart, highlight=history)
    proc = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b"", proc.stderr.decode()  # not even a warning
    svg = ET.fromstring(proc.stdout)
    titles = {t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")}
    graph = _model.build(chart)
    for nid, node in graph.nodes.items():
        assert ("cluster_" + nid if node.compound else nid) in titles


def test_dot_renders_without_warnings(chart_name: str) -> None:
    check_dot(chart_name)
    check_dot(chart_name, history=[])  # highlighting an empty history dims everything


def test_dot_of_awkward_names_and_a_highlighted_path() -> None:
    check_dot("awkward")
    check_dot("stripe", STRIPE_HISTORY)
    check_dot("awkward", [Entry("applied", "refund", "draft", "closed.note", None)])


def test_broken_dot_is_an_error_naming_graphviz() -> None:
    need_dot()
    with pytest.raises(DiagramError, match=r"Graphviz dot failed.*syntax error"):
        _graphviz.run_dot("digraph {", "svg")


def test_without_dot_the_error_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    with pytest.raises(DiagramError, match="apt-get install graphviz"):
        diagrams.to_image(chart_of("stripe"), "svg")
    assert diagrams.to_mermaid(chart_of("stripe"))  # text formats need nothing


def test_render_writes_svg_and_png(chart_name: str, tmp_path: Path) -> None:
    need_dot()
    chart = chart_of(chart_name)
    svg = diagrams.render(chart, tmp_path / f"{chart_name}.svg")
    assert ET.parse(svg).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    png = diagrams.render(chart, tmp_path / f"{chart_name}.png")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert diagrams.render(chart, tmp_path / "x.out", "png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------- Mermaid


Arrow = tuple[str, str, frozenset[str]]


def mermaid_expected(chart: Chart) -> tuple[dict[str, Any], set[Arrow], dict[str, list[str]]]:
    """What Mermaid must report for ``chart``, in Mermaid's ids: states, arrows, and the
    internal transitions of each state.

    Arrows run leaf to leaf where they can: a transition from a composite state leaves each of
    its leaves, one into it ends at the leaf it enters; ``*`` leaves the "any" box. A parallel
    state is the exception: a transition written on it leaves from its border (and its
    internal ones are a note on it), one into it ends at a fork bar (``fin_fork``) with an
    arrow to each region's initial leaf."""
    graph = _model.build(chart)
    ids = {**diagrams.state_ids(chart, "mermaid"), _model.ANY: "any_state"}
    nodes: dict[str, dict[str, Any]] = {}
    for nid, node in graph.nodes.items():
        note = graph.canonical_note(nid)
        nodes[ids[nid]] = {
            "label": node.name + (f" · {note}" if note else ""),
            "parent": ids[node.parent] if node.parent else None,
            "group": node.compound,
        }

    def drawn_from(state: str) -> list[str]:
        node = graph.nodes[state]
        if node.parallel or not node.compound:
            return [state]
        return [x for child in node.children for x in drawn_from(child)]

    edges: set[Arrow] = set()

    def into(source: str | None, target: str) -> str:
        config = graph.entered_from(source, target)
        if len(config.leaves) == 1:
            return ids[config]
        fork = f"fork:{config}"  # check_mermaid names Mermaid's fork so, by where it leads
        parallel = graph.place(config)
        assert parallel is not None
        scope = graph.nodes[parallel].parent
        nodes[fork] = {"parent": ids[scope] if scope else None, "shape": "fork"}
        edges.update((fork, ids[x], frozenset()) for x in config.leaves)
        return fork

    arrows: dict[tuple[str, str], set[str]] = {}
    internal: dict[str, list[str]] = {}
    for t in graph.transitions:
        label = t.trigger + (f" [{t.guard}]" if t.guard is not None else "")
        leaves = [x for s in t.sources for x in graph.leaves(s)]
        covered = [x for c in graph.cover(leaves) for x in drawn_from(c)]
        for src in [_model.ANY] if t.any_source else covered:
            if t.target is None:
                internal.setdefault(ids[src], []).append(f"↺ {label}")
            else:
                arrows.setdefault((ids[src], into(src, t.target)), set()).add(label)
    edges |= {(src, dst, frozenset(labels)) for (src, dst), labels in arrows.items()}
    edges |= {("root_start", into(None, i), frozenset()) for i in graph.initial}
    for nid, node in graph.nodes.items():
        if node.final:
            end = f"{ids[node.parent]}_end" if node.parent else "root_end"
            edges.add((ids[nid], end, frozenset()))
    return nodes, edges, internal


@pytest.fixture(scope="module")
def mermaid(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    items = [{"name": n, "text": diagrams.to_mermaid(chart_of(n))} for n in ALL]
    items.append(
        {
            "name": "stripe+history",
            "text": diagrams.to_mermaid(chart_of("stripe"), highlight=STRIPE_HISTORY),
        }
    )
    co = diagrams.to_mermaid(chart_of("chargeover"), highlight=CHARGEOVER_HISTORY)
    items.append({"name": "chargeover+history", "text": co})
    early = [Entry("rejected", "pay", None, None, "invoice.paid"), *STRIPE_HISTORY]
    items.append(
        {"name": "stripe+early", "text": diagrams.to_mermaid(chart_of("stripe"), highlight=early)}
    )
    for name, history in (("par+history", PAR_HISTORY), ("regions+history", REGIONS_HISTORY)):
        chart = chart_of(name.split("+")[0])
        items.append({"name": name, "text": diagrams.to_mermaid(chart, highlight=history)})
    good = diagrams.to_mermaid(chart_of("chargeover"))
    items.append({"name": "broken: arrow", "text": good.replace(" --> ", " -> ", 1)})
    items.append({"name": "broken: brace", "text": good.replace("    }\n", "", 1)})
    items.append({"name": "unescaped", "text": good.replace("become_overdue", "a; b", 1)})
    return run_node("mermaid_check.mjs", items, tmp_path_factory.mktemp("mermaid"))


_NOT_STATES = ("stateStart", "stateEnd", "divider", "note", "noteGroup")


def check_mermaid(res: dict[str, Any], name: str) -> None:
    assert res["ok"], res["error"]
    assert res["type"] == "stateDiagram"
    assert not res["warnings"]
    chart = chart_of(name)
    nodes, edges, internal = mermaid_expected(chart)
    res = copy.deepcopy(res)  # the module's results: fork ids are renamed below
    back = {v: k for k, v in diagrams.state_ids(chart, "mermaid").items()}
    forks = {  # a fork bar by the configuration it leads to: "fork:a.x+a.y"
        n["id"]: "fork:"
        + "+".join(
            sorted(
                (back[e["end"]] for e in res["edges"] if e["start"] == n["id"]),
                key=chart.tree.leaves.index,
            )
        )
        for n in res["nodes"]
        if n["shape"] == "fork"
    }
    for item in (*res["nodes"], *res["edges"]):
        for key in ("id", "parent", "start", "end"):
            if item.get(key) in forks:
                item[key] = forks[item[key]]
    everything = {n["id"]: n for n in res["nodes"]}
    got = {n["id"]: dict(n) for n in res["nodes"] if n["shape"] not in _NOT_STATES}
    for n in got.values():  # a region's parent is the divider of the concurrent section it is in
        while n["parent"] is not None and everything[n["parent"]]["shape"] == "divider":
            n["parent"] = everything[n["parent"]]["parent"]
    for mid, want in nodes.items():
        assert {k: got[mid][k] for k in want} == want, mid
    extra = set(got) - set(nodes) - {"any_state"}
    assert not extra, f"mermaid saw states we did not draw: {extra}"
    seen = {
        (e["start"], e["end"], frozenset(x for x in re.split(r"<br\s*/?>", e["label"]) if x))
        for e in res["edges"]
        if everything[e["end"]]["shape"] != "note"  # a note's link to its state
    }
    assert seen == edges
    notes = [n for n in res["nodes"] if n["shape"] == "note"]
    for mid, lines in internal.items():
        if got[mid]["group"]:  # a parallel state's: a note beside it
            said = [
                x for n in notes if n["id"].startswith(f"{mid}----") for x in n["label"].split("\n")
            ]
        else:
            said = [d for d in got[mid]["description"] if d.startswith("↺")]
        assert sorted(x.strip() for x in said) == sorted(lines), mid
    ids = diagrams.state_ids(chart, "mermaid")
    for leaf in chart.tree.leaves:
        if (canonical := chart.tree.canonical(leaf)) is not None:
            assert f"c_{canonical}" in got[ids[leaf]]["classes"]


def test_mermaid_reads_the_chart_we_drew(mermaid: dict[str, Any], chart_name: str) -> None:
    check_mermaid(mermaid[chart_name], chart_name)


def test_mermaid_reads_awkward_names_as_written(mermaid: dict[str, Any]) -> None:
    check_mermaid(mermaid["awkward"], "awkward")


def test_mermaid_rejects_broken_diagrams(mermaid: dict[str, dict[str, Any]]) -> None:
    assert not mermaid["broken: arrow"]["ok"]
    assert "error on line 9" in mermaid["broken: arrow"]["error"]
    assert not mermaid["broken: brace"]["ok"]


def test_unescaped_text_would_be_caught(mermaid: dict[str, dict[str, Any]]) -> None:
    """The ';' Mermaid ends a statement with turns a label into stray states: the structural
    check sees it, which is why every label goes through ``_text``."""
    res = mermaid["unescaped"]
    assert res["ok"]
    assert {"b"} <= {n["id"] for n in res["nodes"]}
    assert _text("a; b") == "a#59; b"


def test_mermaid_highlight_marks_the_invoice_path(mermaid: dict[str, dict[str, Any]]) -> None:
    res = mermaid["stripe+history"]
    assert res["ok"], res["error"]
    nodes = {n["id"]: n for n in res["nodes"]}
    assert "current" in nodes["paid"]["classes"]
    assert "● current state" in nodes["paid"]["description"]
    assert {"visited"} <= set(nodes["draft"]["classes"]) & set(nodes["open"]["classes"])
    assert "visited" not in nodes["void"]["classes"]
    assert "↺ notify \u00d71" in nodes["draft"]["description"]
    labels = {(e["start"], e["end"]): e["label"] for e in res["edges"]}
    assert labels[("root_start", "draft")] == "(1)"
    assert re.split(r"<br\s*/?>", labels[("draft", "open")]) == ["finalize", "(2)"]
    assert re.split(r"<br\s*/?>", labels[("open", "paid")]) == ["pay", "(3)"]
    notes = [n["label"] for n in res["nodes"] if n["shape"] == "note"]
    assert any("✗ rejected: invoice.paid (pay)" in n for n in notes)
    assert any("✗ rejected: invoice.voided (void)" in n for n in notes)


# ----------------------------------------------------------------------------------- SCXML


@cache
def scxml_class(chart: Chart) -> type[StateChart[Any]]:
    """Our SCXML of ``chart``, loaded in python-statemachine (once: a machine per run)."""
    cls = load_statechart(diagrams.to_scxml(chart), format="scxml")
    cls.allow_event_without_transition = False  # so a rejected event raises, as in the chart
    return cls


def scxml_machine(chart: Chart, start: str | None = None) -> StateChart[Any]:
    """Our SCXML running in python-statemachine, in configuration ``start`` (default: where
    the document starts); unhandled events raise.

    The machine is put in ``start`` by setting its configuration, every active state, as
    python-statemachine's low-level API allows; not by rewriting the document's ``initial``
    attributes, which a transition into a parallel state would then follow too."""
    sm = scxml_class(chart)()
    if start is not None:
        ids = diagrams.state_ids(chart, "scxml")
        active = [
            ids[s]
            for leaf in chart.configuration(start).leaves
            for s in [leaf, *ancestors(chart, leaf)]
        ]
        sm.configuration = OrderedSet(sm.states_map[i] for i in dict.fromkeys(active))
    return sm


def ancestors(chart: Chart, state: str) -> list[str]:
    out, parent = [], chart.tree.parent(state)
    while parent is not None:
        out.append(parent)
        parent = chart.tree.parent(parent)
    return out


def check_scxml_document(name: str) -> None:
    chart = chart_of(name)
    text = diagrams.to_scxml(chart)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(text)
    assert root.tag == SCXML + "scxml"
    assert root.get("version") == "1.0"
    kinds = (SCXML + "state", SCXML + "final", SCXML + "parallel")
    states = [e for e in root.iter() if e.tag in kinds]
    ids = [e.get("id") for e in states]
    assert len(ids) == len(set(ids)) == len(_model.build(chart).nodes)
    ncname = re.compile(r"^[A-Za-z_][\w.\-]*$")
    assert all(i and ncname.match(i) for i in ids)
    for el in root.iter(SCXML + "transition"):
        assert el.get("target") in (None, *ids)
        assert el.get("event")
    for el in root.iter(SCXML + "final"):
        assert not list(el.iter(SCXML + "transition")), "a <final> has no transitions"
    for el in [root, *states]:
        if el.get("initial"):
            inside = {d.get("id") for d in el.iter() if d is not el}
            assert el.get("initial") in inside


def scxml_run(chart: Chart, start: str, events: list[tuple[str, Any]]) -> list[tuple[bool, str]]:
    """What python-statemachine says after each event: (legal, configuration)."""
    sm = scxml_machine(chart, start)
    got = []
    for trigger, body in events:
        try:
            StateChart.send(sm, trigger, **(body or {}))  # a "send" event would shadow sm.send
            legal = True
        except SMNotAllowed:
            legal = False
        got.append((legal, scxml_configuration(sm, chart)))
    return got


def check_scxml_behaviour(name: str) -> None:
    chart = chart_of(name)
    assert scxml_configuration(scxml_machine(chart), chart) == chart.initial_states[0]
    for start, events in event_runs(chart):
        assert scxml_run(chart, start, events) == fold(chart, start, events), (start, events)


def test_mermaid_takes_a_note_for_events_before_birth(mermaid: dict[str, Any]) -> None:
    res = mermaid["stripe+early"]
    assert res["ok"], res["error"]
    notes = [n["label"] for n in res["nodes"] if n["shape"] == "note"]
    assert any("invoice.paid (pay), before it existed" in n for n in notes)


def test_mermaid_highlight_through_composite_states(mermaid: dict[str, Any]) -> None:
    res = mermaid["chargeover+history"]
    assert res["ok"], res["error"]
    labels = {(e["start"], e["end"]): re.split(r"<br\s*/?>", e["label"]) for e in res["edges"]}
    assert labels[("root_start", "open_overdue")] == ["adopted (1)"]
    assert labels[("open_overdue", "open_unpaid")] == ["extend_due_date", "(2)"]
    assert labels[("open_unpaid", "closed_paid")] == ["pay", "(3)"]
    assert labels[("open_overdue", "closed_paid")] == ["pay"]  # not this invoice's way
    nodes = {n["id"]: n for n in res["nodes"]}
    assert "current" in nodes["closed_paid"]["classes"]
    assert any("✗ rejected: invoice.status (void)" in n["label"] for n in res["nodes"])


def test_scxml_is_well_formed_w3c_scxml(chart_name: str) -> None:
    check_scxml_document(chart_name)


def test_scxml_behaves_like_the_chart(chart_name: str) -> None:
    check_scxml_behaviour(chart_name)


def test_scxml_of_awkward_names() -> None:
    check_scxml_document("awkward")
    check_scxml_behaviour("awkward")


def scxml_configuration(sm: StateChart[Any], chart: Chart) -> str:
    """The chart configuration python-statemachine is in: its active leaves, in chart order."""
    back = {v: k for k, v in diagrams.state_ids(chart, "scxml").items()}
    leaves = [back[s.id] for s in sm.configuration if chart.tree.node(back[s.id]).leaf]
    config = chart.tree.configuration("+".join(leaves))
    assert config is not None, leaves  # one leaf per active region, or it is no configuration
    return config


def test_scxml_guard_conditions_are_ecmascript() -> None:
    spec = chart_of("awkward").spec
    guards = {str(t.guard): guard_to_ecmascript(t.guard) for t in spec.transitions if t.guard}
    assert guards['$.status != "void"'] == (
        '_event.data.status === null && _event.data.status + "" === "null"'
        ' || _event.data.status != null && _event.data.status !== "void"'
    )
    assert (
        guards["$.a.b < 3"]
        == '_event.data.a["b"] - 0 === _event.data.a["b"] && _event.data.a["b"] < 3'
    )
    assert guards["$.flag == true"] == "_event.data.flag === true"
    assert guards['$.note == "a;b:c#d"'] == '_event.data.note === "a;b:c#d"'


def test_scxml_guard_conditions_compare_as_json_in_real_ecmascript(tmp_path: Path) -> None:
    """The conditions in node (real ECMAScript), against the chart's own guards: the corners
    where JavaScript converts types (``"2" < 3``, ``true < 3``, ``null != "x"``)."""
    require(shutil.which("node") is not None, "node")
    guards = ["$.v == 1", "$.v != 1", "$.v != null", "$.v == null", '$.v != "x"', "$.v < 3"]
    guards += ['$.v >= "m"', "$.v == true", "$.v != true", "$.v > 0.5", '$.v != "null"']
    values: list[Any] = [1, 1.0, 0, 2.5, 5, "2", "x", "z", "a", True, False, None, [1], {}]
    values += ["null", ["null"], [None]]
    cases = [(g, v) for g in guards for v in values] + [(g, ...) for g in guards]
    script = "const out = [];\n"
    for text, value in cases:
        cond = guard_to_ecmascript(Guard.parse(text), "d.v")
        data = "{}" if value is ... else json.dumps({"v": value})
        script += f"try {{ const d = {{v: {data}}}; out.push(!!({cond})); }}"
        script += " catch (e) { out.push(false); }\n"
    script += "console.log(JSON.stringify(out));\n"
    (tmp_path / "conds.js").write_text(script, encoding="utf-8")
    proc = subprocess.run(["node", str(tmp_path / "conds.js")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    want = [Guard.parse(g)({} if v is ... else {"v": v}) for g, v in cases]
    assert json.loads(proc.stdout) == want


# ---------------------------------------------------------------------------------- XState


@pytest.fixture(scope="module")
def xstate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    items = []
    for name in ALL:
        chart = chart_of(name)
        runs = [
            {"start": start, "events": [{"type": t, "payload": b} for t, b in events]}
            for start, events in event_runs(chart)
        ]
        items.append({"name": name, "config": diagrams.to_xstate(chart), "runs": runs})
        if name in PARALLEL:
            runs = [
                {"start": start, "events": [{"type": t, "payload": b} for t, b in pairs]}
                for start, pairs in legal_paths(chart)
            ]
            config = diagrams.to_xstate(chart)
            items.append({"name": f"{name}+paths", "config": config, "runs": runs})
    broken = diagrams.to_xstate(chart_of("stripe"))
    broken["states"]["draft"]["on"]["finalize"][0]["target"] = "#nowhere"
    items.append({"name": "broken", "config": broken, "runs": []})
    return run_node("xstate_check.mjs", items, tmp_path_factory.mktemp("xstate"))


def check_xstate(res: dict[str, Any], name: str) -> None:
    assert res["ok"], res["error"]
    assert not res["warnings"]
    chart = chart_of(name)
    assert xstate_configuration(chart, res["initial"]) == chart.initial_states[0]
    for (start, events), got in zip(event_runs(chart), res["runs"], strict=True):
        want = fold(chart, start, events)
        assert [(s["legal"], xstate_configuration(chart, s["state"])) for s in got] == want, (
            start,
            events,
        )


def xstate_configuration(chart: Chart, text: str) -> str:
    """The chart configuration XState's snapshot value stands for (its leaves put in chart
    order); the text as it came when it is none, for the assertion to show."""
    return chart.tree.configuration(text) or text


def test_xstate_behaves_like_the_chart(xstate: dict[str, Any], chart_name: str) -> None:
    check_xstate(xstate[chart_name], chart_name)


def test_xstate_of_awkward_names(xstate: dict[str, Any]) -> None:
    check_xstate(xstate["awkward"], "awkward")


def test_peers_run_a_compound_transition_into_its_own_child(
    mermaid: dict[str, Any], xstate: dict[str, Any]
) -> None:
    check_mermaid(mermaid["zebrapay"], "zebrapay")
    check_xstate(xstate["zebrapay"], "zebrapay")
    check_scxml_document("zebrapay")
    check_scxml_behaviour("zebrapay")


def test_xstate_rejects_a_broken_config(xstate: dict[str, dict[str, Any]]) -> None:
    assert not xstate["broken"]["ok"]
    assert "nowhere" in xstate["broken"]["error"]


def test_xstate_config_is_json(chart_name: str) -> None:
    config = diagrams.to_xstate(chart_of(chart_name))
    assert json.loads(json.dumps(config)) == config


# ---------------------------------------------------------------------- ids, formats, API


@pytest.mark.parametrize("fmt", ["mermaid", "xstate", "scxml", "dot"])
def test_state_ids_are_unique_valid_and_keep_plain_names(fmt: str) -> None:
    chart = chart_of("awkward")
    ids = diagrams.state_ids(chart, fmt)
    assert set(ids) == set(_model.build(chart).nodes)
    assert len(set(ids.values())) == len(ids)
    assert ids["payment_pending"] == "payment_pending"
    if fmt in ("mermaid", "xstate"):
        assert all(re.fullmatch(r"[A-Za-z_]\w*", i) and i.isascii() for i in ids.values())
        assert ids["state"] != "state"
        assert ids["root_start"] != "root_start"
    if fmt == "scxml":
        assert ids["closed.note"] == "closed.note"
        assert ids["open-overdue"] == "open-overdue"
    with pytest.raises(DiagramError, match="unknown diagram format 'gif'"):
        diagrams.state_ids(chart, "gif")


def test_every_chart_exports_in_every_text_format(chart_name: str) -> None:
    chart = chart_of(chart_name)
    for fmt in ("mermaid", "dot", "scxml", "xstate"):
        out = diagrams.export(chart, fmt)
        assert isinstance(out, str)
        assert chart.states[0].split(".")[-1] in out


def test_format_from_suffix_and_bad_formats() -> None:
    assert [diagrams.format_for(f"a{s}") for s in (".mmd", ".gv", ".SVG", ".scxml", ".json")] == [
        "mermaid",
        "dot",
        "svg",
        "scxml",
        "xstate",
    ]
    with pytest.raises(DiagramError, match=r"'a\.txt'.*\.mmd \(mermaid\)"):
        diagrams.format_for("a.txt")
    chart = chart_of("stripe")
    with pytest.raises(DiagramError, match="unknown diagram format 'gif'; choose one of mermaid"):
        diagrams.export(chart, "gif")
    with pytest.raises(DiagramError, match="for pictures, not 'scxml'"):
        diagrams.export(chart, "scxml", highlight=STRIPE_HISTORY)
    with pytest.raises(DiagramError, match="direction 'UP'"):
        diagrams.to_dot(chart, direction="UP")  # type: ignore[arg-type]
    assert "direction TB" in diagrams.to_mermaid(chart, direction="TB")


def test_highlight_maps_history_onto_the_picture() -> None:
    graph = _model.build(chart_of("stripe"))
    hl = _highlight.highlight_of(graph, STRIPE_HISTORY)
    assert hl.current == "paid"
    assert hl.states == {"draft", "open", "paid"}
    assert hl.start_steps == {"draft": [1]}
    assert hl.steps == {("draft", "open"): [2], ("open", "paid"): [3]}
    assert hl.internal == {("draft", "notify"): 1}
    assert hl.rejected == {"draft": ["invoice.paid (pay)"], "paid": ["invoice.voided (void)"]}
    odd = _highlight.highlight_of(graph, [Entry("applied", "zap", "draft", "void", "x")])
    assert odd.extra == {("draft", "void"): [1]}  # a move the chart does not have is still drawn
    assert '"draft" -> "void"' in _dot.to_dot(graph, odd)


def test_an_adopted_invoice_gets_its_own_first_arrow() -> None:
    history = [
        Entry("applied", None, None, "uncollectible", "invoice.updated", adopted=True),
        Entry("applied", "pay", "uncollectible", "paid", "invoice.paid"),
    ]
    chart = chart_of("stripe")
    assert "    [*] --> uncollectible : adopted (1)\n" in diagrams.to_mermaid(
        chart, highlight=history
    )
    text = diagrams.to_dot(chart, highlight=history)
    assert '"..start" -> "uncollectible" [label="adopted (1)", style=dashed' in text
    check_dot("stripe", history)
    graph = _model.build(chart_of("chargeover"))
    adopted = [Entry("applied", None, None, "open.overdue", "insert", adopted=True)]
    born = _highlight.births(graph, _highlight.highlight_of(graph, adopted))
    assert born == ({"open.overdue": "adopted (1)"}, {})  # an initial state: on its own arrow


def test_events_rejected_before_birth_are_shown() -> None:
    history = [
        Entry("rejected", "pay", None, None, "invoice.paid"),
        Entry("applied", None, None, "draft", "invoice.created"),
    ]
    chart = chart_of("stripe")
    mermaid = diagrams.to_mermaid(chart, highlight=history)
    assert (
        "note left of draft\n        ✗ rejected: invoice.paid (pay), before it existed" in mermaid
    )
    dot = diagrams.to_dot(chart, highlight=history)
    assert '"..start" -> "..rejected"' in dot
    check_dot("stripe", history)


ZEBRA_HISTORY = [
    Entry("applied", None, None, "draft", "created"),
    Entry("applied", "issue", "draft", "issued.unpaid", "issued"),
    Entry("applied", "part_pay", "issued.unpaid", "issued.partially_paid", "part"),
    Entry("unchanged", "part_pay", "issued.partially_paid", "issued.partially_paid", "part"),
    Entry("unchanged", "ping", "issued.partially_paid", "issued.partially_paid", "ping"),
    Entry("applied", "pay", "issued.partially_paid", "paid", "paid"),
]


def _dot_lines(text: str, start: str) -> list[str]:
    """The lines of the DOT statement starting ``start`` (an edge or node line)."""
    return [line.strip() for line in text.splitlines() if line.strip().startswith(start)]


def _region(text: str, cluster: str) -> str:
    """The body of subgraph ``cluster`` (a top-level one) in DOT text."""
    body = text.split(f"  subgraph {_dot._q(cluster)} {{\n", 1)[1]
    return body.split("\n  }\n", 1)[0]


def test_an_arrow_into_its_own_compound_starts_where_the_invoice_was() -> None:
    """``part_pay`` is written on ``issued`` and leads into it: drawn from each state it leaves
    (step 3 from ``unpaid``, where the invoice was), never from the cluster's border."""
    chart = chart_of("zebrapay")
    dot = diagrams.to_dot(chart, highlight=ZEBRA_HISTORY)
    (taken,) = _dot_lines(dot, '"issued.unpaid" -> "issued.partially_paid"')
    assert "<b>(3)</b>" in taken
    assert "part_pay" in taken
    (other,) = _dot_lines(dot, '"issued.overdue" -> "issued.partially_paid"')
    assert "(3)" not in other
    assert "part_pay" in other
    assert not [x for x in dot.splitlines() if '-> "issued.partially_paid"' in x and "..e" in x]
    # from partially_paid itself it changes nothing: listed inside, with how often it was used
    (node,) = _dot_lines(dot, '"issued.partially_paid" [')
    assert "↺ part_pay \u00d71" in node
    # an arrow that leads out of the compound still leaves from its border
    (pay,) = _dot_lines(dot, '"issued..exit" -> "paid"')
    assert 'ltail="cluster_issued"' in pay
    assert "<b>(4)</b>" in pay
    check_dot("zebrapay", ZEBRA_HISTORY)
    check_dot("zebrapay")
    hl = _highlight.highlight_of(_model.build(chart), ZEBRA_HISTORY)
    assert hl.stays == {("issued.partially_paid", "part_pay"): 1}
    assert hl.internal == {("*", "ping"): 1}


def test_star_transitions_start_from_a_region_around_the_states_they_cover() -> None:
    dot = diagrams.to_dot(chart_of("zebrapay"))
    region = _region(dot, "cluster_..any")
    assert "any non-final state" in region
    assert "↺ ping" in region
    assert '"draft" [' in region
    assert 'subgraph "cluster_issued"' in region
    assert '"paid" [' not in region
    assert '"void" [' not in region
    (void,) = _dot_lines(dot, '"..any..exit" -> "void"')
    assert 'ltail="cluster_..any"' in void
    # to a state inside the region (awkward's refund): from the region, without ltail
    awkward = diagrams.to_dot(chart_of("awkward"))
    drawn = [x for x in _dot_lines(awkward, '"..any..entry" -> "closed.note"') if "invis" not in x]
    (refund,) = drawn
    assert "refund" in refund
    assert "ltail" not in refund
    region = _region(awkward, "cluster_..any")
    assert 'subgraph "cluster_closed"' in region  # has a non-final leaf, and a final one
    assert 'subgraph "cluster_archive"' not in region  # all final


def test_escaping_keeps_text_and_breaks_syntax() -> None:
    assert _text('a "b"; c: #d <e> 100%') == "a #quot;b#quot;#59; c#58; #35;d #lt;e#gt; 100#37;"
    assert "direction" not in _text("set direction LR now").replace("directio#110;", "")
    assert _dot._q('a "b" \\c') == '"a \\"b\\" \\\\c"'
    title = diagrams.to_mermaid(chart_of("awkward")).splitlines()[1]
    assert title == 'title: "Awkward \\"names\\"; #1: \u2039a\u203a and b %% direction LR"'


# ------------------------------------------------------------------------- parallel states

# The fixture chart's history: born, finalized into both regions' initial states, one region
# moves, an internal transition, the other region moves, an event rejected in a configuration.
_P, _Y = "fin.pay.pending+fin.od.no", "fin.pay.pending+fin.od.yes"
_DY = "fin.pay.done+fin.od.yes"
PAR_HISTORY = [
    Entry("applied", None, None, "draft", "created"),
    Entry("applied", "finalize", "draft", _P, "finalized"),
    Entry("applied", "overdue", _P, _Y, "overdue"),
    Entry("unchanged", "note", _Y, _Y, "noted"),
    Entry("applied", "pay", _Y, _DY, "paid"),
    Entry("rejected", "pay", _DY, None, "paid"),
]
# One trigger (tick) moves two regions at once: both arrows are numbered with that step.
REGIONS_HISTORY = [
    Entry("applied", None, None, "draft", "created"),
    Entry("applied", "finalize", "draft", "fin.pay.pending+fin.od.no+fin.dispute.none", "f"),
    Entry(
        "applied",
        "tick",
        "fin.pay.pending+fin.od.no+fin.dispute.none",
        "fin.pay.partial+fin.od.yes+fin.dispute.none",
        "t",
    ),
    Entry("applied", "void", "fin.pay.partial+fin.od.yes+fin.dispute.none", "void", "v"),
]


@cache
def legal_paths(
    chart: Chart, length: int = 4, most: int = 400
) -> list[tuple[str, list[tuple[str, Any]]]]:
    """Legal walks of ``length`` steps from each initial state (shorter where the chart ends),
    one payload per guarded transition as ``legal_steps`` picks it: all of them, or ``most``
    spread evenly over them; then ``covering_paths``, which take every transition. Each as
    ``(start, [(trigger, payload)])``."""
    out: list[tuple[str, list[tuple[str, Any]]]] = []
    steps = cache(lambda state: legal_steps(chart, state))

    def walk(start: str, state: str, pairs: list[tuple[str, Any]]) -> None:
        ahead = steps(state) if len(pairs) < length else []
        if not ahead:
            out.append((start, pairs))
        for step in ahead:
            walk(start, step.dest, [*pairs, step.pair])

    for start in chart.initial_states:
        walk(start, start, [])
    if len(out) > most:
        out = [out[i * len(out) // most] for i in range(most)]
    return out + [(p.start, p.pairs) for p in covering_paths(chart)]


@pytest.mark.parametrize("name", PARALLEL)
def test_peers_end_in_the_engines_configuration(name: str, xstate: dict[str, Any]) -> None:
    """Every legal path (and a set covering every transition): python-statemachine running
    our SCXML and XState running our config take every step, and end each in the
    configuration ``chart.check`` says, every active leaf of it."""
    chart = chart_of(name)
    res = xstate[f"{name}+paths"]
    assert res["ok"], res["error"]
    paths = legal_paths(chart)
    assert any(len(chart.check(pairs, start=start).leaves) > 1 for start, pairs in paths)
    for (start, pairs), got in zip(paths, res["runs"], strict=True):
        want = chart.check(pairs, start=start)
        run = scxml_run(chart, start, pairs)
        assert all(legal for legal, _ in run), (start, pairs)
        assert (run[-1][1] if run else start) == want, (start, pairs)
        assert all(step["legal"] for step in got), (start, pairs)
        end = got[-1]["state"] if got else start
        assert xstate_configuration(chart, end) == want, (start, pairs)


@pytest.mark.parametrize("name", ["par", "regions"])
def test_the_parallel_fixtures_in_every_format(
    name: str, mermaid: dict[str, Any], xstate: dict[str, Any]
) -> None:
    """The two fixture charts through every check a bundled chart gets."""
    check_mermaid(mermaid[name], name)
    check_xstate(xstate[name], name)
    check_scxml_document(name)
    check_scxml_behaviour(name)
    check_dot(name)


def test_what_a_transition_into_a_parallel_state_enters() -> None:
    """From outside, every region starts (at the state aimed at, or its initial one); from
    inside a region, only what is aimed at changes."""
    graph = _model.build(chart_of("regions"))
    everything = "fin.pay.pending+fin.od.no+fin.dispute.none"
    assert graph.enter("fin") == graph.entered_from(None, "fin") == everything
    assert graph.enter("fin.pay") == "fin.pay.pending"  # its own initial, not its first state
    assert graph.enter("fin.dispute.open") == "fin.dispute.open.a"
    into = "fin.pay.pending+fin.od.no+fin.dispute.open.a"
    assert graph.entered_from("draft", "fin.dispute.open") == into
    assert graph.entered_from("fin.dispute.none", "fin.dispute.open") == "fin.dispute.open.a"
    assert graph.entered_from("fin.pay.done", "fin") == everything  # leaves it, enters again
    assert graph.place(into) == "fin"
    assert graph.place("fin.od.no") == "fin.od.no"
    assert graph.targets("fin.pay.done", "fin.pay") == (("fin.pay.pending",), False)
    assert graph.targets("fin.dispute", "fin.dispute.open.b") == (("fin.dispute.open.b",), True)
    assert graph.targets("draft", "fin") == (("fin",), False)


def test_mermaid_draws_regions_as_concurrent_states() -> None:
    text = diagrams.to_mermaid(chart_of("par"))
    block = text.split('    state "fin" as fin {\n', 1)[1].split("\n    }\n", 1)[0]
    assert '        state "pay" as fin_pay {' in block
    assert "\n        --\n" in block  # Mermaid's separator of concurrent regions
    assert block.index("fin_pay {") < block.index("--") < block.index("fin_od {")
    # into the parallel state: a fork bar, then each region's initial state
    assert "    state fin_fork <<fork>>\n" in text
    assert "    draft --> fin_fork : finalize\n" in text
    assert {"    fin_fork --> fin_pay_pending", "    fin_fork --> fin_od_no"} <= set(
        text.splitlines()
    )
    assert "    fin --> void : void\n" in text  # written on it: from its border
    assert "    note right of fin\n        ↺ note\n    end note\n" in text


def test_dot_draws_regions_as_dashed_clusters_each_with_its_start() -> None:
    dot = diagrams.to_dot(chart_of("par"))
    cluster = dot.split('  subgraph "cluster_fin" {\n', 1)[1]
    assert "<i>(parallel)</i>" in cluster.splitlines()[0]
    assert "canonical: paid if pay is done</font><br/>" in cluster.splitlines()[0]
    assert "open otherwise" in cluster.splitlines()[0]
    for region, first in (("fin.pay", "fin.pay.pending"), ("fin.od", "fin.od.no")):
        inner = cluster.split(f"subgraph {_dot._q('cluster_' + region)} {{\n", 1)[1]
        assert 'style="rounded,dashed"' in inner.splitlines()[0]
        assert f'"{region}..start" -> "{first}"' in inner
    (into,) = _dot_lines(dot, '"draft" -> "fin.pay..start"')
    assert 'lhead="cluster_fin"' in into
    (out,) = _dot_lines(dot, '"fin..exit" -> "void"')
    assert 'ltail="cluster_fin"' in out
    assert "paid</font></td>" in dot  # the rules' canonical states are in the legend


def test_scxml_and_xstate_write_parallel_states() -> None:
    chart = chart_of("regions")
    root = ET.fromstring(diagrams.to_scxml(chart))
    fin = root.find(f"{SCXML}parallel")
    assert fin is not None
    assert fin.get("id") == "fin"
    assert fin.get("initial") is None  # it enters every region
    assert [e.get("id") for e in fin if e.tag == SCXML + "state"] == [
        "fin.pay",
        "fin.od",
        "fin.dispute",
    ]
    rules = json.loads(fin.get("{urn:invoice-engine:statechart}canonical-rules") or "")
    assert rules[0] == {"when": {"pay": ["done"]}, "canonical": "paid"}
    by_event = {
        (t.get("event"), parent.get("id")): t
        for parent in root.iter()
        for t in parent
        if t.tag == SCXML + "transition"
    }
    # back to its own region: aimed at the state the region starts in, so SCXML keeps the
    # domain inside it and the other regions where they are, as the chart's machine does
    assert by_event[("restart", "fin.pay.done")].get("target") == "fin.pay.pending"
    assert by_event[("rewind", "fin.dispute")].get("type") == "internal"
    assert by_event[("reset", "fin")].get("target") == "fin"
    config = diagrams.to_xstate(chart)
    state = config["states"]["fin"]
    assert state["type"] == "parallel"
    assert "initial" not in state
    assert list(state["states"]) == ["pay", "od", "dispute"]
    assert state["states"]["pay"]["initial"] == "pending"
    assert state["meta"]["canonicalRules"][-1] == {"when": {}, "canonical": "open"}
    restart = state["states"]["pay"]["states"]["done"]["on"]["restart"]
    assert restart == [{"target": "#fin_pay_pending"}]


def test_highlight_marks_every_active_leaf_of_a_configuration() -> None:
    chart = chart_of("par")
    graph = _model.build(chart)
    hl = _highlight.highlight_of(graph, PAR_HISTORY)
    assert hl.current == _DY
    assert hl.current_leaves == ("fin.pay.done", "fin.od.yes")
    assert hl.states == {"draft", "fin.pay.pending", "fin.pay.done", "fin.od.no", "fin.od.yes"}
    assert hl.steps == {
        ("draft", "fin"): [2],
        ("fin.od.no", "fin.od.yes"): [3],
        ("fin.pay.pending", "fin.pay.done"): [4],
    }
    assert hl.internal == {("fin", "note"): 1}
    assert hl.extra == {}
    notes = _highlight.rejected_by_place(graph, hl)
    assert notes == {"fin": ["paid (pay), in pay.done + od.yes"]}
    text = diagrams.to_mermaid(chart, highlight=PAR_HISTORY)
    assert "    class fin_pay_done,fin_od_yes current\n" in text
    assert "            fin_od_yes : ● current state\n" in text
    assert "    draft --> fin_fork : finalize<br/>(2)\n" in text
    assert "            fin_pay_pending --> fin_pay_done : pay<br/>(4)\n" in text
    dot = diagrams.to_dot(chart, highlight=PAR_HISTORY)
    for leaf in ("fin.pay.done", "fin.od.yes"):
        (node,) = _dot_lines(dot, f'"{leaf}" [')
        assert "● current state" in node
    (note,) = _dot_lines(dot, '"fin.pay.pending" -> "fin..rejected"')
    assert 'ltail="cluster_fin"' in note
    check_dot("par", PAR_HISTORY)


def test_a_trigger_moving_two_regions_numbers_both_arrows() -> None:
    chart = chart_of("regions")
    graph = _model.build(chart)
    hl = _highlight.highlight_of(graph, REGIONS_HISTORY)
    assert hl.steps[("fin.pay.pending", "fin.pay.partial")] == [3]
    assert hl.steps[("fin.od.no", "fin.od.yes")] == [3]
    assert hl.steps[("fin", "void")] == [4]
    assert hl.current_leaves == ("void",)
    adopted = [Entry("applied", None, None, "fin.pay.done+fin.od.no+fin.dispute.none", "x", True)]
    born = _highlight.births(graph, _highlight.highlight_of(graph, adopted))
    assert born == ({}, {"fin.pay.done+fin.od.no+fin.dispute.none": "adopted (1)"})
    text = diagrams.to_mermaid(chart, highlight=adopted)
    assert "    [*] --> fin_pay_done : adopted (1)\n" in text
    assert "    [*] --> fin_dispute_none : adopted (1)\n" in text
    check_dot("regions", REGIONS_HISTORY)
    check_dot("regions", adopted)


def test_mermaid_reads_highlighted_configurations(mermaid: dict[str, Any]) -> None:
    res = mermaid["par+history"]
    assert res["ok"], res["error"]
    nodes = {n["id"]: n for n in res["nodes"]}
    for leaf in ("fin_pay_done", "fin_od_yes"):
        assert "current" in nodes[leaf]["classes"]
        assert "● current state" in nodes[leaf]["description"]
    assert "visited" in nodes["fin_pay_pending"]["classes"]
    notes = [n["label"] for n in res["nodes"] if n["shape"] == "note"]
    assert any("✗ rejected: paid (pay), in pay.done + od.yes" in n for n in notes)
    res = mermaid["regions+history"]
    assert res["ok"], res["error"]
    labels = {(e["start"], e["end"]): re.split(r"<br\s*/?>", e["label"]) for e in res["edges"]}
    assert labels[("fin_pay_pending", "fin_pay_partial")][-1] == "(3)"
    assert labels[("fin_od_no", "fin_od_yes")][-1] == "(3)"
    assert labels[("fin", "void")] == ["void", "(4)"]


CONFLICT = r"""
provider: conflict
initial: [fin]
states:
  - name: fin
    parallel: true
    canonical: open
    states:
      - {name: pay, states: [{name: pending}, {name: done}]}
      - {name: od, states: [{name: "no"}, {name: "yes"}]}
  - {name: void, canonical: void, final: true}
transitions:
  - {trigger: d, source: fin.pay.pending, dest: fin.pay.done, guard: "$.x == 1"}
  - {trigger: d, source: fin.od.no, dest: void}
  - {trigger: pay, source: fin.pay.pending, dest: fin.pay.done}
  - {trigger: late, source: fin.od.no, dest: fin.od.yes}
  - {trigger: void, source: fin, dest: void}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.inv}
events: {created: {create: true}}
"""


def test_conflicting_transitions_in_two_regions_are_refused() -> None:
    """transitions fires the enabled transitions of every region one after the other, so the
    later one, leaving the parallel state, wins; SCXML and XState keep the first in document
    order. Where the peers would disagree with the engine, the loader refuses the chart."""
    with pytest.raises(engine.ChartError, match="which one wins would be an accident of order"):
        parse_chart(load_yaml(CONFLICT), "conflict.yaml")


# --------------------------------------------------------------------------------------- CLI


def test_cli_prints_mermaid_by_default_and_guesses_from_the_suffix(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["diagram", "stripe"])
    assert res.exit_code == 0
    assert res.stdout == diagrams.to_mermaid(chart_of("stripe"))
    for suffix, fmt in ((".scxml", "scxml"), (".json", "xstate"), (".gv", "dot")):
        out = tmp_path / f"s{suffix}"
        res = runner.invoke(main, ["diagram", "stripe", "-o", str(out)])
        assert res.exit_code == 0
        assert f"({fmt})" in res.stderr
        assert out.read_text(encoding="utf-8") == diagrams.export(chart_of("stripe"), fmt)
    res = runner.invoke(main, ["diagram", "moxie", "-f", "xstate", "--direction", "TB"])
    assert json.loads(res.stdout)["id"] == "moxie"
    res = runner.invoke(main, ["diagram", "stripe", "-f", "dot", "--direction", "TB"])
    assert "rankdir=TB" in res.stdout


def test_every_direction_draws_in_every_picture_format() -> None:
    chart = chart_of("chargeover")
    assert diagrams.DIRECTIONS == ("LR", "TB", "RL", "BT")
    for way in diagrams.DIRECTIONS:
        assert f"rankdir={way}" in diagrams.to_dot(chart, direction=way)
        assert f"direction {way}" in diagrams.to_mermaid(chart, direction=way)


def test_the_cli_offers_every_direction_the_api_draws() -> None:
    res = CliRunner().invoke(main, ["diagram", "stripe", "-f", "dot", "--direction", "BT"])
    assert res.exit_code == 0, res.output
    assert "rankdir=BT" in res.stdout


def test_cli_images(tmp_path: Path) -> None:
    need_dot()
    runner = CliRunner()
    res = runner.invoke(main, ["diagram", "chargeover", "-f", "png"])
    assert res.exit_code == 0
    assert res.stdout_bytes.startswith(b"\x89PNG")
    res = runner.invoke(main, ["diagram", "chargeover", "-o", str(tmp_path / "c.svg")])
    assert res.exit_code == 0
    assert b"<svg" in (tmp_path / "c.svg").read_bytes()
    res = runner.invoke(main, ["diagram", "stripe", "-f", "svg", "-o", str(tmp_path / "c.png")])
    assert res.exit_code == 2  # SVG written into a .png file would only confuse
    assert "-f says svg" in res.stderr
    assert not (tmp_path / "c.png").exists()
    res = runner.invoke(main, ["diagram", "stripe", "-f", "svg", "-o", str(tmp_path / "c")])
    assert res.exit_code == 0  # a name without a suffix: -f decides
    assert (tmp_path / "c").read_bytes().lstrip().startswith(b"<?xml")


def test_render_refuses_a_format_its_file_name_contradicts(tmp_path: Path) -> None:
    chart = load_chart("stripe")
    with pytest.raises(DiagramError, match="is a png file name"):
        diagrams.render(chart, tmp_path / "x.png", "svg")
    with pytest.raises(DiagramError, match="can't tell the diagram format"):
        diagrams.render(chart, tmp_path / "noext")
    assert diagrams.render(chart, tmp_path / "noext", "mermaid").read_text().startswith("---")


def test_cli_errors() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["diagram", "stripe", "-o", "x.txt"])
    assert res.exit_code == 2
    assert "can't tell the diagram format of 'x.txt'" in res.stderr
    res = runner.invoke(main, ["diagram", "stripe", "-f", "scxml", "--invoice", "in_1"])
    assert res.exit_code == 2
    assert "--invoice highlights a picture" in res.stderr
    res = runner.invoke(main, ["diagram", "strpe"])
    assert res.exit_code == 1
    assert "Unknown provider 'strpe'" in res.stderr
    res = runner.invoke(main, ["diagram", "stripe", "--invoice", "in_1", "--db", "/nope.db"])
    assert res.exit_code == 1
    assert "no database at '/nope.db'" in res.stderr


def test_cli_highlights_an_invoice_from_the_database(tmp_path: Path) -> None:
    from engine import Engine

    db = str(tmp_path / "inv.db")

    def event(n: int, kind: str, status: str) -> dict[str, Any]:
        obj = {"id": "in_1", "status": status}
        return {
            "id": f"evt_{n}",
            "type": kind,
            "created": 1_700_000_000 + n,
            "data": {"object": obj},
        }

    with Engine(db) as eng:
        eng.apply("stripe", event(1, "invoice.created", "draft"))
        eng.apply("stripe", event(2, "invoice.finalized", "open"))
        eng.apply("stripe", event(3, "invoice.paid", "paid"))
        eng.apply("stripe", event(4, "invoice.voided", "void"))
        history = eng.history("stripe", "in_1")
    runner = CliRunner()
    res = runner.invoke(main, ["diagram", "stripe", "--invoice", "in_1", "--db", db])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == diagrams.to_mermaid(chart_of("stripe"), highlight=history)
    assert "class paid current" in res.stdout
    assert "finalize<br/>(2)" in res.stdout
    assert "✗ rejected: invoice.voided (void)" in res.stdout
    res = runner.invoke(main, ["diagram", "stripe", "--invoice", "in_404", "--db", db])
    assert res.exit_code == 1
    assert "no deliveries about 'stripe' invoice 'in_404'" in res.stderr


def test_the_example_exports_every_chart_in_every_format(tmp_path: Path) -> None:
    need_dot()
    script = HERE.parent / "examples" / "export_diagrams.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    suffixes = (".mmd", ".dot", ".svg", ".png", ".scxml", ".xstate.json")
    want = {f"{name}{s}" for name in engine.available_charts() for s in suffixes}
    assert {p.name for p in tmp_path.iterdir()} == want


def test_the_readme_shows_the_real_stripe_and_lago_diagrams() -> None:
    readme = (HERE.parent / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```mermaid\n(.*?)^```", readme, flags=re.DOTALL | re.MULTILINE)
    assert blocks == [diagrams.to_mermaid(chart_of(name)) for name in ("stripe", "lago")]


def test_cli_draws_a_users_own_chart_from_chart_dir(tmp_path: Path) -> None:
    (tmp_path / "awkward.yaml").write_text(AWKWARD, encoding="utf-8")
    res = CliRunner().invoke(main, ["diagram", "awkward", "--chart-dir", str(tmp_path)])
    assert res.exit_code == 0, res.stderr
    assert res.stdout == diagrams.to_mermaid(chart_of("awkward"))
    res = CliRunner().invoke(main, ["diagram", "--help"])
    assert "Example: invoice-engine diagram" in res.stdout
