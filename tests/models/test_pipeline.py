"""Pipelines and councils: dependency inference, execution levels, cycles (property-tested)."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from heddle.models.council import CouncilIn, expand_council
from heddle.models.errors import CycleError, WorkloadError
from heddle.models.ids import Tier
from heddle.models.pipeline import (
    StageIn,
    build_pipeline,
    execution_levels,
    find_cycle,
    infer_dependencies,
)

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def stage(name, reads=(), depends_on=(), goal=True):
    mapping = {f"in_{src}": f"{src}.output.value" for src in reads}
    if goal:
        mapping["q"] = "goal.context.question"
    return StageIn(name=name, worker_type="w", model="llama-3.1-8b", input_mapping=mapping, depends_on=list(depends_on))


def test_seed_shaped_rag_pipeline():
    p = build_pipeline("rag", [
        stage("store", reads=["embed"]),  # order in the file does not matter
        stage("ingest"),
        stage("chunk", reads=["ingest"]),
        stage("embed", reads=["chunk"]),
    ])
    assert p.levels == (("ingest",), ("chunk",), ("embed",), ("store",))
    tasks = p.to_tasks(arrival_s=3.0, deadline_s=50.0)
    assert [t.stage for t in tasks] == ["ingest", "chunk", "embed", "store"]
    assert tasks[-1].depends_on == ("embed",) and tasks[-1].id == "rag/store" and tasks[-1].pipeline_id == "rag"


def test_independent_stages_share_a_level_and_explicit_depends_on_adds_edges():
    p = build_pipeline("p", [stage("a"), stage("b"), stage("c", reads=["a"], depends_on=["b"])])
    assert p.levels == (("a", "b"), ("c",))
    assert p.dependencies["c"] == {"a", "b"}


def test_bad_references_are_named():
    with pytest.raises(WorkloadError, match=r"stage 'b': input_mapping\.in_x = 'x\.output\.value'"):
        infer_dependencies([stage("a"), stage("b", reads=["x"])])
    with pytest.raises(WorkloadError, match="unknown stage 'zz'"):
        infer_dependencies([stage("a", depends_on=["zz"])])
    with pytest.raises(WorkloadError, match="repeated: a"):
        infer_dependencies([stage("a"), stage("a")])
    with pytest.raises(ValueError, match="reserved"):
        stage("goal")


def test_self_reference_is_a_cycle():
    with pytest.raises(CycleError, match="a -> a") as info:
        build_pipeline("p", [stage("a", reads=["a"])])
    assert info.value.cycle == ["a", "a"]


@st.composite
def dags(draw):
    """A random DAG over n stages: edges only from later to earlier indices, then shuffled."""
    n = draw(st.integers(1, 12))
    names = [f"s{i}" for i in range(n)]
    deps = {names[i]: set(draw(st.sets(st.sampled_from(names[:i]), max_size=i)) if i else set()) for i in range(n)}
    split = {k: (draw(st.sets(st.sampled_from(sorted(v)), max_size=len(v))) if v else set()) for k, v in deps.items()}
    order = draw(st.permutations(names))
    return deps, split, order


@PROPS
@given(dags())
def test_inferred_dependencies_equal_the_constructed_ones(data):
    deps, explicit, order = data
    # some edges are expressed through input_mapping, the rest through depends_on
    stages = [stage(n, reads=sorted(deps[n] - explicit[n]), depends_on=sorted(explicit[n])) for n in order]
    assert infer_dependencies(stages) == {k: frozenset(v) for k, v in deps.items()}
    levels = build_pipeline("p", stages).levels
    level_of = {n: i for i, lv in enumerate(levels) for n in lv}
    assert sorted(level_of) == sorted(deps)  # every stage exactly once
    for n, ds in deps.items():
        assert all(level_of[d] < level_of[n] for d in ds)  # levels respect dependencies
        # and a stage is as early as possible: right after its deepest dependency
        assert level_of[n] == (max((level_of[d] for d in ds), default=-1) + 1)


@PROPS
@given(dags(), st.data())
def test_any_back_edge_makes_a_named_cycle(dag, data):
    deps, _, order = dag
    # add an edge from some stage to one of its descendants -> cycle through both
    reach = {}
    for n in sorted(deps, key=lambda s: int(s[1:])):
        reach[n] = set(deps[n]).union(*(reach[d] for d in deps[n])) if deps[n] else set()
    candidates = [(n, a) for n in deps for a in reach[n]] + [(n, n) for n in deps]
    later, earlier = data.draw(st.sampled_from(candidates))  # later needs earlier (transitively)
    deps = {k: set(v) for k, v in deps.items()}
    deps[earlier].add(later)  # ...and now earlier needs later too
    stages = [stage(n, reads=sorted(deps[n])) for n in order]
    with pytest.raises(CycleError) as info:
        build_pipeline("p", stages)
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and len(cycle) >= 2
    for a, b in itertools.pairwise(cycle):
        assert b in deps[a]  # every step of the reported cycle is a real dependency
    assert " -> ".join(cycle) in str(info.value)


def test_find_cycle_none_on_a_dag_and_levels_on_plain_dicts():
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert execution_levels({"a": {"b"}, "b": set(), "c": set()}) == [["b", "c"], ["a"]]


def test_council_expands_rounds_that_read_the_previous_round():
    c = CouncilIn(
        id="c", rounds=3, prompt_tokens=500, output_tokens=100,
        participants=[{"name": "a", "model": "gpt-oss-20b"}, {"name": "b", "tier": "standard"}],
        synthesizer={"name": "chair", "tier": "frontier"},
    )
    p = expand_council(c)
    assert p.levels == (("r1_a", "r1_b"), ("r2_a", "r2_b"), ("r3_a", "r3_b"), ("synthesis",))
    tasks = {t.stage: t for t in p.to_tasks()}
    assert tasks["r2_b"].depends_on == ("r1_a", "r1_b") and tasks["r1_a"].depends_on == ()
    assert tasks["r2_a"].prompt_tokens == 500 + 2 * 100  # reads both first-round answers
    assert tasks["synthesis"].tier == Tier.FRONTIER and tasks["synthesis"].pipeline_id == "c"
    assert len(tasks) == 2 * 3 + 1


def test_council_rejects_duplicate_members():
    with pytest.raises(ValueError, match="unique"):
        CouncilIn(id="c", participants=[{"name": "a", "tier": "standard"}, {"name": "a", "tier": "frontier"}])
