"""The words the tool writes for readers, in Chinese and English: one catalogue.

Column headers of exports (``--lang zh|en``) come from :data:`COLUMNS`. A Chinese header
of a field the importer reads is one of that field's import aliases (with its unit in
brackets, which the importer strips), so a workbook exported with Chinese headers imports
back as it is; ``tests/test_export.py`` holds the catalogue to that.
"""

from __future__ import annotations

import os
import re

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
    # capacity and hosts
    "tenure_status": ("产权状况", "Tenure"),
    "host": ("承接方", "Host"),
    "id": ("编号", "Id"),
    "title": ("产权状况", "Title"),
    "distance_m": ("距离（米）", "Distance (m)"),
    "spare_m2": ("富余面积（㎡）", "Spare (m²)"),
    # revenue
    "variant": ("情形", "Case"),
    "stage": ("阶段", "Stage"),
    "line": ("科目", "Line"),
    "item": ("项目", "Item"),
    "party": ("出资方", "Party"),
    "year": ("年份", "Year"),
    "month": ("月份", "Month"),
    "amount_wan": ("金额（万元）", "Amount (10k yuan)"),
    "stream": ("收入来源", "Stream"),
    "revenue_wan": ("收入（万元）", "Revenue (10k yuan)"),
    "cost_wan": ("成本（万元）", "Cost (10k yuan)"),
    "result_wan": ("收支（万元）", "Result (10k yuan)"),
    "rent_wan": ("现状年租金（万元）", "Rent (10k yuan)"),
    "rent_resolved_wan": ("理顺后年租金（万元）", "Rent resolved (10k yuan)"),
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


#: The map's words: legend, popups, tools, title → (Chinese, English).
MAP: dict[str, tuple[str, str]] = {
    "clean": ("产权清晰", "Clean title"),
    "minor": ("轻微问题", "Minor issue"),
    "transitional": ("过渡期许可", "Transitional permit"),
    "blocking": ("产权障碍", "Blocking gap"),
    "legend": ("产权状况", "Title status"),
    "bundles": ("空间组团", "Bundles"),
    "community": ("社区边界", "Community boundary"),
    "survey_ref": ("编号", "Ref"),
    "kind": ("类型", "Kind"),
    "name": ("名称", "Name"),
    "floor": ("建筑面积 m²", "Floor area m²"),
    "usable": ("使用面积 m²", "Usable area m²"),
    "owner": ("产权单位", "Owner"),
    "land": ("土地性质", "Land"),
    "certificate": ("产权证", "Certificate"),
    "gap": ("产权问题", "Title gap"),
    "bundle": ("组团", "Bundle"),
    "parking": ("车位", "Parking spaces"),
    "notes": ("备注", "Notes"),
    "rights": ("权属记录", "Rights on record"),
    "use": ("方案用途", "Use in the scenario"),
    "rent": ("估算年租金（现状）万元", "Est. rent as surveyed, 10k yuan/yr"),
    "rent_resolved": ("产权理顺后年租金 万元", "Est. rent, gaps resolved, 10k yuan/yr"),
    "data_date": ("数据日期", "Data date"),
    "title": ("存量空间资源图", "Stock-space inventory"),
    "totals": ("社区汇总", "Community totals"),
    "totals_key": (
        "圆点：社区汇总，大小按空间数；放大后显示各空间",
        "Circles: community totals, sized by their spaces; zoom in for the spaces",
    ),
    "measure_blocking_share": ("存在产权障碍的空间占比（%）", "Spaces with a blocking gap (%)"),
    "measure_usable_per_household": ("户均可用面积（㎡/户）", "Usable area per household (m²)"),
    "measure_revenue": (
        "产权理顺后年租金潜力（万元）",
        "Rent potential, gaps resolved (10k yuan/yr)",
    ),
    "no_value": ("无数据", "No data"),
    "size_key": ("空间数", "Spaces"),
    "community_name": ("社区", "Community"),
    "spaces": ("空间数", "Spaces"),
    "blocking_spaces": ("产权障碍空间", "Spaces with blocking gaps"),
    "members": ("成员", "Members"),
    "zoom_in": ("放大以显示各空间", "Zoom in to see the spaces"),
    "too_many": (
        "视野内空间过多，仅显示部分：请放大",
        "Too many spaces in view, some are not drawn: zoom in",
    ),
    "old_browser": (
        "浏览器版本过旧，无法解压空间数据",
        "This browser is too old to unpack the map data",
    ),
    "survey_dates": ("调查日期", "Surveyed"),
    "no_survey_date": ("未记录调查日期", "survey date not recorded"),
    "north": ("北", "N"),
    "search": ("按编号或名称查找", "Find by ref or name"),
    "not_found": ("未找到", "Not found"),
    "print": ("打印", "Print"),
    "png": ("保存图片", "Save PNG"),
    "outline_key": ("轮廓：产权状况", "Outline: title status"),
    "color_kind": ("空间类型", "Kind of space"),
    "color_vacancy": ("利用现状", "Vacancy"),
    "color_bundle": ("空间组团", "Bundle"),
    "color_use": ("方案用途", "Use in the scenario"),
    "none": ("无", "None"),
    "source": ("数据来源", "Source"),
    "made_with": ("存量空间资源清查工具", "stock-space inventory"),
}

