"""Which teacher layer each student layer learns from: ``[(student_layer, teacher_layer), ...]`` (0-based).

- ``uniform`` (default): student layer ``i`` <- teacher layer ``ceil((i + 1) * L_t / L_s) - 1``, the
  "each discrete layer" scheme of KoMiniLM (6 of 12: teacher layers 1, 3, 5, 7, 9, 11).
- ``last``: the last student layer <- the last teacher layer only, i.e. MiniLM v1.
- an explicit list: ``"0:1,1:3,5:11"`` (student:teacher pairs) or ``"1,3,5,7,9,11"`` (one teacher
  layer per student layer, in order).
"""

from __future__ import annotations

from koembed.errors import InputError


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    return [(i, -(-(i + 1) * teacher_layers // student_layers) - 1) for i in range(student_layers)]


def parse_layer_map(spec: str | list | None, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Turn a layer-map spec (see the module docstring) into validated pairs; errors name the bad entry."""
    if spec is None or spec == "uniform":
        pairs = uniform_layer_map(student_layers, teacher_layers)
    elif spec == "last":
        pairs = [(student_layers - 1, teacher_layers - 1)]
    else:
        pairs = _explicit(spec, student_layers)
    if not pairs:
        raise InputError("layer map is empty; give at least one student:teacher pair")
    for s, t in pairs:
        if not 0 <= s < student_layers:
            raise InputError(f"layer map: student layer {s} is out of range (the student has {student_layers} "
                             f"layers, 0..{student_layers - 1})")
        if not 0 <= t < teacher_layers:
            raise InputError(f"layer map: teacher layer {t} is out of range (the teacher has {teacher_layers} "
                             f"layers, 0..{teacher_layers - 1})")
    students = [s for s, _ in pairs]
    if len(set(students)) != len(students):
        raise InputError(f"layer map {format_layer_map(pairs)}: a student layer appears twice")
    return sorted(pairs)


def format_layer_map(pairs: list[tuple[int, int]]) -> str:
    return ",".join(f"{s}:{t}" for s, t in pairs)


def _explicit(spec: str | list, student_layers: int) -> list[tuple[int, int]]:
    items = spec if isinstance(spec, list) else [p for p in str(spec).replace(" ", "").split(",") if p]
    pairs: list[tuple[int, int]] = []
    try:
        if all(isinstance(p, list | tuple) for p in items):
            return [(int(s), int(t)) for s, t in items]
        if all(":" in str(p) for p in items):
            for p in items:
                s, t = str(p).split(":")
                pairs.append((int(s), int(t)))
            return pairs
        teachers = [int(p) for p in items]
    except ValueError:
        raise InputError(f"layer map {spec!r} is not 'uniform', 'last', 's:t,s:t,...' or 't,t,...' "
                         "with integer layer numbers") from None
    if len(teachers) != student_layers:
        raise InputError(f"layer map {spec!r} lists {len(teachers)} teacher layers for a {student_layers}-layer "
                         "student; give one per student layer or use s:t pairs")
    return list(enumerate(teachers))
