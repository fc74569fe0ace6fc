"""Mapping a surveyor's columns to the store's fields, and parsing their values.

Column names are matched by alias (English and Chinese, and their 10-byte shapefile
truncations); code-list values by the aliases in :mod:`inventory.codes`. Explicit
``--map 源列=field`` overrides and saved profiles take precedence. Parsing is done one
column at a time over unique values, so a million features cost a few dict look-ups.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from inventory.codes import ALL_CODE_LISTS, normalise
from inventory.errors import InputError

#: Store fields a space file may carry, with the column names surveyors use for them.
SPACE_FIELDS: dict[str, tuple[str, ...]] = {
    "survey_ref": (
        "survey_ref",
        "编号",
        "调查编号",
        "空间编号",
        "房屋编号",
        "ref",
        "id",
        "code",
        "编码",
    ),
    "name": ("name", "名称", "空间名称", "房屋名称"),
    "kind": ("kind", "类型", "用途", "空间类型", "资源类型", "type", "category"),
    "floor_area_m2": ("floor_area_m2", "建筑面积", "面积", "floor_area", "area", "area_m2"),
    "usable_area_m2": ("usable_area_m2", "使用面积", "可用面积", "usable_area", "usable"),
    "floors": ("floors", "层数", "楼层数", "storeys"),
    "parking_spaces": ("parking_spaces", "车位数", "车位", "泊位数", "spaces"),
    "units": ("units", "数量", "个数", "套数", "户数", "间数", "台数", "count"),
    "condition": ("condition", "房屋状况", "状况", "房屋质量", "完好程度"),
    "current_use": ("current_use", "当前用途", "现用途", "使用情况", "现用途说明"),
    "vacancy": ("vacancy", "现状", "使用状态", "闲置状态", "利用状态"),
    "surveyed_at": ("surveyed_at", "调查日期", "调查时间", "survey_date"),
    "notes": ("notes", "备注", "说明", "note", "remark", "remarks"),
    "owner_name": ("owner_name", "产权单位", "权属", "权属单位", "产权人", "所有权人", "owner"),
    "owner_type": ("owner_type", "权属类型", "产权性质", "单位性质", "权属性质"),
    "land_type": ("land_type", "土地性质", "用地性质", "土地类型", "土地来源"),
    "certificate_status": ("certificate_status", "产权证", "房产证", "权证", "产权证明", "房本"),
    "disputed": ("disputed", "争议", "是否争议", "权属争议"),
    "dispute_note": ("dispute_note", "争议说明", "争议情况"),
    "operating_right_holder": ("operating_right_holder", "经营权人", "运营方", "运营单位"),
    "operating_right_start": ("operating_right_start", "经营起始", "经营开始", "运营起始"),
    "operating_right_end": ("operating_right_end", "经营终止", "经营到期", "运营终止"),
    "tenure_source_ref": ("tenure_source_ref", "产权证号", "证号", "权属来源", "权属依据"),
    "community": ("community", "社区", "社区名称", "小区", "小区名称", "所属社区"),
}

COMMUNITY_FIELDS: dict[str, tuple[str, ...]] = {
    "name": ("name", "社区名称", "小区名称", "名称", "社区", "小区", "community"),
    "district": ("district", "所属区", "区", "行政区", "区县"),
    "street_office": ("street_office", "街道", "街道办事处", "所属街道", "street"),
    "built_year": ("built_year", "建成年份", "建成年代", "建造年代", "year_built"),
    "households": ("households", "户数", "住户数", "总户数"),
    "residents": ("residents", "人口", "居民数", "常住人口", "人数"),
    "floor_area_m2": ("floor_area_m2", "建筑面积", "总建筑面积", "floor_area"),
}

_TRUE = {"是", "有", "yes", "y", "true", "t", "1", "争议", "有争议", "存在争议"}
_FALSE = {"否", "无", "no", "n", "false", "f", "0", "无争议", "没有"}
#: A single stock space larger than this is a typo or a unit error (hm², mu), not a room.
MAX_PLAUSIBLE_AREA_M2 = 100_000.0


@dataclass
class FieldMapping:
    """Which source column feeds which store field, and which columns are kept as extras."""

    fields: dict[str, str]  # store field → source column
    unmapped: list[str] = field(default_factory=list)
    how: dict[str, str] = field(default_factory=dict)  # store field → "alias" / "--map" / ...

    def as_profile(self) -> dict[str, str]:
        """Return the mapping as a profile's ``fields`` (source column → store field)."""
        return {source: target for target, source in self.fields.items()}


