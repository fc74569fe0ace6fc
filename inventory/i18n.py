"""The words the tool writes for readers, in Chinese and English: one catalogue.

Column headers of exports (``--lang zh|en``) come from :data:`COLUMNS`. A Chinese header
of a field the importer reads is one of that field's import aliases (with its unit in
brackets, which the importer strips), so a workbook exported with Chinese headers imports
back as it is; ``tests/test_export.py`` holds the catalogue to that.
"""

from __future__ import annotations

import os

from inventory.errors import InputError

LANGUAGES = ("zh", "en")

#: Column → (Chinese header, English header).
COLUMNS: dict[str, tuple[str, str]] = {
    # spaces
    "space_id": ("空间ID", "Space id"),
    "survey_ref": ("编号", "Survey ref"),
    "community": ("社区", "Community"),
    "district": ("所属区", "District"),
    "street_office": ("街道", "Street office"),
    "kind": ("类型", "Kind"),
    "kind_zh": ("类型名称", "Kind (Chinese)"),
    "name": ("名称", "Name"),
    "footprint_area_m2": ("占地面积（㎡）", "Footprint area (m²)"),
    "floor_area_m2": ("建筑面积（㎡）", "Floor area (m²)"),
    "floors": ("层数", "Floors"),
    "usable_area_m2": ("使用面积（㎡）", "Usable area (m²)"),
    "parking_spaces": ("车位数", "Parking spaces"),
    "units": ("数量", "Units"),
    "vacancy": ("现状", "Vacancy"),
    "vacancy_zh": ("现状说明", "Vacancy (Chinese)"),
    "condition": ("房屋状况", "Condition"),
    "condition_zh": ("房屋状况说明", "Condition (Chinese)"),
    "current_use": ("当前用途", "Current use"),
    "owner_name": ("产权单位", "Owner"),
    "owner_type": ("权属类型", "Owner type"),
    "owner_type_zh": ("权属类型说明", "Owner type (Chinese)"),
    "land_type": ("土地性质", "Land type"),
    "land_type_zh": ("土地性质说明", "Land type (Chinese)"),
    "certificate_status": ("产权证", "Certificate"),
    "certificate_status_zh": ("产权证情况", "Certificate (Chinese)"),
    "disputed": ("争议", "Disputed"),
    "dispute_note": ("争议说明", "Dispute note"),
    "operating_right_holder": ("经营权人", "Operating right holder"),
    "operating_right_start": ("经营起始", "Operating right from"),
    "operating_right_end": ("经营终止", "Operating right to"),
    "tenure_source_ref": ("产权证号", "Title document no."),
    "permit_end": ("临时许可到期", "Permit ends"),
    "permit_uses": ("许可用途", "Permitted uses"),
    "surveyed_at": ("调查日期", "Surveyed on"),
    "notes": ("备注", "Notes"),
    "quality_flags": ("数据质量提示", "Quality flags"),
    "batch_id": ("导入批次", "Import batch"),
    "title_status": ("产权状况代码", "Title status"),
    "title_status_zh": ("产权状况", "Title status (Chinese)"),
    "bundle_id": ("组团", "Bundle"),
    "extra_attributes": ("其他属性", "Other attributes"),
    # gaps
    "gap_severity": ("问题严重程度", "Gap severity"),
    "gaps": ("产权问题", "Title gaps"),
    "gap_detail": ("问题说明", "Gap detail"),
    "spaces": ("空间数", "Spaces"),
    "spaces_with_gap": ("有产权问题的空间", "Spaces with a gap"),
    "area_with_gap_m2": ("有产权问题的面积（㎡）", "Area with a gap (m²)"),
    "spaces_blocking": ("产权障碍空间", "Spaces with a blocking gap"),
    "area_blocking_m2": ("产权障碍面积（㎡）", "Area with a blocking gap (m²)"),
    "share_with_gap_pct": ("有问题空间占比（%）", "Share with a gap (%)"),
    # bundles
    "communities": ("所属社区", "Communities"),
    "members": ("成员", "Members"),
    "member_count": ("成员数", "Members (count)"),
    "kinds": ("空间类型", "Kinds"),
    "smallest_m2": ("最小面积（㎡）", "Smallest (m²)"),
    "largest_m2": ("最大面积（㎡）", "Largest (m²)"),
    "clean": ("产权清晰", "Clean title"),
    "minor": ("轻微问题", "Minor issue"),
    "transitional": ("过渡期许可", "Transitional permit"),
    "blocking": ("产权障碍", "Blocking gap"),
    # communities
    "built_year": ("建成年份", "Built"),
    "households": ("户数", "Households"),
    "residents": ("人口", "Residents"),
    "site_area_m2": ("用地面积（㎡）", "Site area (m²)"),
    # import batches
    "file": ("文件", "File"),
    "layer": ("图层", "Layer"),
    "imported_by": ("导入人", "Imported by"),
    "started_at": ("开始时间", "Started"),
    "finished_at": ("导入时间", "Imported"),
    "read": ("读取", "Read"),
    "loaded": ("新增", "Loaded"),
    "updated": ("更新", "Updated"),
    "unchanged": ("未变", "Unchanged"),
    "rejected": ("拒收", "Rejected"),
    "rejects_open": ("待修正", "Rejects open"),
    # tenure records
    "party_id": ("权利人ID", "Party id"),
    "party_type": ("权利人类型", "Party type"),
    "right_id": ("权利ID", "Right id"),
    "holder": ("权利人", "Holder"),
    "holder_type": ("权利人类型", "Holder type"),
    "granted_by": ("授予方", "Granted by"),
    "parent_id": ("上级权利", "Derived from"),
    "share": ("份额", "Share"),
    "start_date": ("起始日期", "From"),
    "end_date": ("终止日期", "To"),
    "rent_yuan_year": ("年租金（元）", "Rent (yuan/yr)"),
    "allowed_uses": ("允许用途", "Allowed uses"),
    "conditions": ("附加条件", "Conditions"),
    "status": ("状态", "Status"),
    "decided_on": ("决定日期", "Decided on"),
    "origin": ("来源", "Origin"),
    "sources": ("依据文件", "Sources"),
    "source_id": ("文件ID", "Source id"),
    "number": ("文号", "Number"),
    "issued_on": ("签发日期", "Issued on"),
    "issuer": ("签发机关", "Issuer"),
    "file_name": ("文件名", "File"),
    "file_size": ("文件大小（字节）", "File size (bytes)"),
    "file_sha256": ("文件SHA-256", "File SHA-256"),
}

