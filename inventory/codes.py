"""Code lists: kinds of space, owner types, land types, certificate statuses...

Defined once here. Each code has a Chinese and an English label and the aliases a
surveyor's file may use for it; the database stores the code and checks it against
the same list (see :mod:`inventory.models`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Code:
    """One entry of a code list."""

    code: str
    zh: str
    en: str
    aliases: tuple[str, ...] = ()

    def label(self, lang: str = "en") -> str:
        """Return the label in ``lang`` ("zh" or "en")."""
        return self.zh if lang == "zh" else self.en


def normalise(value: object) -> str:
    """Fold a raw value for alias matching: NFKC, case, spaces, dashes and underscores."""
    text = unicodedata.normalize("NFKC", str(value)).strip().casefold()
    return re.sub(r"[\s_\-/／、]+", "", text)


@dataclass(frozen=True)
class CodeList:
    """An ordered set of codes with bilingual labels and import aliases."""

    name: str
    zh: str
    entries: tuple[Code, ...]
    _index: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for entry in self.entries:
            for key in (entry.code, entry.zh, entry.en, *entry.aliases):
                folded = normalise(key)
                other = self._index.setdefault(folded, entry.code)
                if other != entry.code:
                    raise ValueError(
                        f"Alias {key!r} of code list {self.name!r} names both {other!r} "
                        f"and {entry.code!r}; an alias must be unique."
                    )

    @property
    def codes(self) -> tuple[str, ...]:
        """All codes, in their defined order."""
        return tuple(e.code for e in self.entries)

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def __iter__(self):
        return iter(self.entries)

    def get(self, code: str) -> Code:
        """Return the entry for ``code``; raise KeyError naming the valid codes."""
        for entry in self.entries:
            if entry.code == code:
                return entry
        raise KeyError(f"{code!r} is not a {self.name}; valid codes: {', '.join(self.codes)}")

    def label(self, code: str | None, lang: str = "en") -> str:
        """Return the label of ``code`` in ``lang``, or an empty string for None."""
        return "" if code is None else self.get(code).label(lang)

    def match_all(self, values: str | list[str] | tuple[str, ...] | None, param: str) -> list[str]:
        """Return the codes of ``values`` (codes, labels or aliases), in order.

        Raises:
            InputError: a value matches no code; the message names ``param`` and the value.

        """
        from inventory.errors import InputError

        codes = []
        for value in [values] if isinstance(values, str) else values or []:
            code = self.match(value)
            if code is None:
                raise InputError(
                    f"`{param}={value!r}` is not a {self.name}; {self.name}s: "
                    f"{', '.join(self.codes)}."
                )
            codes.append(code)
        return codes

    def match(self, value: object) -> str | None:
        """Return the code whose code, label or alias equals ``value`` (folded), else None.

        A value that is not an exact alias but contains exactly one alias of at least
        two characters (e.g. "原锅炉房（闲置）") matches that alias's code.
        """
        if value is None:
            return None
        folded = normalise(value)
        if not folded:
            return None
        exact = self._index.get(folded)
        if exact is not None:
            return exact
        hits = {
            code
            for alias, code in self._index.items()
            if len(alias) >= 2 and not alias.isascii() and alias in folded
        }
        return hits.pop() if len(hits) == 1 else None


KIND = CodeList(
    "kind",
    "空间类型",
    (
        Code("boiler_room", "锅炉房", "Boiler room", ("锅炉", "原锅炉房", "boiler", "boilerhouse")),
        Code("coal_yard", "堆煤场", "Coal yard", ("煤场", "储煤场", "coal", "coalyard")),
        Code(
            "bike_shed",
            "自行车棚",
            "Bike shed",
            ("车棚", "非机动车棚", "自行车库", "bicycle shed", "bikeshed", "bicycle"),
        ),
        Code(
            "gatehouse",
            "门房",
            "Gatehouse",
            ("门卫室", "传达室", "门卫", "gate house", "guardroom"),
        ),
        Code(
            "basement",
            "地下室/人防",
            "Basement / air-raid shelter",
            ("地下室", "人防", "人防工程", "地下空间", "防空洞", "air raid shelter", "shelter"),
        ),
        Code("idle_land", "闲置空地", "Idle land", ("空地", "闲置地", "闲置用地", "vacant land")),
        Code(
            "parking",
            "停车场",
            "Parking",
            ("停车位", "车位", "停车", "停车区", "parking lot", "car park", "carpark"),
        ),
        Code(
            "service_room",
            "配套用房",
            "Service / public rental room",
            ("公房", "配套", "公共用房", "社区用房", "公建配套", "public rental room", "service"),
        ),
        # Resources of the renewal models (see inventory.scenario): flats for conversion
        # and master lease, shops for block operation, land parcels for fat-thin pooling,
        # and facilities counted rather than measured (points, or one point per community,
        # with a count in ``units``).
        Code(
            "dwelling",
            "住宅",
            "Dwelling / residential building",
            ("住宅楼", "居民楼", "住宅单元", "商品房", "dwelling", "residential", "housing"),
        ),
        Code(
            "public_housing",
            "公房住宅",
            "Public-housing flats",
            ("直管公房", "公有住房", "公租房", "单位公房", "public housing", "publichousing"),
        ),
        Code("shop", "店铺", "Street shop", ("底商", "商铺", "门面", "门面房", "沿街商铺", "shop")),
        Code(
            "land_parcel",
            "资源地块",
            "Resource land parcel",
            ("地块", "出让地块", "经营性地块", "land parcel", "parcel"),
        ),
        Code("ev_charger", "充电桩", "EV charging posts", ("充电设施", "charging post", "charger")),
        Code(
            "ad_spot", "广告位", "Advertising spots", ("广告牌", "广告", "advertising", "billboard")
        ),
        Code("lift", "电梯", "Lifts", ("加装电梯", "直梯", "elevator", "lift")),
        Code("other", "其他", "Other", ("其它",)),
    ),
)
#: Kinds counted rather than measured: a point (or one point for a community) with ``units``.
COUNTED_KINDS = ("ev_charger", "ad_spot", "lift")
#: Kinds that are not stock micro-spaces: bundles and the stock-space totals leave them out
#: unless asked for by name (they are resources the renewal models count or sell).
NOT_MICRO_SPACE = ("parking", "dwelling", "public_housing", "shop", "land_parcel", *COUNTED_KINDS)

OWNER_TYPE = CodeList(
    "owner type",
    "权属主体类型",
    (
        Code("government", "政府", "Government", ("政府机关", "街道", "区政府", "房管局", "gov")),
        Code("state_enterprise", "国有企业", "State enterprise", ("国企", "国有", "soe")),
        Code("work_unit", "单位", "Work unit", ("产权单位", "原单位", "事业单位", "单位自管")),
        Code("private", "个人", "Private", ("私人", "私有", "业主")),
        Code("collective", "集体", "Collective", ("集体所有", "村集体")),
        Code("unknown", "不详", "Unknown", ("不明", "未知", "权属不清", "无")),
    ),
)

LAND_TYPE = CodeList(
    "land type",
    "土地性质",
    (
        Code("allocated", "划拨", "Allocated (划拨)", ("划拨用地", "划拨地")),
        Code("granted", "出让", "Granted (出让)", ("出让用地", "出让地")),
        Code("unknown", "不详", "Unknown", ("不明", "未知")),
    ),
)

CERTIFICATE_STATUS = CodeList(
    "certificate status",
    "产权证状态",
    (
        Code("complete", "完整", "Complete", ("齐全", "有", "有证", "已办", "yes")),
        Code("partial", "不完整", "Partial", ("部分", "手续不全", "不全")),
        Code("missing", "缺失", "Missing", ("无", "无证", "未办", "没有", "no", "none")),
        Code("unknown", "不详", "Unknown", ("不明", "未知")),
    ),
)

VACANCY = CodeList(
    "vacancy",
    "使用状态",
    (
        Code("idle", "闲置", "Idle", ("空置", "废弃", "vacant")),
        Code("under_used", "低效利用", "Under-used", ("低效", "部分使用", "部分闲置", "underused")),
        Code("in_use", "在用", "In use", ("使用中", "正常使用", "已使用", "used")),
    ),
)

CONDITION = CodeList(
    "condition",
    "房屋状况",
    (
        Code("good", "良好", "Good", ("好", "完好")),
        Code("fair", "一般", "Fair", ("中", "尚可")),
        Code("poor", "较差", "Poor", ("差", "破损", "危旧", "失修")),
        Code("unknown", "不详", "Unknown", ("不明", "未知")),
    ),
)

PARTY_TYPE = CodeList(
    "party type",
    "主体类型",
    (
        Code("person", "个人", "Person", ("居民", "业主", "自然人", "private")),
        Code("work_unit", "单位", "Work unit", ("产权单位", "原单位", "事业单位")),
        Code("government", "政府部门", "Government body", ("政府", "街道", "街道办事处", "房管局")),
        Code("state_enterprise", "国有企业", "State enterprise", ("国企", "国有")),
        Code("residents_committee", "居委会", "Residents' committee", ("社区居委会", "居民委员会")),
        Code("operator", "运营方", "Operator", ("运营商", "运营单位", "社会资本")),
        Code("collective", "集体", "Collective", ("集体所有", "村集体")),
        Code("unknown", "不详", "Unknown", ("不明", "未知")),
    ),
)

RIGHT_KIND = CodeList(
    "right kind",
    "权利类型",
    (
        Code("ownership", "所有权", "Ownership", ("产权", "房屋所有权", "owner")),
        Code("use_right", "使用权", "Use right", ("土地使用权", "use")),
        Code("operating_right", "经营权", "Operating right / concession", ("特许经营", "运营权")),
        Code("lease", "租赁", "Lease", ("租约", "承租", "转租", "sublet")),
        Code("transitional_permit", "临时许可", "Transitional permit", ("临时许可意见", "permit")),
        Code("change_of_use", "用途变更", "Change-of-use approval", ("改变用途", "变更审批")),
    ),
)

RIGHT_STATUS = CodeList(
    "right status",
    "权利状态",
    (
        Code("active", "有效", "Active", ("生效", "在用")),
        Code("ended", "终止", "Ended", ("已终止", "到期")),
        Code("none", "未申请", "Not applied for", ("无",)),
        Code("applied", "已申请", "Applied for", ("申请中",)),
        Code("approved", "已批准", "Approved", ("批准",)),
        Code("refused", "未批准", "Refused", ("驳回", "不予批准")),
    ),
)

SOURCE_KIND = CodeList(
    "source kind",
    "来源文件类型",
    (
        Code("certificate", "权属证书", "Certificate", ("房产证", "产权证", "不动产权证")),
        Code("contract", "合同", "Contract", ("租赁合同", "协议", "特许经营协议")),
        Code("permit_letter", "许可文件", "Permit letter", ("临时许可意见书", "批复")),
        Code("minutes", "会议纪要", "Meeting minutes", ("纪要", "议事记录")),
        Code("other", "其他", "Other", ("其它",)),
    ),
)

ALL_CODE_LISTS: dict[str, CodeList] = {
    "kind": KIND,
    "owner_type": OWNER_TYPE,
    "land_type": LAND_TYPE,
    "certificate_status": CERTIFICATE_STATUS,
    "vacancy": VACANCY,
    "condition": CONDITION,
    "party_type": PARTY_TYPE,
    "right_kind": RIGHT_KIND,
    "right_status": RIGHT_STATUS,
    "source_kind": SOURCE_KIND,
}