def _byte_len(text: str) -> int:
    return max(len(text.encode("utf-8")), len(text.encode("gb18030", errors="replace")))


#: A unit or note in brackets at the end of a header: 建筑面积（㎡）, area (m²), 面积[平方米].
_UNIT_SUFFIX = re.compile(r"\s*[(\[（【][^()\[\]（）【】]*[)\]）】]\s*$")


def _without_unit(header: str) -> str:
    """Return a column header without the unit in brackets at its end (建筑面积（㎡） → 建筑面积)."""
    text = unicodedata.normalize("NFKC", str(header))
    bare = _UNIT_SUFFIX.sub("", text)
    return bare if bare.strip() else text


def map_columns(
    columns: list[str],
    known: dict[str, tuple[str, ...]],
    overrides: dict[str, str] | None = None,
) -> FieldMapping:
    """Map source ``columns`` to the fields in ``known``.

    ``overrides`` maps source column → store field (from ``--map`` or a profile) and wins.

    Raises:
        InputError: an override names a column that is not in the file or an unknown field.

    """
    mapping: dict[str, str] = {}
    how: dict[str, str] = {}
    for source, target in (overrides or {}).items():
        if target not in known:
            raise InputError(
                f"`field_map={source}={target}`: {target!r} is not a field; fields: {', '.join(known)}."
            )
        if source not in columns:
            raise InputError(
                f"`field_map={source}={target}`: the file has no column {source!r}; its columns: "
                f"{', '.join(columns)}."
            )
        mapping[target] = source
        how[target] = "given"
    used = set(mapping.values())
    folded = {c: normalise(_without_unit(c)) for c in columns}

    def exact(c: str, alias: str) -> bool:
        return folded[c] == alias

    def truncated(c: str, alias: str) -> bool:
        # a DBF field name is cut at 10 bytes: "certificat", "建筑面"
        return _byte_len(c) >= 9 and len(folded[c]) >= 3 and alias.startswith(folded[c])

    # Exact names first for every field, then truncations, so that a truncation never
    # takes a column another field names exactly.
    for test, label in ((exact, "alias"), (truncated, "truncated alias")):
        for target, aliases in known.items():
            if target in mapping:
                continue
            for alias in map(normalise, aliases):
                hit = next((c for c in columns if c not in used and test(c, alias)), None)
                if hit is not None:
                    mapping[target] = hit
                    how[target] = label
                    used.add(hit)
                    break
    unmapped = [c for c in columns if c not in used]
    return FieldMapping(fields=mapping, unmapped=unmapped, how=how)


def load_profile(path: str | Path) -> dict:
    """Read a mapping profile (JSON: {"fields": {column: field}, "crs", "encoding", ...}).

    Raises:
        InputError: the file is missing or not a profile.

    """
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"Mapping profile not found: {p}.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"Mapping profile {p} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("fields", {}), dict):
        raise InputError(
            f'Mapping profile {p} must be a JSON object like {{"fields": {{"面积": "floor_area_m2"}}}}.'
        )
    data["values"] = check_value_aliases(data.get("values", {}), f"Mapping profile {p}")
    return data


