"""One reading of the state tree: the compiled chart's, which every other reader must share.

The rules of a chart's state tree (leaf names ``parent.child``, entering a compound state's
initial child, canonical inheritance, what ``source: '*'`` covers) live in
:mod:`engine.chart.tree`. These tests check that tree against an independent reading
(``_dict_chart``), that the diagrams, lint and the CLI agree with it because they *read* it
(a chart whose spec no longer matches its tree draws, lints and shows exactly as before), and
that none of them walks ``StateSpec.states`` on its own.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from _dict_chart import DictChart
from click.testing import CliRunner

import engine
from engine import diagrams
from engine.chart import Chart, bundled_chart_dir, lint
from engine.chart.load import load_yaml, parse_chart, read_chart_file
from engine.chart.spec import ChartSpec, StateSpec
from engine.cli import main
from engine.diagrams import _model
from engine.runtime.decide import fold_rank
from engine.runtime.delivery import Event
from engine.testing import covering_paths, shortest_paths

ROOT = Path(__file__).resolve().parent.parent

# Three levels deep; an initial child that is not the first; a compound state without a
# canonical state whose children each have their own; a canonical state overridden halfway
# down; a child's transition overriding its parent's; '*' with final leaves inside a compound
# state; a transition into a compound state and one from a compound state.
NESTED = """\
provider: nested
initial: [draft, open]
states:
  - {name: draft, canonical: draft}
  - name: open
    canonical: open
    initial: active
    states:
      - name: pending
        states:
          - {name: new}
          - {name: retrying, canonical: uncollectible}
      - name: active
        initial: due
        states:
          - {name: overdue}
          - {name: due, description: waiting for the money}
          - name: disputed
            states:
              - {name: review}
              - {name: escalated, canonical: uncollectible}
  - name: closed
    states:
      - {name: paid, canonical: paid, final: true}
      - {name: void, canonical: void, final: true}
      - {name: written_off, canonical: uncollectible}
transitions:
  - {trigger: finalize, source: draft, dest: open}
  - {trigger: retry, source: open.pending, dest: open.pending.retrying}
  - {trigger: dispute, source: [open.active.due, open.active.overdue], dest: open.active.disputed}
  - {trigger: escalate, source: open.active.disputed.review, dest: open.active.disputed.escalated}
  - {trigger: pay, source: open, dest: closed.paid}
  - {trigger: pay, source: open.active.disputed, dest: open.active.disputed.review}
  - {trigger: lapse, source: open.active.due, dest: open.active.overdue}
  - {trigger: write_off, source: open.active, dest: closed.written_off}
  - {trigger: reopen, source: closed.written_off, dest: open.pending}
  - {trigger: void, source: '*', dest: closed.void}
  - {trigger: note, source: '*', internal: true}
delivery:
  event_type: $.type
  event_id: $.id
  invoice_id: $.invoice
  status: $.status
  statuses: {due: open.active.due}
events:
  created: {create: true}
  paid: pay
  updated: {follow_status: true}
  voided: void
  noted: note
"""

# test_lint's chart whose child overrides its parent, and test_diagrams' compound state
# whose initial child is final: small, and each the one place a rule is exercised.
SMALL_NESTED = """\
provider: small
initial: draft
states:
  - {name: draft, canonical: draft}
  - name: open
    canonical: open
    states: [{name: due}, {name: disputed}]
  - name: closed
    initial: start
    states:
      - {name: note, canonical: refunded}
      - {name: start, canonical: paid, final: true}
transitions:
  - {trigger: finalize, source: draft, dest: open}
  - {trigger: pay, source: open, dest: closed}
  - {trigger: pay, source: open.disputed, dest: closed.note}
  - {trigger: dispute, source: open.due, dest: open.disputed}
  - {trigger: settle, source: closed.note, dest: closed.start}
  - {trigger: ping, source: '*', internal: true}
