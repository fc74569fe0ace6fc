import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from inventory.codes import ALL_CODE_LISTS, CERTIFICATE_STATUS, KIND, LAND_TYPE, OWNER_TYPE
from inventory.models import Community, Space


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("锅炉房", "boiler_room"),
        ("堆煤场", "coal_yard"),
        ("自行车棚", "bike_shed"),
        ("门房", "gatehouse"),
        ("地下室", "basement"),
        ("人防", "basement"),
        ("闲置空地", "idle_land"),
        ("停车场", "parking"),
        ("配套用房", "service_room"),
        ("公房", "service_room"),
        ("其他", "other"),
        ("Boiler Room", "boiler_room"),
        ("bike_shed", "bike_shed"),
        (" ＢＩＫＥ shed ", "bike_shed"),  # full-width letters from Chinese input methods
        ("原锅炉房（闲置）", "boiler_room"),
    ],
)
def test_kind_aliases(raw, code):
    assert KIND.match(raw) == code


def test_unknown_and_ambiguous_values_do_not_match():
    assert KIND.match("仓库") is None
    assert KIND.match("") is None
    assert KIND.match(None) is None
    # names two kinds: refuse to guess
    assert KIND.match("锅炉房及堆煤场") is None


def test_tenure_code_lists():
    assert LAND_TYPE.match("划拨") == "allocated"
    assert LAND_TYPE.match("出让") == "granted"
    assert OWNER_TYPE.match("国企") == "state_enterprise"
    assert OWNER_TYPE.match("产权单位") == "work_unit"
    assert CERTIFICATE_STATUS.match("无") == "missing"
    assert CERTIFICATE_STATUS.match("有") == "complete"


@pytest.mark.parametrize("name", sorted(ALL_CODE_LISTS))
def test_every_code_has_both_labels(name):
    for entry in ALL_CODE_LISTS[name]:
        assert entry.zh and entry.en
        assert any("\u4e00" <= ch <= "\u9fff" for ch in entry.zh), entry
        assert ALL_CODE_LISTS[name].label(entry.code, "zh") == entry.zh


def test_store_refuses_a_code_outside_the_list(engine):
    with engine.begin() as conn:
        cid = conn.execute(insert(Community).values(name="X").returning(Community.id)).scalar()
    with pytest.raises(IntegrityError, match="ck_space_kind_code"):
        with engine.begin() as conn:
            conn.execute(
                insert(Space).values(
                    community_id=cid,
                    survey_ref="A",
                    kind="warehouse",
                    geom="SRID=4326;POINT(116.4 39.9)",
                )
            )