#: The meeting pack's words → (Chinese, English).
PACK: dict[str, tuple[str, str]] = {
    "title": ("存量空间资源会议资料", "Stock spaces: meeting pack"),
    "made": ("生成日期", "Made on"),
    "surveyed": ("调查日期", "Surveyed"),
    "map": ("一、空间分布与产权状况", "1. Where the spaces are, and their title"),
    "capacity": ("二、可用空间", "2. What there is"),
    "gaps": ("三、产权问题", "3. Title gaps"),
    "gap_totals": ("产权问题汇总", "Totals"),
    "bundles": ("四、空间组团", "4. Bundles of nearby spaces"),
    "revenue": ("五、更新模式比较", "5. Renewal models compared"),
    "no_scenario": (
        "没有针对本社区的更新方案：用 --scenario 指定方案文件。",
        "No scenario names this community: give one with --scenario.",
    ),
    "sources": ("六、数据来源", "6. Where the data came from"),
    "policy": ("产权问题规则", "Title-gap rules"),
    "none": ("无", "None"),
    "north": ("北", "N"),
    "figure": ("指标", "Figure"),
    "cash_flow": ("累计净现金流", "Cumulative net cash flow"),
    "bundle_gap": ("组团间距", "Bundle gap"),
    "legend": ("产权状况", "Title status"),
    "boundary": ("社区边界", "Community boundary"),
    "bundle": ("空间组团", "Bundle"),
}

#: Figures of a renewal model (the revenue tables" rows) → (Chinese, English).
FIGURES: dict[str, tuple[str, str]] = {
    "scenario": ("方案", "Scenario"),
    "file": ("方案文件", "File"),
    "model": ("更新模式", "Model"),
    "place": ("范围", "Place"),
    "renovation_revenue_wan": ("改造期收入（万元）", "Renovation revenue (10k yuan)"),
    "renovation_cost_wan": ("改造投入（万元）", "Renovation cost (10k yuan)"),
    "renovation_balance_wan": ("改造期收支（万元）", "Renovation balance (10k yuan)"),
    "mature_revenue_wan": ("成熟期年收入（万元）", "Mature revenue (10k yuan/yr)"),
    "mature_operating_cost_wan": (
        "成熟期年运营成本（万元）",
        "Mature operating cost (10k yuan/yr)",
    ),
    "operation_balance_wan": ("运营期收支（万元）", "Operation balance (10k yuan)"),
    "payback_year": ("回收期（年）", "Payback (year)"),
    "npv_wan": ("净现值（万元）", "NPV (10k yuan)"),
    "irr_pct": ("内部收益率（%）", "IRR (%)"),
    "coverage_pct": ("资金覆盖率（%）", "Coverage (%)"),
    "who_pays": ("出资方", "Who pays"),
    "rent_wan": ("年租金（万元）", "Rent (10k yuan/yr)"),
    "parking_wan": ("停车收入（万元）", "Parking (10k yuan/yr)"),
    "property_fee_wan": ("物业费（万元）", "Property fees (10k yuan/yr)"),
    "services_wan": ("便民服务收入（万元）", "Services (10k yuan/yr)"),
    "revenue_wan": ("成熟期年收入（万元）", "Revenue (10k yuan/yr)"),
    "operating_cost_wan": ("成熟期年运营成本（万元）", "Operating cost (10k yuan/yr)"),
    "irr_unique": ("内部收益率唯一", "IRR unique"),
    "discounted_payback_year": ("动态回收期（年）", "Discounted payback (year)"),
    "payback_month": ("回收期（月）", "Payback (month)"),
    "discounted_payback_month": ("动态回收期（月）", "Discounted payback (month)"),
}