delivery: {event_type: $.type, event_id: $.id, invoice_id: $.invoice}
events: {created: {create: true}}
"""

EXTRA = {"nested": NESTED, "small": SMALL_NESTED}
ALL = [p.stem for p in bundled_chart_dir().glob("*.yaml")] + list(EXTRA)


@pytest.fixture(params=sorted(ALL))
def chart_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A bundled chart's file, or one of the nested charts above written to a file."""
    name: str = request.param
    if name in EXTRA:
        path = tmp_path / f"{name}.yaml"
        path.write_text(EXTRA[name], encoding="utf-8")
        return path
    return bundled_chart_dir() / f"{name}.yaml"


def _fresh(path: Path) -> Chart:
    """A chart of its own (not load_chart's cached one, which other tests share)."""
    return Chart(read_chart_file(path), path)


# ----------------------------------------------------------------------- the tree itself


def test_the_tree_reads_the_chart_as_the_independent_reading_does(chart_path: Path) -> None:
    tree, oracle = _fresh(chart_path).tree, DictChart(chart_path)
    assert list(tree.leaves) == oracle.leaves
    assert list(tree.names) == list(oracle.nodes)
    for name in tree.names:
        assert tree.parent(name) == oracle.parent[name]
        assert tree.enter(name) == oracle.enter(name)
        assert list(tree.leaves_under(name)) == [
            leaf for leaf in oracle.leaves if leaf == name or leaf.startswith(name + ".")
        ]
    assert {
        leaf: tree.canonical(leaf) for leaf in tree.leaves if tree.canonical(leaf) is not None
    } == oracle.canonical
    non_final = [leaf for leaf in oracle.leaves if leaf not in oracle.final]
    assert list(tree.non_final_leaves) == non_final
    assert tree.expand_sources(["*"]) == tuple(non_final)


def test_the_nested_chart_by_hand() -> None:
    chart = Chart(parse_chart(load_yaml(NESTED)))
    tree = chart.tree
    assert chart.initial_states == ["draft", "open.active.due"]
    assert tree.enter("open") == "open.active.due"
    assert tree.enter("closed") == "closed.paid"
    assert tree.canonical("open.pending.new") == "open"
    assert tree.canonical("open.active.disputed.escalated") == "uncollectible"
    assert tree.canonical("closed") is None  # a compound state need not have one
    assert tree.compound == (
        "open",
        "open.pending",
        "open.active",
        "open.active.disputed",
        "closed",
    )
    assert tree.node("open.active.disputed.review").depth == 3
    assert tree.node("open.active").location == "states[1].states[1]"
    assert tree.description("open.active.due") == "waiting for the money"
    assert tree.expand_sources(["draft", "*", "draft"])[0] == "draft"  # duplicates dropped
    assert "closed.paid" not in tree.expand_sources(["*"])
    escalated = "open.active.disputed.escalated"
    assert chart.next_state(escalated, "pay") == "open.active.disputed.review"  # child's own
    assert chart.next_state("open.active.due", "pay") == "closed.paid"


