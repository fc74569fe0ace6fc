"""The import report: what happened to every feature of a file, as data and as files."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from inventory.errors import InputError


@dataclass
class FeatureIssue:
    """One line of the report: a feature that was rejected, repaired or flagged."""

    row: int
    survey_ref: str | None
    status: str  # "rejected" | "repaired" | "flagged"
    reasons: list[str]


@dataclass
class FieldChange:
    """One field of an existing space that the import changed (old → new)."""

    survey_ref: str
    field: str
    old: str | None
    new: str | None


@dataclass
class ImportReport:
    """What one import did: how the file was read, the counts, and every feature's issue."""

    source: str
    layer: str | None
    target: str  # "spaces" | "communities"
    dry_run: bool
    encoding: str
    encoding_note: str
    crs: str
    fields: dict[str, str]
    unmapped: list[str]
    read: int = 0
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    batch_id: int | None = None
    communities_created: list[str] = field(default_factory=list)
    issues: list[FeatureIssue] = field(default_factory=list)
    #: every field the import changed on the spaces it updated
    changes: list[FieldChange] = field(default_factory=list)
    #: quarantined features of earlier batches whose survey reference this one delivered
    rejects_resolved: int = 0
    #: retired spaces this file delivered again (updated, still retired)
    retired_delivered: list[str] = field(default_factory=list)
    #: (delivered reference, stored reference, how alike): loaded, flagged as probable duplicates
    duplicates: list[tuple[str, str, str]] = field(default_factory=list)
    #: (delivered reference, stored reference, how alike): updated by location (match_geometry)
    matched: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Features now in the store from this file (loaded, updated or unchanged)."""
        return self.loaded + self.updated + self.unchanged

    def add_part(self, more: ImportReport) -> ImportReport:
        """Add the counts and lists of a later part's report of the same file; return self."""
        for count in ("read", "loaded", "updated", "unchanged", "rejected"):
            setattr(self, count, getattr(self, count) + getattr(more, count))
        for listed in (
            "issues",
            "communities_created",
            "changes",
            "duplicates",
            "matched",
            "retired_delivered",
        ):
            getattr(self, listed).extend(getattr(more, listed))
        return self

    def write(self, path: str | Path) -> None:
        """Write the report: ``.json`` (everything) or ``.csv`` (one line per issue)."""
        p = Path(path)
        if p.suffix.lower() == ".csv":
            with p.open("w", newline="", encoding="utf-8-sig") as fh:  # BOM: Excel reads UTF-8
                writer = csv.writer(fh)
                writer.writerow(["source", "layer", "row", "survey_ref", "status", "reasons"])
                for issue in self.issues:
                    writer.writerow(
                        [
                            self.source,
                            self.layer or "",
                            issue.row,
                            issue.survey_ref or "",
                            issue.status,
                            "; ".join(issue.reasons),
                        ]
                    )
            return
        if p.suffix.lower() != ".json":
            raise InputError(f"Cannot write the report {p.name!r}: give a .json or .csv file name.")
        p.write_text(json.dumps(self.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")

    def as_dict(self) -> dict:
        """Return the report as plain data."""
        return asdict(self)


def write_reports(reports: list[ImportReport], path: str | Path) -> None:
    """Write several reports (one per file or layer) into one .json or .csv file."""
    if len(reports) == 1:
        reports[0].write(path)
        return
    p = Path(path)
    if p.suffix.lower() == ".json":
        p.write_text(
            json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2),
            encoding="utf-8",
        )
        return
    merged = ImportReport(**{**asdict(reports[0]), "issues": []})
    merged.issues = [i for r in reports for i in r.issues]
    merged.source = "; ".join(r.source for r in reports)
    merged.write(p)
