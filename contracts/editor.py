"""The buyer's contract editor: the page's builder state, read from a contract or from what the
page posted, and turned into the terms of :class:`contracts.terms.ContractTermsInput`.

The page posts flat fields; nothing here writes. A filter or a modifier's condition is a tree of
*nodes* posted in document order (``node`` = the node's id, ``<id>-parent``, ``<id>-kind`` =
``leaf``/``all``/``any``, and a leaf's ``<id>-field``, ``<id>-op`` and value inputs). The roots are
the filters (``filters``) and each modifier (its id, listed in ``mod``). The schedule grid posts
``cell`` = ``mon:9`` for each open hour. A refusal from the one write path names the rule's JSON
path (``filters.all[1].value``); :class:`Built` maps it back to the row that made it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.utils.datastructures import MultiValueDict

from contracts.models import PERIODS, STATE_CODES, BuyerContract
from contracts.rules import ORDERED_TYPES, PSEUDO_FIELDS, SUPPORTED_TYPES, FieldSpec, PseudoField
from contracts.schedules import DAY_NAMES, ScheduleError, schedule_compile
from core.money import money_label

DAY_LABELS = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun"}
HOURS = tuple(range(24))
MAX_NESTING = 8  # groups within groups, as deep as the page goes
FILTERS = "filters"
# Operators as the builder shows them; "missing" is ``exists: false``.
OP_LABELS = {
    "in": "is one of",
    "not_in": "is not one of",
    "eq": "is",
    "ne": "is not",
    "between": "is between",
    "gte": "is at least",
    "lte": "is at most",
    "gt": "is more than",
    "lt": "is less than",
    "prefix": "starts with",
    "regex": "matches the pattern",
    "exists": "is given",
    "missing": "is not given",
}
LIST_OPS = ("in", "not_in")
_SPLIT = re.compile(r"[\s,;]+")
_NEGATED = {"eq": "ne", "ne": "eq", "in": "not_in", "not_in": "in", "gt": "lte", "lte": "gt", "gte": "lt", "lt": "gte"}


def pseudo_fields() -> tuple[PseudoField, ...]:
    """The ping's own rule fields the builder's picker lists after the offer's fields."""
    return PSEUDO_FIELDS


@dataclass(frozen=True)
class FieldOption:
    """A field the builder offers: its name, how it is shown, and which value boxes it takes."""

    name: str
    label: str
    type: str
    choices: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.type == "boolean":
            return "boolean"
        if self.choices:
            return "choice"
        if self.type in ORDERED_TYPES:
            return "number"
        return "text"

    @property
    def ops(self) -> list[tuple[str, str]]:
        names = {
            "boolean": ("eq", "exists", "missing"),
            "choice": ("in", "not_in", "exists", "missing"),
            "number": ("between", "gte", "lte", "eq", "ne", "gt", "lt", "exists", "missing"),
            "text": ("in", "not_in", "prefix", "regex", "eq", "ne", "exists", "missing"),
        }[self.kind]
        return [(op, OP_LABELS[op]) for op in names]

    @property
    def input_type(self) -> str:
        return {"integer": "number", "decimal": "text", "date": "date"}.get(self.type, "text")

    @property
    def hint(self) -> str:
        if self.type == "zip":
            return "5-digit ZIP codes, separated by commas, spaces or new lines; or upload a text or CSV file"
        return "Values separated by commas or new lines; or upload a text or CSV file"


def field_options(specs: Mapping[str, FieldSpec]) -> list[FieldOption]:
    """The offer's fields a filter can test (not PII, sent in the ping, a type rules support),
    then the pseudo-fields."""
    options = []
    for spec in specs.values():
        if spec.pii or spec.ping == "no" or spec.type not in SUPPORTED_TYPES:
            continue
        choices = STATE_CODES if spec.type == "state" else tuple(spec.choices)
        options.append(FieldOption(spec.name, spec.name.replace("_", " ").capitalize(), spec.type, choices))
    for pseudo in pseudo_fields():
        options.append(FieldOption(pseudo.name, pseudo.label, pseudo.type, tuple(pseudo.choices)))
    return options