#: Code values the command line shows in its tables → (Chinese, English). Kinds, owner
#: types and the other surveyed codes have their labels in :mod:`inventory.codes`; title
#: gaps in their policy.
VALUES: dict[str, tuple[str, str]] = {
    # revenue cases, stages and lines
    "as surveyed": ("按现状", "as surveyed"),
    "clean titles only": ("仅产权清晰", "clean titles only"),
    "all gaps resolved": ("产权问题全部解决", "all gaps resolved"),
    "renovation": ("改造期", "renovation"),
    "operation": ("运营期", "operation"),
    "Co works": ("Co 改造投入", "Co works"),
    "Ro contribution": ("Ro 出资", "Ro contribution"),
    "Ro sale": ("Ro 出售收入", "Ro sale"),
    "So balance": ("So 改造期收支", "So balance"),
    "Rk stream": ("Rk 收入", "Rk stream"),
    "Ck stream cost": ("Ck 成本", "Ck stream cost"),
    "Sk balance": ("Sk 运营期收支", "Sk balance"),
    "subsidy (all years)": ("补贴（全部年份）", "subsidy (all years)"),
    # revenue streams
    "rent": ("租金", "rent"),
    "parking": ("停车", "parking"),
    "property_fee": ("物业费", "property fees"),
    "services": ("便民服务", "services"),
    "advertising": ("广告", "advertising"),
    "ev_charging": ("充电", "EV charging"),
    "sale": ("出售", "sale"),
    # who pays
    "operator": ("运营方", "operator"),
    "government": ("政府", "government"),
    "district": ("区政府", "district"),
    "city": ("市政府", "city"),
    "residents": ("居民", "residents"),
    "owner": ("产权单位", "owner unit"),
    # hosts of a use
    "space": ("单个空间", "space"),
    "bundle": ("空间组团", "bundle"),
    # import issues
    "rejected": ("拒收", "rejected"),
    "repaired": ("已修复", "repaired"),
    "flagged": ("已标记", "flagged"),
}