def test_a_state_tree_is_immutable() -> None:
    tree = _fresh(bundled_chart_dir() / "chargeover.yaml").tree
    with pytest.raises(TypeError):
        tree.nodes["x"] = tree.nodes["open"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        tree.node("open").parent = None  # type: ignore[misc]
    with pytest.raises(AttributeError):
        tree.leaves = ()  # type: ignore[misc]


def test_a_spec_built_in_code_gets_chart_errors_not_assertions() -> None:
    data: dict[str, Any] = load_yaml(SMALL_NESTED)
    data["states"][0] = {"name": "draft"}  # no canonical state
    spec = ChartSpec.model_validate(data)  # skips the loader's meaning checks
    with pytest.raises(engine.ChartError, match=r"states\[0\].*no canonical"):
        Chart(spec)
    with pytest.raises(engine.ChartError, match=r"states\[0\].*no canonical.*missing-canonical"):
        Chart(spec, require_canonical=False)  # still a lint error, unless not enforced
    lenient = Chart(spec, require_canonical=False, enforce_lint=False)
    assert [f.rule for f in lint(spec)] == ["missing-canonical"]
    with pytest.raises(engine.ChartError, match="no canonical"):
        lenient.canonical("draft")
    with pytest.raises(engine.UnknownState):
        lenient.canonical("nowhere")
    data["states"][0] = {"name": "open", "canonical": "open"}  # two states called open
    with pytest.raises(engine.ChartError, match=r"states\[1\]\.name.*defined twice.*states\[0\]"):
        Chart(ChartSpec.model_validate(data))


# ------------------------------------------------------------- readers agree with the tree


def test_the_diagram_model_is_the_charts_tree(chart_path: Path) -> None:
    chart = _fresh(chart_path)
    tree, graph = chart.tree, _model.build(chart)
    assert graph.tree is tree
    assert list(graph.nodes) == list(tree.names)
    assert graph.leaves() == list(tree.leaves)
    for name, node in graph.nodes.items():
        # the diagram draws what entering ``name`` activates inside it (tree.enter adds the
        # other regions' defaults, which an arrow into ``name`` doesn't point at)
        inside = [leaf for leaf in tree.enter(name).leaves if tree.contains(name, leaf)]
        assert list(graph.enter(name).leaves) == inside
        assert graph.leaves(name) == list(tree.leaves_under(name))
        assert node.children == tree.children(name)
        assert node.parent == tree.parent(name)
        if not node.compound:
            assert node.canonical == tree.canonical(name)  # in a rule table's state: None
    for t, spec in zip(graph.transitions, chart.spec.transitions, strict=True):
        assert t.sources == tree.expand_sources(spec.source)


def test_lint_reads_the_same_tree_for_a_chart_and_for_its_spec(chart_path: Path) -> None:
    chart = _fresh(chart_path)
    assert lint(chart) == lint(chart.spec)
    data = load_yaml(chart_path.read_text(encoding="utf-8"))
    for state in data["states"]:  # strip every canonical: each leaf is then missing one
        _strip_canonical(state)
    findings = lint(ChartSpec.model_validate(data))
    missing = [f.target for f in findings if f.rule == "missing-canonical"]
    assert missing == chart.states


def _strip_canonical(state: dict[str, Any]) -> None:
    state.pop("canonical", None)
    for child in state.get("states", []):
        _strip_canonical(child)


def _outputs(chart: Chart) -> dict[str, Any]:
    """Everything the chart's readers make of it: pictures, lint, `show`, test paths."""
    from engine.cli._charts import _describe

    return {
        "mermaid": diagrams.to_mermaid(chart),
        "dot": diagrams.to_dot(chart),
        "scxml": diagrams.to_scxml(chart),
        "xstate": diagrams.to_xstate(chart),
        "ids": diagrams.state_ids(chart, "mermaid"),
        "lint": lint(chart),
        "show": json.dumps(_describe(chart), default=str),
        "shortest": shortest_paths(chart),
        "covering": covering_paths(chart),
    }


def test_readers_use_the_compiled_tree_not_the_spec(chart_path: Path) -> None:
    """Swap the spec's states for a different tree after compiling: a reader that walked
    ``spec.states`` itself would now draw, lint or show something else (or fail)."""
    chart = _fresh(chart_path)
    before = _outputs(chart)
    poison = [StateSpec(name="poisoned", canonical="void", final=True)]
    chart.spec = chart.spec.model_copy(update={"states": poison})
    assert _outputs(chart) == before


def test_show_describes_states_from_the_tree(chart_path: Path) -> None:
    result = CliRunner().invoke(main, ["show", str(chart_path), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)["states"]
    tree = _fresh(chart_path).tree
    assert [s["name"] for s in shown] == list(tree.leaves)
    assert [s["description"] for s in shown] == [tree.description(s) for s in tree.leaves]


# --------------------------------------------------------------- nobody walks StateSpec


CONSUMERS = sorted(
    [
        *(ROOT / "engine" / "diagrams").glob("*.py"),
        *(ROOT / "engine" / "testing").glob("*.py"),
        *(ROOT / "engine" / "cli").glob("*.py"),
        ROOT / "engine" / "chart" / "lint.py",
    ]
)


def _tree_walks(source: str) -> list[str]:
    """Places in ``source`` that read the state tree from the spec instead of ``chart.tree``:
    ``StateSpec`` named at all, ``spec.states`` / ``chart.spec.states`` (the tree's root), or
    a function that calls itself on some ``x.states`` (a recursive walk of the nesting)."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "StateSpec":
            found.append(f"line {node.lineno}: StateSpec")
        if isinstance(node, ast.alias) and node.name == "StateSpec":
            found.append("imports StateSpec")
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "states"
            and (
                (isinstance(node.value, ast.Name) and node.value.id == "spec")
                or (isinstance(node.value, ast.Attribute) and node.value.attr == "spec")
            )
        ):
            found.append(f"line {node.lineno}: spec.states")
        if isinstance(node, ast.FunctionDef):
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == node.name
                    and any(
                        isinstance(a, ast.Attribute) and a.attr == "states"
                        for arg in call.args
                        for a in ast.walk(arg)
                    )
                ):
                    found.append(f"line {call.lineno}: {node.name} recurses over .states")
    return found


def test_the_walk_detector_catches_the_walks_it_replaced() -> None:
    old_cli = """
def _descriptions(states, prefix=""):
    out = {}
    for s in states:
        out[prefix + s.name] = s.description
        out.update(_descriptions(s.states, f"{prefix}{s.name}."))
    return out
"""
    old_diagram_entry = "def build(chart):\n    spec = chart.spec\n    _nodes(spec.states, None)\n"
    old_lint = "def f(chart):\n    return [s.name for s in chart.spec.states]\n"
    assert _tree_walks(old_cli) == ["line 6: _descriptions recurses over .states"]
    assert _tree_walks(old_diagram_entry) == ["line 3: spec.states"]
    assert _tree_walks(old_lint) == ["line 2: spec.states"]
    assert _tree_walks("from engine.chart.spec import StateSpec\n") == ["imports StateSpec"]
    assert _tree_walks("def f(chart, ev):\n    return chart.states, ev.states\n") == []


@pytest.mark.parametrize("path", CONSUMERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reader_walks_the_state_specs_itself(path: Path) -> None:
    assert _tree_walks(path.read_text(encoding="utf-8")) == []


# -------------------------------------------------------------------------- lifecycle rank


def test_lifecycle_rank_keeps_fold_ranks_meaning(chart_path: Path) -> None:
    chart = _fresh(chart_path)
    statuses: list[str | None] = [None, *chart.states]
    for event_type, spec in chart.spec.events.items():
        for status in statuses:
            if spec.create:
                want = 0
            elif spec.trigger is not None:
                want = 1 + min(
                    (chart.depth(d) for d in chart.destinations(spec.trigger)), default=0
                )
            elif status is not None:
                want = 1 + chart.depth(status)
            else:
                want = 1
            assert chart.lifecycle_rank(event_type, status) == want
    assert chart.lifecycle_rank("never.mapped", None) == 0


def test_fold_rank_asks_the_chart(monkeypatch: pytest.MonkeyPatch) -> None:
    chart = _fresh(bundled_chart_dir() / "stripe.yaml")
    event = Event(
        provider="stripe",
        event_id="evt_1",
        invoice_id="in_1",
        event_type="invoice.paid",
        status_state="paid",
        payload={},
    )
    assert fold_rank(chart, event) == chart.lifecycle_rank("invoice.paid", "paid") > 0
    asked: list[tuple[str, str | None]] = []

    def rank(event_type: str, status_state: str | None) -> int:
        asked.append((event_type, status_state))
        return 7

    monkeypatch.setattr(chart, "lifecycle_rank", rank)
    assert fold_rank(chart, event) == 7
    assert asked == [("invoice.paid", "paid")]