@dataclass
class Node:
    """A filter row (``leaf``) or a group of rows (``all``/``any``) as the page shows it."""

    id: str
    kind: str = "all"
    option: FieldOption | None = None
    op: str = ""
    values: list[str] = field(default_factory=list)  # a multi-select's picks
    text: str = ""  # a pasted list
    value: str = ""
    low: str = ""
    high: str = ""
    children: list[Node] = field(default_factory=list)
    error: str = ""

    @property
    def is_leaf(self) -> bool:
        return self.kind == "leaf"


@dataclass
class Modifier:
    """A price modifier row: when ``when``'s rows hold, add or multiply by ``amount``."""

    id: str
    action: str = "add"
    amount: str = ""
    when: Node = field(default_factory=lambda: Node("m"))
    error: str = ""


class Unrepresentable(ValueError):
    """A stored rule the builder cannot show as rows (kept as JSON on the page instead)."""


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, prefix: str = "n") -> str:
        self.n += 1
        return f"{prefix}{self.n}"


# --- from a stored rule to rows ---------------------------------------------------------------


def _option(name: object, options: Mapping[str, FieldOption]) -> FieldOption:
    if not isinstance(name, str) or name not in options:
        raise Unrepresentable(f"field {name!r}")
    return options[name]


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _leaf_node(rule: Mapping[str, Any], options: Mapping[str, FieldOption], ids: _Ids, negate: bool) -> Node:
    option = _option(rule.get("field"), options)
    op, value = rule.get("op"), rule.get("value")
    if op == "exists":
        op = "exists" if bool(value) != negate else "missing"
        return Node(ids(), "leaf", option, op)
    if negate:
        if op not in _NEGATED:
            raise Unrepresentable(f"not {op}")
        op = _NEGATED[op]
    node = Node(ids(), "leaf", option, str(op))
    if op in LIST_OPS:
        items = [_text(v) for v in value] if isinstance(value, list) else []
        if option.choices:
            node.values = items
        else:
            node.text = "\n".join(items) if len(items) > 12 else ", ".join(items)
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise Unrepresentable("between")
        node.low, node.high = _text(value[0]), _text(value[1])
    elif op in OP_LABELS:
        node.value = _text(value)
    else:
        raise Unrepresentable(f"op {op!r}")
    return node


def _rule_node(rule: object, options: Mapping[str, FieldOption], ids: _Ids, negate: bool = False) -> Node:
    if not isinstance(rule, Mapping):
        raise Unrepresentable("not a rule")
    if "not" in rule:
        return _rule_node(rule["not"], options, ids, not negate)
    for kind in ("all", "any"):
        if kind in rule:
            if negate:
                raise Unrepresentable("not of a group")
            return Node(ids(), kind, children=[_rule_node(child, options, ids) for child in rule[kind]])
    return _leaf_node(rule, options, ids, negate)


def root_from_rule(root_id: str, rule: object, options: Mapping[str, FieldOption], ids: _Ids) -> Node:
    """A stored rule as a root group of rows (``{}``: an empty group). Raises Unrepresentable."""
    if not rule:
        return Node(root_id, "all")
    node = _rule_node(rule, options, ids)
    if node.is_leaf:
        return Node(root_id, "all", children=[node])
    node.id = root_id
    return node


def _blocked_split(root: Node) -> tuple[Node, str]:
    """The ``$source`` is-not-one-of row at the filters' top level, shown as the blocked sources."""
    if root.kind != "all":
        return root, ""
    for child in root.children:
        if child.is_leaf and child.option is not None and child.option.name == "$source" and child.op == "not_in":
            root.children.remove(child)
            return root, child.text.replace(", ", "\n")
    return root, ""


# --- the page's state ---------------------------------------------------------------------------