#: The command line's sentences and frames → (Chinese, English), as str.format templates.
CLI: dict[str, tuple[str, str]] = {
    # tables
    "first_rows": (
        "仅显示前 {shown} 行，共 {total:,} 行；{get_all}。",
        "The first {shown} of {total:,} rows; {get_all}.",
    ),
    "get_all": ("--output FILE 可写出全部", "--output FILE writes them all"),
    "left_out": (
        "终端宽度不足，未显示：{columns}；--output FILE 包含这些列。",
        "Left out to fit the terminal: {columns}; --output FILE has them.",
    ),
    "written": ("{rows} 行（{layer}）已写入 {target}", "{rows} rows ({layer}) written to {target}"),
    "written_spaces": ("{rows} 个空间已写入 {target}", "{rows} spaces written to {target}"),
    "written_rejects": (
        "{rows} 个拒收要素已写入 {target}",
        "{rows} rejected features written to {target}",
    ),
    "stdout_first": (
        "只有第一个图层（{layer}）写到了标准输出；--output FILE 可写出全部。",
        "Only the first layer ({layer}) went to stdout; --output FILE writes all.",
    ),
    "per_community": ("按社区汇总", "Per community"),
    "bundle_members": ("组团成员", "Bundle members"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "more": ("；… 另有 {more:,} 项（--report FILE）", "; … and {more:,} more (--report FILE)"),
    # init, info
    "store_ready": (
        "存储已就绪：{backend}，位于 {location}（结构版本 {revision}，{spatial}）。",
        "Store ready: {backend} at {location} (schema revision {revision}, {spatial}).",
    ),
    "backend": ("后端", "Backend"),
    "location": ("位置", "Location"),
    "schema": ("结构版本", "Schema"),
    "contents": ("内容", "Contents"),
    "schema_none": ("未初始化：请运行 `inventory init`", "not initialised — run `inventory init`"),
    "schema_current": ("{revision}（最新）", "{revision} (up to date)"),
    "schema_old": (
        "{revision}（本版本需要 {head}：请运行 `inventory init`）",
        "{revision} (this version needs {head}: run `inventory init`)",
    ),
    "contents_counts": (
        "{communities} 个社区，{spaces} 个空间",
        "{communities} communities, {spaces} spaces",
    ),
    "contents_retired": ("（另有 {retired} 个已退出）", " (and {retired} retired)"),
    "contents_rest": (
        "，{batches} 个导入批次，{rejected} 个拒收要素",
        ", {batches} import batches, {rejected} rejected features",
    ),
    "contents_open": ("待修正（{resolved} 个已修正）", " open ({resolved} resolved)"),
    "by_community_kind": ("按社区和类型统计的空间", "Spaces by community and kind"),
    "by_community_kind_all": (
        "inventory capacity --by community,kind --output FILE 可写出全部",
        "inventory capacity --by community,kind --output FILE writes them all",
    ),
    # import report
    "dry_run": ("试运行，未写入任何内容：", "Dry run — nothing written: "),
    "in_layer": ("（图层 {layer}）", " (layer {layer})"),
    "features": ("要素", "Features"),
    "features_counts": (
        "读取 {read} = 新增 {loaded} + 更新 {updated} + 未变 {unchanged} + 拒收 {rejected}",
        "read {read} = loaded {loaded} + updated {updated} + unchanged {unchanged} + rejected {rejected}",
    ),
    "encoding": ("编码", "Encoding"),
    "crs": ("坐标系", "CRS"),
    "fields_mapped": ("字段对应", "Fields mapped"),
    "none": ("无", "none"),
    "extra_attributes": ("保留为其他属性", "Kept as extra attributes"),
    "new_communities": ("新建社区", "New communities"),
    "updated_fields": ("更新的字段", "Updated fields"),
    "duplicates": ("疑似重复", "Probable duplicates"),
    "duplicates_note": (
        "：已导入并标记；--match-geometry 改为更新已有空间",
        " — loaded and flagged; --match-geometry updates them instead",
    ),
    "matched": ("按位置匹配", "Matched by location"),
    "rejects_resolved": ("已修正的拒收", "Rejects resolved"),
    "rejects_resolved_n": ("之前批次中的 {n} 个", "{n} of earlier batches"),
    "retired_delivered": ("已退出又交付", "Retired, delivered again"),
    "retired_note": (
        "（已更新，仍为退出状态：inventory retire REF --undo）",
        " (updated, still retired: inventory retire REF --undo)",
    ),
    "batch": ("批次", "Batch"),
    "issues": ("拒收、修复和标记的要素", "Rejected, repaired and flagged features"),
    "row": ("行", "Row"),
    "survey_ref": ("编号", "Survey ref"),
    "status": ("状态", "Status"),
    "reasons": ("原因", "Reasons"),
    "issues_more": ("… 另有 {n} 条：用 --report FILE 查看。", "… and {n} more: use --report FILE."),
    "report_written": ("报告已写入 {path}", "Report written to {path}"),
    "rights_read": (
        "{source}：读取 {read} 行，记录 {loaded} 项权利，隔离 {rejected} 行（批次 {batch}）。",
        "{source}: {read} rows read, {loaded} rights recorded, {rejected} quarantined (batch {batch}).",
    ),
    "columns_unused": ("未使用的列：{columns}。", "Columns not used: {columns}."),
    "quarantined_rows": ("隔离的行", "Quarantined rows"),
    # gaps, bundles, capacity
    "spaces_with_gaps": ("{n} 个空间存在产权问题", "{n} spaces with title gaps"),
    "bundles": ("{n} 个空间组团", "{n} bundles"),
    "bundles_within": ("{{n}} 个空间组团（间距 {gap:g} 米以内）", "{{n}} bundles within {gap:g} m"),
    "capacity": ("可用空间", "Capacity"),
    "gaps_or_flags": (
        "{{n}} 个空间存在产权问题或数据质量提示",
        "{{n}} spaces with title gaps or data-quality flags",
    ),
    "hosts_for": (
        "{{n}} 处可承接 {need:g} ㎡，优者在前",
        "{{n}} places can host {need:g} m², best first",
    ),
    "n_spaces": ("{n} 个空间", "{n} spaces"),
    "capacity_by_kind_tenure": ("按类型和产权状况", "By kind and tenure"),
    "canteen_hosts": (
        "可承接 150 ㎡ 食堂的场所（距中心 300 米内，优者在前）",
        "Who can host a 150 m² canteen within 300 m of the centre, best first",
    ),
    # revenue
    "wan": ("万元", "10k yuan"),
    "stages": (
        "现状各阶段：改造期 So = Ro − Co，运营期（第 {year} 年）Sk = Rk − Ck，{unit}",
        "Stages as surveyed: renovation So = Ro − Co, operation (year {year}) Sk = Rk − Ck, {unit}",
    ),
    "compared": ("更新模式比较（按现状），{unit}", "Renewal models compared (as surveyed), {unit}"),
    "pnl": (
        "各收入来源的收支，第 {year} 年，{unit}",
        "Profit and loss by stream, year {year}, {unit}",
    ),
    "stream_short": (
        "{stream}每年亏损 {loss:,.1f} {unit}",
        "{stream} runs ¥{yuan:,.0f} a year short",
    ),
    "stream_share": (
        "，相当于其他来源收入的 {share:.1f}%",
        ": {share:.1f}% of the other streams' revenue",
    ),
    "stream_break_even": (
        "；管理建筑面积达到 {area:,.0f} ㎡ 时收支平衡",
        "; it breaks even at {area:,.0f} m² of managed floor area",
    ),
    "full_stop": ("。", "."),
    "package_communities": ("片区内各社区，{unit}", "Communities of the package, {unit}"),
    "coverage": (
        "收益可覆盖 {coverage:.0%} 的改造投入，即 {floor_area_m2:,.0f} ㎡ 建筑面积中的 {funded_floor_area_m2:,.0f} ㎡。",
        "Coverage: the revenue can fund {coverage:.0%} of the works, i.e. {funded_floor_area_m2:,.0f} of {floor_area_m2:,.0f} m² of floor area.",
    ),
    "who_pays": ("改造出资：{shares}", "Who pays the renovation: {shares}"),
    "list_sep": ("，", ", "),
    "at_risk": (
        "现状下，有产权问题的空间带来 {rent:.0%} 的租金（占全部收入的 {revenue:.0%}）。",
        "Spaces with title gaps bring {rent:.0%} of the rent ({revenue:.0%} of all revenue) in the surveyed case.",
    ),
    "at_risk_table": (
        "有产权问题的空间：问题说明、现状与理顺后的租金，{unit}",
        "Spaces with title gaps: what each gap is, rent as surveyed and resolved, {unit}",
    ),
    "blocked": (
        "产权障碍使 {refs} 无法产生收益：理顺后每年 {rent:,.1f} {unit}。",
        "Blocking gaps keep {refs} from earning: ¥{yuan:,.0f} a year once resolved.",
    ),
    "irr_not_unique": (
        "{variant}：现金流 {n} 次变号，内部收益率可能不唯一。",
        "{variant}: cash flows change sign {n} times; the IRR may not be unique.",
    ),
    "cash_flow": ("{period}现金流（现状），{unit}", "{period} cash flow as surveyed, {unit}"),
    "period_year": ("年度", "Yearly"),
    "period_month": ("月度", "Monthly"),
    "plot_written": ("图已写入 {path}", "Plot written to {path}"),
    # demo
    "demo_store": ("1. 存储", "1. Store"),
    "demo_fresh": (
        "新建 SpatiaLite 库 {db}，结构版本 {revision}。",
        "Fresh SpatiaLite store {db} at schema revision {revision}.",
    ),
    "demo_import": ("2. 导入样例调查数据", "2. Import the sample survey"),
    "demo_info": ("3. 库中内容", "3. What the store holds"),
    "demo_gaps": ("4. 产权问题", "4. Title gaps"),
    "demo_bundles": ("5. 间距 {gap:g} 米以内的空间组团", "5. Bundles within {gap:g} m"),
    "demo_capacity": ("6. 可用空间", "6. Capacity"),
    "demo_revenue": ("7. 收益测算（劲松方案）", "7. Revenue (Jinsong scenario)"),
    "demo_exports": ("8. 导出文件", "8. Exports"),
    "map_written": (
        "{n} 个空间的地图已写入 {path}（{kb:,.0f} KB）",
        "Map of {n} spaces written to {path} ({kb:,.0f} KB)",
    ),
    "offline": ("；离线即可打开。", "; it opens offline."),
    "online": ("；底图瓦片需要联网。", "; its tiles need the internet."),
    "pack_written": (
        "{community}的会议资料已写入 {path}（{kb:,.0f} KB）：{spaces} 个空间，{gaps} 个有产权问题，{bundles} 个组团，比较 {models} 种更新模式。",
        "Meeting pack of {community} written to {path} ({kb:,.0f} KB): {spaces} spaces, {gaps} with a title gap, {bundles} bundles, {models} renewal models compared.",
    ),
}

#: The words of the cash-flow plots → (Chinese, English).
PLOT: dict[str, tuple[str, str]] = {
    "year_of_concession": ("运营年份", "Year of concession"),
    "year": ("运营年份", "Year"),
    "cumulative": ("累计净现金流（万元）", "Cumulative net cash flow (10,000 yuan)"),
    "compared": ("更新模式比较", "Renewal models compared"),
}

#: Notes of the importer shown in its report → (Chinese, English).
NOTES: dict[str, tuple[str, str]] = {
    "detected: GBK/GB18030 Chinese text (no .cpg)": (
        "自动识别为 GBK/GB18030 中文（无 .cpg 文件）",
        "detected: GBK/GB18030 Chinese text (no .cpg)",
    ),
    "from the file": ("取自文件", "from the file"),
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
        if lang is None:  # from the environment: name the variable the user set
            raise InputError(
                f"INVENTORY_LANG={os.environ['INVENTORY_LANG']} is not a language here: "
                "set it to zh or en, or unset it."
            )
        raise InputError(f"`lang={lang}` is not a language here: use zh or en.")
    return chosen


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[0] if lang == "zh" else pair[1]


def column(name: str, lang: str | None) -> str:
    """Return the header of column ``name`` in ``lang`` (the name itself without one)."""
    return word(COLUMNS, name, lang)


def layer(name: str, lang: str | None) -> str:
    """Return the name of an export layer (a workbook's sheet) in ``lang``."""
    return word(LAYERS, name, lang)


def title_status(status: str | None, lang: str = "zh") -> str | None:
    """Return the label of a title status (clean, minor, transitional, blocking)."""
    return None if status is None else _pick(TITLE_STATUS[status], lang)


def word(table: dict[str, tuple[str, str]], key: str, lang: str | None) -> str:
    """Return ``key``'s word in ``lang`` from one of the catalogue's tables (``key`` if none)."""
    pair = table.get(key)
    return key if pair is None or lang is None else _pick(pair, lang)


def words(table: dict[str, tuple[str, str]], lang: str) -> dict[str, str]:
    """Return a table of the catalogue as key → word in ``lang``."""
    return {key: _pick(pair, lang) for key, pair in table.items()}


def phrase(key: str, lang: str | None, **values) -> str:
    """Return the command line's sentence ``key`` in ``lang`` (English without one), filled in."""
    return _pick(CLI[key], lang or "en").format(**values)


_CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def one_language(text: str | None, lang: str | None) -> str | None:
    """Return the part in ``lang`` of a label written in Chinese, then English.

    ``劲松北社区 活化经营 Jinsong North activation`` and ``权属争议 / ownership disputed``
    are such labels; any other text, and any text without a language, comes back as it is.
    """
    if text is None or lang is None or not isinstance(text, str):
        return text
    if "; " in text:
        return "; ".join(one_language(part, lang) for part in text.split("; "))
    parts = text.split(" + ")
    if len(parts) > 1 and all(_CJK.match(p) for p in parts):  # a model of two: A + B
        return " + ".join(one_language(p, lang) for p in parts)
    if " / " in text:
        zh, en = text.split(" / ", 1)
        if _CJK.search(zh) and not _CJK.search(en):
            return zh if lang == "zh" else en
    ends = [m.end() for m in _CJK.finditer(text)]
    if not ends:
        return text
    cut = text.find(" ", ends[-1])
    if cut < 0 or not _CJK.search(text[0]):
        return text
    zh, en = text[:cut].strip(), text[cut:].strip()
    return zh if lang == "zh" else en


def labelled(frame, lang: str | None):
    """Return a copy of a result table with its code values as words in ``lang``.

    Kinds, the surveyed codes, title statuses and gaps, bilingual labels and the command
    line's own codes (:data:`VALUES`) are replaced; other values and the frame without a
    language are returned as they are.
    """
    if lang is None:
        return frame
    from inventory import codes
    from inventory.gaps import gap_label

    lists = {
        "kind": codes.KIND,
        "kinds": codes.KIND,
        "vacancy": codes.VACANCY,
        "condition": codes.CONDITION,
        "owner_type": codes.OWNER_TYPE,
        "land_type": codes.LAND_TYPE,
        "certificate_status": codes.CERTIFICATE_STATUS,
        "party_type": codes.PARTY_TYPE,
        "holder_type": codes.PARTY_TYPE,
    }

    def code(values: list, value):
        if isinstance(value, list | tuple):
            return [code(values, v) for v in value]
        return values.label(value, lang) if value in values else value

    def status(value):
        return title_status(value, lang) if value in TITLE_STATUS else value

    def gaps(value):
        if isinstance(value, list | tuple):
            return [gap_label(g, lang) for g in value]
        return value

    def shares(value):  # "政府 Government 61%, 运营方 Operator 39%"
        if not isinstance(value, str):
            return value
        parts = [re.fullmatch(r"(.+) (\d+%)", part) for part in value.split(", ")]
        if not all(parts):
            return value
        return _pick(("，", ", "), lang).join(f"{one_language(m[1], lang)} {m[2]}" for m in parts)

    def own(value):
        if isinstance(value, str) and value in VALUES:
            return _pick(VALUES[value], lang)
        return one_language(value, lang) if isinstance(value, str) else value

    out = frame.copy()
    for column in out.columns:
        if column in lists:
            values = lists[column]
            out[column] = [code(values, v) for v in out[column]]
        elif column in ("gap_severity", "title", "tenure_status", "title_status"):
            out[column] = [status(v) for v in out[column]]
        elif column == "who_pays":
            out[column] = [shares(v) for v in out[column]]
        elif column == "gaps":
            out[column] = [gaps(v) for v in out[column]]
        elif column in (
            "gap_detail",
            "item",
            "stage",
            "line",
            "stream",
            "party",
            "host",
            "variant",
            "scenario",
            "model",
        ):
            out[column] = [own(v) for v in out[column]]
    return out
