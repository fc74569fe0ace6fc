"""Title gaps (产权/权属问题): which spaces cannot simply be operated, why, and how badly.

The rules are written down once, in :data:`RULES`: each names a gap, its severity and
the condition on a space's tenure. Severity follows the Jinsong North experience:

- **blocking** — operation needs a decision nobody on site can take: allocated land
  (划拨) cannot change use to commercial without approval (the idle boiler room stayed
  idle for lack of this path); a disputed or unknown owner cannot sign a lease; an
  expired operating right.
- **transitional** — operable under a transitional permit coordinated by the street
  office, as ~30% of Jinsong's activated rooms were: missing, partial or unknown
  certificate; several owners who must agree.
- **minor** — to watch: the operating right ends within the warning period.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import geopandas as gpd
import numpy as np
import pandas as pd

SEVERITIES = ("blocking", "transitional", "minor")
_SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
#: Owner names listing several owners: "劲松一建公司/劲松房管所", "A、B", "A和B".
_SEVERAL = re.compile(r"[/／、;；,，&]|和|及")


@dataclass(frozen=True)
class Rule:
    """One kind of title gap: ``applies(spaces, today, months)`` is a boolean per space."""

    gap: str
    severity: str
    zh: str
    en: str
    applies: Callable[[pd.DataFrame, date, int], pd.Series]


def _dates(column: pd.Series) -> pd.Series:
    return pd.to_datetime(column, errors="coerce")


def _text(column: pd.Series) -> pd.Series:
    return column.astype(object).where(column.notna(), "").astype(str)


def _expiring(s: pd.DataFrame, today: date, months: int) -> pd.Series:
    end = _dates(s["operating_right_end"])
    limit = pd.Timestamp(today) + pd.DateOffset(months=months)
    return (end >= pd.Timestamp(today)) & (end <= limit)


RULES: tuple[Rule, ...] = (
    Rule(
        "allocated_land",
        "blocking",
        "划拨用地，改变用途须审批",
        "allocated land: change of use needs approval",
        lambda s, today, m: s["land_type"] == "allocated",
    ),
    Rule(
        "disputed",
        "blocking",
        "权属争议",
        "ownership disputed",
        lambda s, today, m: s["disputed"].fillna(False).astype(bool),
    ),
    Rule(
        "unknown_owner",
        "blocking",
        "产权人不明",
        "owner unknown",
        lambda s, today, m: (s["owner_type"] == "unknown") | (_text(s["owner_name"]) == ""),
    ),
    Rule(
        "operating_right_expired",
        "blocking",
        "经营权已到期",
        "operating right expired",
        lambda s, today, m: _dates(s["operating_right_end"]) < pd.Timestamp(today),
    ),
    Rule(
        "missing_certificate",
        "transitional",
        "无房产证",
        "no property certificate",
        lambda s, today, m: s["certificate_status"] == "missing",
    ),
    Rule(
        "partial_certificate",
        "transitional",
        "产权手续不全",
        "incomplete title documents",
        lambda s, today, m: s["certificate_status"] == "partial",
    ),
    Rule(
        "unknown_certificate",
        "transitional",
        "产权证情况不明",
        "certificate status unknown",
        lambda s, today, m: s["certificate_status"].isna() | (s["certificate_status"] == "unknown"),
    ),
    Rule(
        "several_owners",
        "transitional",
        "多个产权单位",
        "several owners must agree",
        lambda s, today, m: _text(s["owner_name"]).str.contains(_SEVERAL),
    ),
    Rule(
        "operating_right_expiring",
        "minor",
        "经营权即将到期",
        "operating right ends soon",
        _expiring,
    ),
)
RULES_BY_GAP = {r.gap: r for r in RULES}


def annotate(
    spaces: gpd.GeoDataFrame, today: date | None = None, expiring_months: int = 12
) -> gpd.GeoDataFrame:
    """Return ``spaces`` with their title gaps.

    Adds ``gaps`` (gap codes, most severe first), ``gap_severity`` (the worst, or None for
    a clean title) and ``gap_detail`` (bilingual text).
    """
    today = today or date.today()
    out = spaces.copy()
    hits = pd.DataFrame(
        {
            r.gap: r.applies(spaces, today, expiring_months).fillna(False).to_numpy(bool)
            for r in RULES
        },
        index=spaces.index,
    )
    ordered = [r for r in sorted(RULES, key=lambda r: _SEVERITY_RANK[r.severity])]
    matrix = hits[[r.gap for r in ordered]].to_numpy()
    # few distinct combinations of gaps occur: describe each once, then look them up
    bits = matrix.astype(np.int64) @ (np.int64(1) << np.arange(len(ordered), dtype=np.int64))
    patterns, which = np.unique(bits, return_inverse=True)
    gaps, severity, detail = [], [], []
    for pattern in patterns:
        hit = [r for j, r in enumerate(ordered) if pattern >> j & 1]
        gaps.append([r.gap for r in hit])
        severity.append(hit[0].severity if hit else None)
        detail.append("; ".join(f"{r.zh} / {r.en}" for r in hit))
    out["gaps"] = pd.Series([list(gaps[i]) for i in which], index=out.index, dtype=object)
    out["gap_severity"] = pd.Series(
        np.array(severity, dtype=object)[which], index=out.index, dtype=object
    )
    out["gap_detail"] = pd.Series(np.array(detail, dtype=object)[which], index=out.index)
    return out


def title_gaps(
    spaces: gpd.GeoDataFrame, today: date | None = None, expiring_months: int = 12
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Return (spaces with a title gap or a data-quality flag, totals per community).

    The totals give, per community: spaces and usable area in all, with any gap, with a
    blocking gap, and the share (%) of usable area with a gap. Parking is counted in spaces
    but carries no usable floor area.
    """
    annotated = annotate(spaces, today, expiring_months)
    flagged = annotated["gap_severity"].notna() | annotated["quality_flags"].map(bool)
    rows = annotated[flagged].copy()
    usable = annotated["usable_area_m2"].astype(float).fillna(0.0)
    has_gap = annotated["gap_severity"].notna()
    blocking = annotated["gap_severity"] == "blocking"
    totals = (
        pd.DataFrame(
            {
                "community": annotated["community"],
                "spaces": 1,
                "usable_area_m2": usable,
                "spaces_with_gap": has_gap.astype(int),
                "area_with_gap_m2": usable.where(has_gap, 0.0),
                "spaces_blocking": blocking.astype(int),
                "area_blocking_m2": usable.where(blocking, 0.0),
            }
        )
        .groupby("community", as_index=False)
        .sum()
    )
    totals["share_with_gap_pct"] = (
        100
        * totals["area_with_gap_m2"]
        / totals["usable_area_m2"].where(totals["usable_area_m2"] > 0)
    ).round(1)
    columns = [
        "survey_ref",
        "community",
        "kind",
        "kind_zh",
        "name",
        "usable_area_m2",
        "owner_name",
        "owner_type",
        "land_type",
        "certificate_status",
        "disputed",
        "operating_right_end",
        "gap_severity",
        "gaps",
        "gap_detail",
        "quality_flags",
        "geometry",
    ]
    return gpd.GeoDataFrame(rows[columns], geometry="geometry", crs=spaces.crs), totals