def check_value_aliases(aliases: object, where: str) -> dict[str, dict[str, str]]:
    """Check user aliases of code values, ``{"kind": {"仓库": "service_room"}}``; return them folded.

    Raises:
        InputError: not a table of tables, a field without a code list, or an unknown code.

    """
    example = '{"values": {"kind": {"仓库": "service_room"}}}'
    if not isinstance(aliases, dict):
        raise InputError(f"{where}: values must be a table by field, e.g. {example}.")
    out: dict[str, dict[str, str]] = {}
    for field_name, table in aliases.items():
        codes = ALL_CODE_LISTS.get(field_name)
        if codes is None or field_name not in SPACE_FIELDS:
            coded = [f for f in SPACE_FIELDS if f in ALL_CODE_LISTS]
            raise InputError(
                f"{where}: values.{field_name}: only coded fields take aliases ({', '.join(coded)})."
            )
        if not isinstance(table, dict):
            raise InputError(f"{where}: values.{field_name} must be a table, e.g. {example}.")
        out[field_name] = {}
        for raw, code in table.items():
            matched = codes.match(str(code))
            if matched is None:
                valid = ", ".join(e.code for e in codes)
                raise InputError(
                    f"{where}: values.{field_name}.{raw} = {code!r} is not a {field_name}; use "
                    f"one of {valid}."
                )
            out[field_name][normalise(raw)] = matched
    return out


def save_profile(path: str | Path, mapping: FieldMapping, **settings: str | None) -> None:
    """Write ``mapping`` (and settings such as crs, encoding) as a reusable profile."""
    data = {"fields": mapping.as_profile(), **{k: v for k, v in settings.items() if v}}
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """Parse ``["面积=floor_area_m2", ...]`` into {column: field}.

    Raises:
        InputError: an item has no "=".

    """
    result = {}
    for item in items or []:
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise InputError(
                f"`field_map={item}` must be COLUMN=FIELD, e.g. `field_map=面积=floor_area_m2`."
            )
        result[source.strip()] = target.strip()
    return result


def parse_constants(items: list[str] | None) -> dict[str, str]:
    """Parse ``["kind=门房", ...]`` (``--set``) into {field: value}.

    Raises:
        InputError: an item has no "=", or names no field.

    """
    result = {}
    known = {**SPACE_FIELDS, **COMMUNITY_FIELDS}
    for item in items or []:
        target, sep, value = item.partition("=")
        target = target.strip()
        if not sep or not target or not value.strip():
            raise InputError(
                f"`--set {item}` must be FIELD=VALUE, e.g. `--set kind=门房` or "
                "`--set surveyed_at=2024-05-10`."
            )
        if target not in known:
            raise InputError(
                f"`--set {item}`: {target!r} is not a field; fields: {', '.join(known)}."
            )
        result[target] = value.strip()
    return result


# ---- value parsing ---------------------------------------------------------------------
# Each parser returns (values, errors) where errors[i] is a reason or None. The work is
# done once per distinct value: a million rows with a few dozen kinds cost a few dozen
# look-ups, not a million.

Parsed = tuple[object, str | None]


def _by_unique(column: pd.Series, parse_one) -> tuple[list, list]:
    codes, uniques = pd.factorize(column.astype(object), use_na_sentinel=True)
    parsed = [parse_one(v) for v in uniques]
    values = np.array([p[0] for p in parsed] + [None], dtype=object)
    errors = np.array([p[1] for p in parsed] + [None], dtype=object)
    empty = parse_one(None)
    values[-1], errors[-1] = empty
    return values[codes].tolist(), errors[codes].tolist()


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def parse_text(
    column: pd.Series, label: str = "text", max_length: int | None = None
) -> tuple[list[str | None], list[str | None]]:
    """Return the column's values as stripped text, verbatim otherwise.

    A value longer than ``max_length`` characters (the store's column) or holding a NUL
    character is an error naming it: the same limits on both backends.
    """

    def one(raw: object) -> Parsed:
        text = _text(raw)
        if text is None:
            return None, None
        if "\x00" in text:
            return None, f"{label} holds a NUL character (\\x00); remove it"
        if max_length is not None and len(text) > max_length:
            return None, (
                f"{label} is {len(text)} characters long ({text[:20]!r}…); at most "
                f"{max_length} fit: shorten it"
            )
        return text, None

    values = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        # every value a text (a column of references, names): stripped in one loop, the
        # limits checked over the whole column; any hit is parsed value by value below
        stripped = [v.strip() for v in values]
        longest = max(map(len, stripped), default=0)
        if "\x00" not in "".join(stripped) and (max_length is None or longest <= max_length):
            return [t or None for t in stripped], [None] * len(stripped)
    return _by_unique(column, one)


