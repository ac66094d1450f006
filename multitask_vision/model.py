"""The block graph: named blocks wired by name into a DAG, executed in topological order.

This module is block-agnostic on purpose: it knows names, inputs, sub-outputs and the order of
execution, never tasks, ground-truth formats or the libraries blocks come from. How a block is
called is delegated to a per-block ``caller`` (the adapters provide them).

Input references: ``'image'`` (a graph input), ``'backbone'`` (a block's whole output) or
``'backbone.layer4'`` / ``'neck.0'`` (a sub-output: a dict key or a tuple/list index; several
levels are allowed, ``'a.b.0'``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ._hints import did_you_mean

__all__ = ["BlockGraph", "BlockSpec", "GraphConfigError", "parse_block_specs", "select_output"]

_BLOCK_KEYS = {"name", "type", "inputs", "args", "task", "scope", "adapter"}


class GraphConfigError(ValueError):
    """An invalid model config; the message lists every problem found, one per line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "invalid model config" + (
            f" ({len(self.problems)} problems)" if len(self.problems) > 1 else ""
        )
        super().__init__(head + ":\n  - " + "\n  - ".join(self.problems))


@dataclass(frozen=True)
class BlockSpec:
    """One entry of ``model.blocks`` after structural validation.

    Attributes:
        index: position in the ``blocks`` list (for error messages).
        name: unique block name.
        type: registered type name (resolved later by the registries).
        inputs: references to graph inputs or block outputs, e.g. ``('backbone.layer4',)``.
        args: constructor keyword arguments of the block.
        task: the task a head serves, or None for a feature block.
        scope: the library to look the type up in (``'mtv'``, ``'mmdet'``, ``'mmseg'``), or None.
        adapter: an explicit adapter name overriding the detected protocol, or None.
    """

    index: int
    name: str
    type: str
    inputs: tuple[str, ...]
    args: dict = field(default_factory=dict)
    task: str | None = None
    scope: str | None = None
    adapter: str | None = None

    @property
    def where(self) -> str:
        return f"blocks[{self.index}] {self.name!r}"

    def input_refs(self) -> list[tuple[str, tuple[str, ...]]]:
        """``[(source_name, sub_output_path), ...]`` for each input."""
        refs = []
        for ref in self.inputs:
            src, *path = ref.split(".")
            refs.append((src, tuple(path)))
        return refs


def parse_block_specs(
    blocks: Sequence[Mapping], graph_inputs: Sequence[str] = ("image",)
) -> tuple[list[BlockSpec], list[str]]:
    """Structural validation of ``model.blocks``; nothing is built.

    Checks each entry's keys and value types, duplicate names, inputs that name no graph input or
    block, and cycles (naming the blocks in the cycle).

    Returns:
        ``(specs, problems)``: the parsed specs (entries with structural errors are skipped) and
        the list of problems found, each naming the block index and name, the key and the value.
    """
    problems: list[str] = []
    specs: list[BlockSpec] = []
    if not isinstance(blocks, Sequence) or isinstance(blocks, str) or not blocks:
        return [], [f"model.blocks must be a non-empty list of dicts, got {blocks!r}"]
    seen: dict[str, int] = {}
    for i, cfg in enumerate(blocks):
        if not isinstance(cfg, Mapping):
            problems.append(f"blocks[{i}] must be a dict, got {type(cfg).__name__}: {cfg!r}")
            continue
        name = cfg.get("name")
        where = f"blocks[{i}] {name!r}"
        if not isinstance(name, str) or not name or "." in name:
            problems.append(
                f"blocks[{i}]: key 'name' must be a non-empty string without '.', got {name!r}"
            )
            continue
        unknown = sorted(set(cfg) - _BLOCK_KEYS)
        if unknown:
            problems.append(
                f"{where}: unknown key(s) {unknown}; valid keys: "
                f"{sorted(_BLOCK_KEYS)} (constructor arguments go under 'args')"
            )
        if name in graph_inputs:
            problems.append(f"{where}: key 'name' value {name!r} is a graph input name")
        if name in seen:
            problems.append(
                f"{where}: duplicate block name {name!r} (first used by blocks[{seen[name]}])"
            )
            continue
        seen[name] = i
        type_ = cfg.get("type")
        if not isinstance(type_, str) or not type_:
            problems.append(f"{where}: key 'type' must be a registered type name, got {type_!r}")
            continue
        inputs = cfg.get("inputs")
        if isinstance(inputs, str):
            inputs = [inputs]
        if (
            not isinstance(inputs, Sequence)
            or not inputs
            or not all(isinstance(x, str) and x for x in inputs)
        ):
            problems.append(
                f"{where}: key 'inputs' must be a non-empty list of names, "
                f"got {cfg.get('inputs')!r}"
            )
            continue
        args = cfg.get("args", {}) or {}
        if not isinstance(args, Mapping):
            problems.append(f"{where}: key 'args' must be a dict, got {args!r}")
            continue
        optional = {k: cfg.get(k) for k in ("task", "scope", "adapter")}
        bad = [k for k, v in optional.items() if v is not None and not isinstance(v, str)]
        if bad:
            problems.append(f"{where}: key {bad[0]!r} must be a string, got {optional[bad[0]]!r}")
            continue
        specs.append(BlockSpec(i, name, type_, tuple(inputs), dict(args), **optional))

    names = {s.name for s in specs} | set(seen)
    valid = sorted(set(graph_inputs)) + [s.name for s in specs]
    for spec in specs:
        for ref, (src, _) in zip(spec.inputs, spec.input_refs(), strict=True):
            if src not in names and src not in graph_inputs:
                problems.append(
                    f"{spec.where}: key 'inputs' value {ref!r} names no block or graph "
                    f"input{did_you_mean(src, valid)}; valid: {valid}"
                )
            elif src == spec.name:
                problems.append(
                    f"{spec.where}: key 'inputs' value {ref!r} refers to the block itself"
                )
    if not problems:
        cycle = _find_cycle(specs)
        if cycle:
            problems.append(
                "the blocks form a cycle: "
                + " -> ".join(cycle)
                + " (inputs must point to earlier stages)"
            )
    return specs, problems