#: Title status (the worst gap of a space, or clean) → (Chinese, English).
TITLE_STATUS: dict[str, tuple[str, str]] = {
    "clean": ("产权清晰", "Clean title"),
    "minor": ("轻微问题", "Minor issue"),
    "transitional": ("过渡期许可", "Transitional permit"),
    "blocking": ("产权障碍", "Blocking gap"),
}

#: Layer (sheet) names of an export → (Chinese, English).
LAYERS: dict[str, tuple[str, str]] = {
    "spaces": ("空间", "Spaces"),
    "spaces_points": ("空间（点）", "Spaces (points)"),
    "gaps": ("产权问题", "Title gaps"),
    "gaps_points": ("产权问题（点）", "Title gaps (points)"),
    "gap_totals": ("产权问题汇总", "Gap totals"),
    "bundles": ("空间组团", "Bundles"),
    "bundle_members": ("组团成员", "Bundle members"),
    "communities": ("社区", "Communities"),
    "parties": ("权利人", "Parties"),
    "rights": ("权利", "Rights"),
    "sources": ("依据文件", "Sources"),
}


def language(lang: str | None = None) -> str | None:
    """Return the language asked for (``lang``, else ``INVENTORY_LANG``), or None for codes.

    Raises:
        InputError: the language is not one of :data:`LANGUAGES`.

    """
    chosen = lang if lang is not None else os.environ.get("INVENTORY_LANG") or None
    if chosen is None:
        return None
    chosen = chosen.strip().lower().split("_")[0].split("-")[0]  # zh_CN.UTF-8 → zh
    if chosen not in LANGUAGES:
        raise InputError(f"`lang={lang or chosen}` is not a language here: use zh or en.")
    return chosen


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh" else pair[1]


def column(name: str, lang: str | None) -> str:
    """Return the header of column ``name`` in ``lang`` (the name itself without one)."""
    if lang is None or name not in COLUMNS:
        return name
    return _pick(COLUMNS[name], lang)


def layer(name: str, lang: str | None) -> str:
    """Return the name of an export layer (a workbook's sheet) in ``lang``."""
    if lang is None or name not in LAYERS:
        return name
    return _pick(LAYERS[name], lang)


def title_status(status: str | None, lang: str = "zh") -> str | None:
    """Return the label of a title status (clean, minor, transitional, blocking)."""
    return None if status is None else _pick(TITLE_STATUS[status], lang)