def parse_code(
    column: pd.Series, list_name: str, label: str, required: bool = False
) -> tuple[list, list]:
    """Match each value against a code list; unknown values are an error naming the valid codes.

    With ``required``, an empty cell is an error too.
    """
    codes = ALL_CODE_LISTS[list_name]

    def one(raw: object) -> Parsed:
        text = _text(raw)
        if text is None:
            if required:
                valid = ", ".join(f"{e.zh}/{e.code}" for e in codes)
                return None, f"{label} is empty; give one of {valid}"
            return None, None
        code = codes.match(text)
        if code is not None:
            return code, None
        valid = ", ".join(f"{e.zh}/{e.code}" for e in codes)
        return None, (
            f"{label} {text!r} is not known; use one of {valid}, or name it in a profile "
            f'(`"values": {{"{list_name}": {{"{text}": "CODE"}}}}`)'
        )

    return _by_unique(column, one)


_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*(m2|m²|㎡|平方米|平米|个|层|位)?\s*$", re.I)


def parse_number(
    column: pd.Series,
    label: str,
    *,
    integer: bool = False,
    positive: bool = True,
    maximum: float | None = None,
    minimum: float | None = None,
) -> tuple[list, list]:
    """Parse numbers (also "25㎡", "25 m2"); refuse text, non-positive and absurd values."""

    def one(raw: object) -> Parsed:
        text = _text(raw)
        if text is None:
            return None, None
        m = _NUMBER.match(text.replace(",", "").replace("，", ""))
        number = float(m.group(1)) if m else None
        if number is None or not np.isfinite(number):
            return None, f"{label} {text!r} is not a number"
        if integer and number != int(number):
            return None, f"{label} {text!r} is not a whole number"
        if positive and number <= 0:
            return None, f"{label} {text!r} must be greater than 0"
        if minimum is not None and number < minimum:
            return None, f"{label} {text!r} is below {minimum:g}"
        if maximum is not None and number > maximum:
            return None, f"{label} {text!r} is implausible (over {maximum:,.0f}); check the unit"
        return (int(number) if integer else number), None

    return _by_unique(column, one)


def parse_bool(column: pd.Series, label: str) -> tuple[list, list]:
    """Parse 是/否, yes/no, 1/0; blank is False."""

    def one(raw: object) -> Parsed:
        text = _text(raw)
        if text is None:
            return False, None
        folded = text.casefold()
        if folded in _TRUE:
            return True, None
        if folded in _FALSE:
            return False, None
        return None, f"{label} {text!r} is not yes/no (是/否)"

    return _by_unique(column, one)


_DATE = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")


def parse_date(column: pd.Series, label: str) -> tuple[list, list]:
    """Parse 2019-03-15, 2019/3/15, 2019.3.15, 2019年3月15日, 20190315."""

    def one(raw: object) -> Parsed:
        if isinstance(raw, date):
            return (raw if type(raw) is date else raw.date()), None  # datetime → date
        text = _text(raw)
        if text is None:
            return None, None
        if len(text) > 10 and text[4] == "-":  # ISO date-time
            text = text.split("T")[0].split(" ")[0]
        m = _DATE.match(text) or (
            re.match(r"^(\d{4})(\d{2})(\d{2})$", text) if text.isdigit() else None
        )
        if not m:
            return None, f"{label} {text!r} is not a date (use 2019-03-15)"
        try:
            return date(int(m.group(1)), int(m.group(2)), int(m.group(3))), None
        except ValueError:
            return None, f"{label} {text!r} is not a valid date"

    return _by_unique(column, one)