@dataclass
class EditorState:
    """Everything the editor page shows, as text: from a contract, or as the buyer typed it."""

    options: list[FieldOption]
    values: dict[str, str] = field(default_factory=dict)
    filters: Node = field(default_factory=lambda: Node(FILTERS))
    filters_json: str | None = None  # a stored rule the builder cannot show
    modifiers: list[Modifier] = field(default_factory=list)
    modifiers_json: str | None = None
    blocked_sources: str = ""
    schedule_mode: str = "always"
    cells: set[str] = field(default_factory=set)
    schedule_note: str = ""
    headers: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)
    too_deep: bool = False  # a post with groups nested deeper than the page makes

    @property
    def option_map(self) -> dict[str, FieldOption]:
        return {o.name: o for o in self.options}

    def grid(self) -> list[tuple[str, str, list[tuple[int, str, bool]]]]:
        return [
            (day, DAY_LABELS[day], [(hour, f"{day}:{hour}", f"{day}:{hour}" in self.cells) for hour in HOURS])
            for day in DAY_NAMES
        ]


def _money_text(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}"


def state_from_contract(contract: BuyerContract | None, specs: Mapping[str, FieldSpec]) -> EditorState:
    """The editor's state showing ``contract``'s terms (None: a new contract's defaults)."""
    state = EditorState(options=field_options(specs))
    if contract is None:
        state.values = {
            "pricing": "fixed",
            "rtb_timeout_ms": "300",
            "dedup_days": "30",
            "min_score": "0",
            "return_window_hours": "72",
            "delivery_method": "none",
            "delivery_timeout_ms": "5000",
            "accept_kind": "any",
        }
        return state
    delivery = contract.delivery or {}
    accept = delivery.get("accept") or {}
    accept_kind = "json" if "path" in accept else "regex" if "regex" in accept else "any"
    equals = accept.get("equals", "")
    state.values = {
        "name": contract.name,
        "pricing": "rtb" if contract.rtb_url else "fixed",
        "price": _money_text(contract.price),
        "max_price": _money_text(contract.max_price),
        "rtb_url": contract.rtb_url,
        "rtb_timeout_ms": str(contract.rtb_timeout_ms),
        "dedup_days": str(contract.dedup_days),
        "min_score": str(contract.min_score),
        "return_window_hours": str(contract.return_window_hours),
        "delivery_method": contract.delivery_method,
        "delivery_url": str(delivery.get("url", "")),
        "delivery_timeout_ms": str(delivery.get("timeout_ms", 5000)),
        "accept_kind": accept_kind,
        "accept_path": str(accept.get("path", "")),
        "accept_equals": equals if isinstance(equals, str) else json.dumps(equals),
        "accept_regex": str(accept.get("regex", "")),
        "reason_path": str(delivery.get("reason_path") or ""),
    }
    for period in PERIODS:
        cap = contract.cap(period)
        state.values[f"cap_{period}"] = "" if cap is None else str(cap)
        state.values[f"budget_{period}"] = _money_text(contract.budget(period))
    state.headers = "\n".join(f"{k}: {v}" for k, v in (delivery.get("headers") or {}).items())
    ids = _Ids()
    options = state.option_map
    try:
        state.filters, state.blocked_sources = _blocked_split(root_from_rule(FILTERS, contract.filters, options, ids))
    except Unrepresentable:
        state.filters_json = json.dumps(contract.filters, indent=2)
    try:
        for mod in contract.modifiers or []:
            mid = ids("m")
            action = "multiply" if "multiply" in mod else "add"
            when = root_from_rule(mid, mod.get("when"), options, ids)
            state.modifiers.append(Modifier(mid, action, str(mod.get(action, "")), when))
    except Unrepresentable:
        state.modifiers = []
        state.modifiers_json = json.dumps(contract.modifiers, indent=2)
    _schedule_cells(state, contract.schedule)
    return state