def _find_cycle(specs: Sequence[BlockSpec]) -> list[str] | None:
    deps = {s.name: [src for src, _ in s.input_refs()] for s in specs}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in deps.get(n, ()):
            if d not in deps:
                continue
            if state.get(d) == 1:
                return stack[stack.index(d) :] + [d]
            if d not in state and (found := visit(d)):
                return found
        stack.pop()
        state[n] = 2
        return None

    for s in specs:
        if s.name not in state and (found := visit(s.name)):
            return found
    return None


def _topological_order(specs: Sequence[BlockSpec]) -> list[str]:
    """Kahn's algorithm, stable in config order."""
    deps = {s.name: {src for src, _ in s.input_refs() if src != s.name} for s in specs}
    names = [s.name for s in specs]
    deps = {n: {d for d in ds if d in deps} for n, ds in deps.items()}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(names):
        ready = [n for n in names if n not in done and deps[n] <= done]
        if not ready:  # parse_block_specs reports cycles before this can happen
            raise GraphConfigError(["the blocks form a cycle"])
        order.append(ready[0])
        done.add(ready[0])
    return order


def select_output(value: Any, path: Sequence[str], ref: str = "") -> Any:
    """Select a sub-output: dict key or tuple/list index, one path element at a time."""
    for key in path:
        if isinstance(value, Mapping):
            if key not in value:
                raise KeyError(f"input {ref!r}: no sub-output {key!r}; available: {list(value)}")
            value = value[key]
        elif isinstance(value, (tuple, list)):
            try:
                value = value[int(key)]
            except (ValueError, IndexError):
                raise KeyError(
                    f"input {ref!r}: sub-output {key!r} is not an index of a "
                    f"{type(value).__name__} of length {len(value)}"
                ) from None
        else:
            raise KeyError(
                f"input {ref!r}: cannot select {key!r} from a {type(value).__name__} output"
            )
    return value


Caller = Callable[..., Any]


class BlockGraph(nn.ModuleDict):
    """Named blocks executed as a DAG. State-dict keys are ``<block name>.<param>``.

    Args:
        specs: parsed block specs (see :func:`parse_block_specs`).
        modules: the built block for each spec name.
        callers: optional per-block ``caller(module, *inputs) -> output``; default: ``module(*x)``.
        graph_inputs: names of the external inputs (``'image'``).
    """

    def __init__(
        self,
        specs: Sequence[BlockSpec],
        modules: Mapping[str, nn.Module],
        callers: Mapping[str, Caller] | None = None,
        graph_inputs: Sequence[str] = ("image",),
    ):
        order = _topological_order(specs)
        super().__init__({name: modules[name] for name in order})
        self.specs = {s.name: s for s in specs}
        self.order = order
        self.graph_inputs = tuple(graph_inputs)
        self._callers = dict(callers or {})
        self._refs = {s.name: s.input_refs() for s in specs}
        self._plans: dict[frozenset[str], list[str]] = {}

    def plan(self, targets: Iterable[str]) -> list[str]:
        """Blocks needed for ``targets`` (their ancestors included), in execution order."""
        key = frozenset(targets)
        if key not in self._plans:
            unknown = sorted(key - set(self.order))
            if unknown:
                raise KeyError(f"unknown block(s) {unknown}; blocks: {self.order}")
            needed: set[str] = set()
            todo = list(key)
            while todo:
                n = todo.pop()
                if n in needed or n in self.graph_inputs:
                    continue
                needed.add(n)
                todo.extend(src for src, _ in self._refs[n])
            self._plans[key] = [n for n in self.order if n in needed]
        return self._plans[key]

    def forward(
        self, inputs: Mapping[str, Any], targets: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Run the blocks that ``targets`` need and return their outputs.

        Args:
            inputs: graph inputs by name, e.g. ``{'image': Tensor[B, 3, H, W]}``.
            targets: block names whose outputs are wanted; None = every block.

        Returns:
            ``{target: output}`` for each requested block.
        """
        targets = list(self.order if targets is None else targets)
        values: dict[str, Any] = dict(inputs)
        for name in self.plan(targets):
            args = []
            for src, path in self._refs[name]:
                if src not in values:
                    raise KeyError(f"block {name!r} needs graph input {src!r}, which was not given")
                args.append(
                    select_output(values[src], path, f"{src}.{'.'.join(path)}")
                    if path
                    else values[src]
                )
            caller = self._callers.get(name)
            module = self[name]
            values[name] = caller(module, *args) if caller else module(*args)
        return {t: values[t] for t in targets}
