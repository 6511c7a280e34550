"""The to-do's table of kinds (node/queries/todo.py): what each kind promises, checked
without a node. The kinds' behaviour on real nodes is tests/integration/test_todo.py."""

from __future__ import annotations

from pathlib import Path

from hierarchy.roles import UNIT_ACTIONS, Action, Role, role_allows
from node.http.web import i18n
from node.queries.todo import KIND_NAMES, KINDS, Scope, Who, kinds_for
from node.storage import schema as t

INTEGRATION = Path(__file__).parent / "integration" / "test_todo.py"


def scope(**kw: object) -> Scope:
    base: dict[str, object] = dict(
        me="140105", now=0, below=("township",), cascade_auto=False, dialect="sqlite"
    )
    return Scope(**{**base, **kw})  # type: ignore[arg-type]


def test_each_kind_is_named_labelled_in_both_languages_and_tested() -> None:
    assert len(set(KIND_NAMES)) == len(KINDS)
    tested = INTEGRATION.read_text(encoding="utf-8")
    for kind in KINDS:
        zh, en = i18n.I18n("zh-CN")(kind.label), i18n.I18n("en")(kind.label)
        assert zh and en and zh != en, kind.name
        assert kind.due in t.items.c and kind.order in t.items.c, kind.name
        assert f'"{kind.name}"' in tested, f"no integration test names the kind {kind.name}"


def test_roles_see_the_kinds_their_permissions_allow() -> None:
    s = scope()
    for role in Role:
        who = Who(name="x", role=role, unit="env")
        names = {k.name for k in kinds_for(who, s)}
        assert names == {k.name for k in KINDS if role_allows(role, k.action)}, role
    assert kinds_for(Who(name="v", role=Role.VIEWER, unit=None), s) == ()
    leader = {k.name for k in kinds_for(Who(name="l", role=Role.LEADER, unit=None), s)}
    assert {"plan", "extension"} <= leader and "feedback" not in leader
    assert "instruction" not in leader and "urged" not in leader
    operator = {k.name for k in kinds_for(Who(name="o", role=Role.OPERATOR, unit="env"), s)}
    assert operator == {"deploy", "feedback", "redo", "due_soon", "instruction", "urged",
                        "monthly"}
    # Every kind an operator sees is one of the unit-bound actions: scoped to their unit.
    assert all(k.action in UNIT_ACTIONS for k in KINDS if k.name in operator)


def test_pass_down_is_listed_only_where_people_pass_items_down() -> None:
    sup = Who(name="s", role=Role.SUPERVISOR, unit=None)
    assert "pass_down" in {k.name for k in kinds_for(sup, scope())}
    assert "pass_down" not in {k.name for k in kinds_for(sup, scope(cascade_auto=True))}
    assert "pass_down" not in {k.name for k in kinds_for(sup, scope(below=()))}
    assert Action.DECOMPOSE in {k.action for k in KINDS}