def _schedule_cells(state: EditorState, schedule: object) -> None:
    if not schedule:
        return
    try:
        compiled = schedule_compile(schedule)
    except ScheduleError:
        return
    state.schedule_mode = "grid"
    rounded = False
    for day_index, ranges in enumerate(compiled.ranges):
        for start, end in ranges:
            rounded = rounded or start % 60 != 0 or end % 60 != 0
            for hour in range(start // 60, (end + 59) // 60):
                state.cells.add(f"{DAY_NAMES[day_index]}:{hour}")
    if rounded:
        state.schedule_note = (
            "Your schedule has times that are not on the hour; saving here rounds them to whole hours."
        )


def _node_from_post(
    post: MultiValueDict[str, Any], files: Mapping[str, Any], nid: str, options: dict[str, FieldOption]
) -> Node:
    kind = post.get(f"{nid}-kind", "leaf")
    if kind in ("all", "any"):
        return Node(nid, kind)
    option = options.get(post.get(f"{nid}-field", ""))
    node = Node(nid, "leaf", option, post.get(f"{nid}-op", ""))
    node.values = post.getlist(f"{nid}-values")
    node.text = post.get(f"{nid}-list", "")
    upload = files.get(f"{nid}-file")
    if upload is not None:
        content = upload.read(1_000_000).decode("utf-8", errors="replace").strip()
        node.text = "\n".join(part for part in (node.text.strip(), content) if part)
    node.value = post.get(f"{nid}-value", "")
    node.low = post.get(f"{nid}-low", "")
    node.high = post.get(f"{nid}-high", "")
    return node


def state_from_post(
    post: MultiValueDict[str, Any], files: Mapping[str, Any], specs: Mapping[str, FieldSpec]
) -> EditorState:
    """The editor's state as the page posted it, to build the terms from and to show again."""
    state = EditorState(options=field_options(specs))
    scalar = (
        "name", "offer", "pricing", "price", "max_price", "rtb_url", "rtb_timeout_ms", "dedup_days", "min_score",
        "return_window_hours", "delivery_method", "delivery_url", "delivery_timeout_ms", "accept_kind",
        "accept_path", "accept_equals", "accept_regex", "reason_path",
    )  # fmt: skip
    state.values = {name: post.get(name, "").strip() for name in scalar}
    for period in PERIODS:
        state.values[f"cap_{period}"] = post.get(f"cap_{period}", "").strip()
        state.values[f"budget_{period}"] = post.get(f"budget_{period}", "").strip()
    state.headers = post.get("headers", "")
    state.blocked_sources = post.get("blocked_sources", "")
    state.schedule_mode = post.get("schedule_mode", "always")
    state.cells = {cell for cell in post.getlist("cell") if _cell_ok(cell)}
    if "filters_json" in post:
        state.filters_json = post.get("filters_json", "")
    if "modifiers_json" in post:
        state.modifiers_json = post.get("modifiers_json", "")
    options = state.option_map
    groups: dict[str, Node] = {FILTERS: Node(FILTERS, post.get(f"{FILTERS}-kind", "all"))}
    for mid in post.getlist("mod"):
        when = Node(mid, post.get(f"{mid}-kind", "all"))
        groups[mid] = when
        state.modifiers.append(
            Modifier(mid, post.get(f"{mid}-action", "add"), post.get(f"{mid}-amount", "").strip(), when)
        )
    state.filters = groups[FILTERS]
    depth = dict.fromkeys(groups, 0)
    for nid in post.getlist("node"):
        parent_id = post.get(f"{nid}-parent", "")
        parent = groups.get(parent_id)
        if parent is None or nid in groups or nid in depth:
            continue  # a row whose group is gone, or a repeated one
        if depth[parent_id] >= MAX_NESTING:
            state.too_deep = True
            continue
        node = _node_from_post(post, files, nid, options)
        parent.children.append(node)
        depth[nid] = depth[parent_id] + 1
        if not node.is_leaf:
            groups[nid] = node
    return state


def _cell_ok(cell: str) -> bool:
    day, _, hour = cell.partition(":")
    return day in DAY_NAMES and hour.isdigit() and int(hour) < 24


# --- from rows to terms ---------------------------------------------------------------------------


def _list_items(node: Node) -> list[str]:
    if node.option is not None and node.option.choices:
        return list(node.values)
    return [item for item in _SPLIT.split(node.text) if item]


def _leaf_rule(node: Node) -> dict[str, Any]:
    name = node.option.name if node.option else ""
    if node.op in ("exists", "missing"):
        return {"field": name, "op": "exists", "value": node.op == "exists"}
    value: Any
    if node.op in LIST_OPS:
        value = _list_items(node)
    elif node.op == "between":
        value = [node.low.strip(), node.high.strip()]
    elif node.option is not None and node.option.type == "boolean":
        value = {"yes": True, "no": False}.get(node.value, node.value)
    else:
        value = node.value.strip()
    return {"field": name, "op": node.op, "value": value}


def _leaf_problem(node: Node) -> str:
    """The row's missing piece, said before the rule checks run (which would name JSON instead)."""
    if node.option is None:
        return "Pick a field."
    if node.op not in dict(node.option.ops):
        return "Pick a condition."
    if node.op in LIST_OPS and not _list_items(node):
        return "Pick or enter at least one value."
    if node.op == "between" and not (node.low.strip() and node.high.strip()):
        return "Enter both ends of the range."
    if node.op not in ("exists", "missing", "between", *LIST_OPS) and not node.value.strip():
        return "Enter a value."
    return ""


Shape = str | tuple[str, list["Shape"]]


def _build(node: Node) -> tuple[dict[str, Any], Shape] | None:
    if node.is_leaf:
        return _leaf_rule(node), node.id
    built = [b for b in (_build(child) for child in node.children) if b is not None]
    if not built:
        return None
    if len(built) == 1:
        return built[0]
    return {node.kind: [rule for rule, _ in built]}, (node.kind, [shape for _, shape in built])


def _paths(shape: Shape, path: str, out: dict[str, str]) -> None:
    if isinstance(shape, str):
        out[path] = shape
        return
    kind, children = shape
    for index, child in enumerate(children):
        _paths(child, f"{path}.{kind}[{index}]", out)


@dataclass
class Built:
    """The terms built from the page, and where each rule path came from (to show a refusal)."""

    terms: dict[str, Any]
    paths: dict[str, str]  # a rule's JSON path → the row (node or modifier id) it came from
    errors: dict[str, list[str]]  # what the page itself refuses before the service is asked


def _rule_of(root: Node, path: str, paths: dict[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
    for leaf in _leaves(root):
        problem = _leaf_problem(leaf)
        if problem:
            errors.setdefault(leaf.id, []).append(problem)
    built = _build(root)
    if built is None:
        return {}
    rule, shape = built
    _paths(shape, path, paths)
    return rule


def _leaves(node: Node) -> list[Node]:
    if node.is_leaf:
        return [node]
    return [leaf for child in node.children for leaf in _leaves(child)]


def _json(text: str, name: str, errors: dict[str, list[str]]) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError as exc:
        errors.setdefault(name, []).append(f"Not valid JSON: {exc}")
        return None


def _blank_none(value: str) -> str | None:
    return value or None


def _cap(value: str, name: str, errors: dict[str, list[str]]) -> int | None:
    if not value:
        return None
    if not value.isdigit():
        errors.setdefault(name, []).append("Enter a whole number of leads, or leave it empty for no cap.")
        return None
    return int(value)


def _int(value: str, name: str, errors: dict[str, list[str]]) -> int | None:
    if value.lstrip("-").isdigit():
        return int(value)
    errors.setdefault(name, []).append("Enter a whole number.")
    return None


def _windows(cells: set[str]) -> dict[str, list[list[str]]]:
    windows: dict[str, list[list[str]]] = {}
    for day in DAY_NAMES:
        hours = sorted(int(c.partition(":")[2]) for c in cells if c.startswith(f"{day}:"))
        runs: list[list[int]] = []
        for hour in hours:
            if runs and runs[-1][1] == hour:
                runs[-1][1] = hour + 1
            else:
                runs.append([hour, hour + 1])
        if runs:
            windows[day] = [[f"{start:02d}:00", "24:00" if end == 24 else f"{end:02d}:00"] for start, end in runs]
    return windows


def _headers(text: str, errors: dict[str, list[str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            errors.setdefault("delivery.headers", []).append(f"Line {number}: write each header as Name: value.")
            continue
        headers[name.strip()] = value.strip()
    return headers


def _equals(text: str) -> Any:
    """``accept.equals`` as typed: a JSON literal (true, 1, null) or else the text itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (bool, int, float)) or value is None else text


def terms_build(state: EditorState) -> Built:
    """The contract's whole terms from the page, in :class:`ContractTermsInput`'s shape."""
    v = state.values
    errors: dict[str, list[str]] = {}
    paths: dict[str, str] = {}
    terms: dict[str, Any] = {"name": v.get("name", ""), "max_price": _blank_none(v.get("max_price", ""))}
    # Pricing: a fixed price (with modifiers), or a real-time bid (with its max price and timeout).
    if v.get("pricing") == "rtb":
        terms.update(price=None, modifiers=[], rtb_url=v.get("rtb_url") or None)
        if not v.get("rtb_url"):
            errors["rtb_url"] = ["Enter the URL that answers your bid requests."]
        timeout = _int(v.get("rtb_timeout_ms", ""), "rtb_timeout_ms", errors)
        if timeout is not None:
            terms["rtb_timeout_ms"] = timeout
    else:
        terms.update(price=_blank_none(v.get("price", "")), rtb_url=None)
        if not v.get("price"):
            errors["price"] = ["Enter a price."]
        if state.modifiers_json is not None:
            terms["modifiers"] = _json(state.modifiers_json, "modifiers", errors)
        else:
            modifiers = []
            for index, mod in enumerate(state.modifiers):
                if not mod.amount:
                    errors.setdefault(mod.id, []).append("Enter an amount.")
                action = mod.action if mod.action in ("add", "multiply") else "add"
                item: dict[str, Any] = {action: mod.amount}
                when = _rule_of(mod.when, f"modifiers[{index}].when", paths, errors)
                if when:
                    item = {"when": when, **item}
                paths[f"modifiers[{index}]"] = mod.id
                modifiers.append(item)
            terms["modifiers"] = modifiers
    # Filters, with the blocked sources as one more "all" condition.
    if state.filters_json is not None:
        filters = _json(state.filters_json, "filters", errors) or {}
    else:
        filters = _rule_of(state.filters, FILTERS, paths, errors)
    if state.too_deep:
        errors["filters"] = [f"Groups nest at most {MAX_NESTING} levels deep."]
    blocked = [item for item in _SPLIT.split(state.blocked_sources) if item]
    if blocked:
        leaf = {"field": "$source", "op": "not_in", "value": blocked}
        if not filters:
            filters = leaf
            paths[FILTERS] = "blocked_sources"
        elif "all" in filters and len(filters) == 1:
            paths[f"{FILTERS}.all[{len(filters['all'])}]"] = "blocked_sources"
            filters = {"all": [*filters["all"], leaf]}
        else:
            paths = {k.replace(FILTERS, f"{FILTERS}.all[0]", 1): node for k, node in paths.items()}
            paths[f"{FILTERS}.all[1]"] = "blocked_sources"
            filters = {"all": [filters, leaf]}
    terms["filters"] = filters
    terms["caps"] = {p: _cap(v.get(f"cap_{p}", ""), f"caps.{p}", errors) for p in PERIODS}
    terms["budget"] = {p: _blank_none(v.get(f"budget_{p}", "")) for p in PERIODS}
    if state.schedule_mode == "grid":
        if not state.cells:
            errors["schedule"] = ["Pick at least one hour in the grid, or choose “Any time”."]
        terms["schedule"] = {} if len(state.cells) == 7 * 24 else {"windows": _windows(state.cells)}
    else:
        terms["schedule"] = {}
    for name in ("dedup_days", "min_score", "return_window_hours"):
        number = _int(v.get(name, ""), name, errors)
        if number is not None:
            terms[name] = number
    headers = _headers(state.headers, errors)
    if v.get("delivery_method") == "webhook":
        delivery: dict[str, Any] = {"method": "webhook", "url": v.get("delivery_url", "")}
        if not v.get("delivery_url"):
            errors["delivery.url"] = ["Enter the URL the exchange posts your leads to."]
        timeout = _int(v.get("delivery_timeout_ms", ""), "delivery.timeout_ms", errors)
        if timeout is not None:
            delivery["timeout_ms"] = timeout
        if headers:
            delivery["headers"] = headers
        kind = v.get("accept_kind")
        if kind == "json":
            if not v.get("accept_path"):
                errors["delivery.accept"] = ["Name the answer's field to read (e.g. status)."]
            delivery["accept"] = {"path": v.get("accept_path", ""), "equals": _equals(v.get("accept_equals", ""))}
        elif kind == "regex":
            delivery["accept"] = {"regex": v.get("accept_regex", "")}
        if v.get("reason_path"):
            delivery["reason_path"] = v["reason_path"]
        terms["delivery"] = delivery
    else:
        terms["delivery"] = {}
    return Built(terms, paths, errors)


def _split_path(message: str, default: str) -> tuple[str, str]:
    """``"filters.all[1].value: expected…"`` → (the path, the message)."""
    head, sep, rest = message.partition(": ")
    if sep and re.fullmatch(r"[\w$.\[\]]+", head) and head.startswith(default):
        return head, rest
    return default, message


def errors_place(state: EditorState, built: Built, refused: Mapping[str, list[str]]) -> None:
    """Put the refusals on the page's fields: a rule's on the row it names, a delivery's on its key."""
    placed: dict[str, list[str]] = defaultdict(list)
    for name, messages in {**built.errors, **refused}.items():
        for message in messages:
            path, text = (
                _split_path(message, name)
                if name in ("filters", "modifiers", "delivery", "schedule")
                else (name, message)
            )
            if path.startswith(("filters", "modifiers")):
                row = _row_for(path, built.paths)
                if row is not None:
                    placed[row].append(text[:1].upper() + text[1:])
                    continue
            if path.startswith("delivery."):
                key = path.split(".")[1].split("[")[0]
                placed[f"delivery.{key}"].append(text)
                continue
            if path.startswith("schedule"):
                path = "schedule"
            placed[path].append(text)
    state.errors = dict(placed)
    rows = {node.id: node for node in _all_nodes(state)}
    mods = {mod.id: mod for mod in state.modifiers}
    for key, messages in state.errors.items():
        if key in rows:
            rows[key].error = " ".join(messages)
        elif key in mods:
            mods[key].error = " ".join(messages)


def _row_for(path: str, paths: Mapping[str, str]) -> str | None:
    best = None
    for prefix, row in paths.items():
        if (path == prefix or path.startswith((prefix + ".", prefix + "["))) and (
            best is None or len(prefix) > len(best[0])
        ):
            best = (prefix, row)
    return best[1] if best else None


def _all_nodes(state: EditorState) -> list[Node]:
    def walk(node: Node) -> list[Node]:
        return [node, *(n for child in node.children for n in walk(child))]

    return [*walk(state.filters), *(n for mod in state.modifiers for n in walk(mod.when))]


# --- in words, for the contract's page ----------------------------------------------------------


def _label(name: str, options: Mapping[str, FieldOption]) -> str:
    option = options.get(name)
    return option.label if option else name


def _values_text(value: object) -> str:
    if isinstance(value, list):
        shown = [_text(v) for v in value[:12]]
        more = f" and {len(value) - 12} more" if len(value) > 12 else ""
        return ", ".join(shown) + more
    return _text(value)


def rule_words(rule: object, options: Mapping[str, FieldOption], negate: bool = False) -> str:
    """A rule as a sentence: ``State is one of CA, TX and (Age is at least 25 or …)``."""
    if not isinstance(rule, Mapping) or not rule:
        return "Every lead"
    if "not" in rule:
        return f"not ({rule_words(rule['not'], options)})"
    for kind, joiner in (("all", " and "), ("any", " or ")):
        if kind in rule and isinstance(rule[kind], list):
            parts = [
                f"({rule_words(child, options)})"
                if isinstance(child, Mapping) and ("all" in child or "any" in child)
                else rule_words(child, options)
                for child in rule[kind]
            ]
            return joiner.join(parts)
    name, op, value = rule.get("field"), rule.get("op"), rule.get("value")
    label = _label(str(name), options)
    if op == "exists":
        return f"{label} {'is given' if value else 'is not given'}"
    if op == "between" and isinstance(value, list) and len(value) == 2:
        return f"{label} is between {_text(value[0])} and {_text(value[1])}"
    return f"{label} {OP_LABELS.get(str(op), str(op))} {_values_text(value)}"


def modifiers_words(modifiers: object, options: Mapping[str, FieldOption]) -> list[str]:
    """Each modifier as a sentence: ``When State is one of NY: add $5.00`` (in the exchange's currency)."""
    lines = []
    for mod in modifiers if isinstance(modifiers, list) else []:
        if not isinstance(mod, Mapping):
            continue
        effect = (
            f"add {money_label(Decimal(str(mod['add'])))}" if "add" in mod else f"multiply by {mod.get('multiply')}"
        )
        when = mod.get("when")
        lines.append(f"When {rule_words(when, options)}: {effect}" if when else f"Always: {effect}")
    return lines


def _clock(minute: int) -> str:
    return f"{minute // 60}:{minute % 60:02d}"


def _days_text(days: list[int]) -> str:
    if days == list(range(7)):
        return "Every day"
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        return f"{DAY_LABELS[DAY_NAMES[days[0]]]}–{DAY_LABELS[DAY_NAMES[days[-1]]]}"
    return ", ".join(DAY_LABELS[DAY_NAMES[d]] for d in days)


def schedule_words(schedule: object, tz_name: str) -> str:
    """A schedule as text: ``Mon–Fri 9:00–17:00; Sat 10:00–14:00 (America/New_York)``."""
    if not schedule:
        return f"Any time ({tz_name})"
    try:
        compiled = schedule_compile(schedule)
    except ScheduleError:
        return "Not a valid schedule: save the contract's schedule again"
    groups: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for day, ranges in enumerate(compiled.ranges):
        if ranges:
            groups.setdefault(ranges, []).append(day)
    parts = []
    for ranges, days in groups.items():
        hours = ", ".join("all day" if (s, e) == (0, 1440) else f"{_clock(s)}–{_clock(e)}" for s, e in ranges)
        parts.append(f"{_days_text(days)} {hours}")
    return f"{'; '.join(parts) or 'Never'} ({tz_name})"


def delivery_words(delivery: Mapping[str, Any]) -> list[str]:
    if delivery.get("method", "none") != "webhook":
        return ["You collect leads in the portal and API (no delivery URL)."]
    lines = [f"Posted to {delivery.get('url')} (timeout {delivery.get('timeout_ms', 5000)} ms)"]
    accept = delivery.get("accept") or {}
    if "path" in accept:
        lines.append(f"Accepted when the answer's {accept['path']} is {json.dumps(accept.get('equals'))}")
    elif "regex" in accept:
        lines.append(f"Accepted when the answer matches {accept['regex']}")
    else:
        lines.append("Accepted on any 2xx answer")
    if delivery.get("headers"):
        lines.append("Extra headers: " + ", ".join(delivery["headers"]))
    if delivery.get("reason_path"):
        lines.append(f"A rejection's reason is read at {delivery['reason_path']}")
    return lines
