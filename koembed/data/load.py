"""Read one split of a catalogued data set: the local files when they exist, else its Hub dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from koembed.data.catalogue import DataSet, find_dataset
from koembed.errors import InputError
from koembed.korean_data import FORMATS
from koembed.paths import data_dir as resolve_data_dir
from koembed.row_report import RowReport, report_or_new


class DataMissing(InputError):
    """Neither a local file nor the Hub gave the split; ``reason`` says what was tried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class SplitRows:
    rows: list[dict]
    source: str  # "local files" or "Hub <id>", for result files and model cards
    files: list[Path] = field(default_factory=list)  # the local files read (empty for the Hub)


def read_split(dataset: DataSet | str, split: str, data_dir: str | Path | None = None,
               report: RowReport | None = None, use_hub: bool = True) -> SplitRows:
    """The rows of ``split`` (``train``/``dev``/``test``) of a catalogued data set.

    Local files (under :func:`koembed.paths.data_dir`) come first; if none of the split's files exists
    and ``use_hub``, the data set's Hub dataset is loaded through ``datasets``. Rows have the shape the
    format's reader gives (``koembed.korean_data.FORMATS``). Raises :class:`DataMissing` naming the
    files looked for and why the Hub gave nothing.
    """
    ds = find_dataset(dataset) if isinstance(dataset, str) else dataset
    if ds.format is None:
        raise InputError(f"data set {ds.name} is raw text: no reader maps it onto rows")
    if split not in ds.splits:
        raise InputError(f"data set {ds.name} has no {split!r} split (it has {', '.join(ds.splits) or 'none'})")
    report = report_or_new(report)
    fmt = FORMATS[ds.format]
    root = resolve_data_dir(data_dir)
    paths = [root / p for p in ds.paths(split)]
    present = [p for p in paths if p.is_file()]
    if present:
        rows = [row for p in present for row in fmt.read(p, report)]
        return SplitRows(rows, "local files", present)
    looked = ", ".join(str(p) for p in paths) or f"no local file is catalogued for {ds.name} {split}"
    reason = f"{ds.name} {split}: {looked} not found"
    if ds.hub is None:
        raise DataMissing(f"{reason}, and no Hub dataset is catalogued for it")
    if not use_hub:
        raise DataMissing(f"{reason} (Hub download off)")
    from koembed.data.hub import HubUnavailable, hub_split

    try:
        rows = hub_split(ds.hub, split, fmt.rows, report)
    except HubUnavailable as exc:
        raise DataMissing(f"{reason}; {exc.reason}") from None
    return SplitRows(rows, f"Hub {ds.hub.path}" + (f"@{ds.hub.revision[:7]}" if ds.hub.revision else ""))
