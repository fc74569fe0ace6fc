"""Tenure as records: the survey's columns become parties and rights, rights are recorded
with their sources and history, bad records are refused whole; both backends."""

from __future__ import annotations

import hashlib
from datetime import date

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from inventory import store, tenure
from inventory.cli import app
from inventory.errors import InputError
from inventory.gaps import title_gaps_in_store
from inventory.models import Community, Party, Space, TenureEvent, TenureRight, TenureSource
from tests.util import store_at_revision


def _count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def test_upgrading_turns_the_survey_columns_into_records(empty_db_url):
    from geoalchemy2 import WKTElement

    engine = store_at_revision(empty_db_url, "0002")
    spaces = [
        {
            "survey_ref": "JS-013",
            "kind": "boiler_room",
            "owner_name": "北京市热力集团",
            "owner_type": "state_enterprise",
            "tenure_source_ref": "京房权证朝字第013号",
        },
        {
            "survey_ref": "JS-011",
            "kind": "basement",
            "owner_name": "劲松一建公司/劲松房管所",
            "owner_type": "work_unit",
            "disputed": True,
        },
        {
            "survey_ref": "JS-007",
            "kind": "service_room",
            "owner_name": "劲松街道办事处",
            "owner_type": "government",
            "operating_right_holder": "愿景集团",
            "operating_right_start": date(2019, 1, 1),
            "operating_right_end": date(2038, 12, 31),
        },
        {"survey_ref": "JS-099", "kind": "bike_shed", "owner_name": None, "owner_type": "unknown"},
    ]
    with engine.begin() as conn:
        cid = conn.execute(insert(Community).values(name="劲松北社区").returning(Community.id))
        cid = cid.scalar_one()
        for i, row in enumerate(spaces):
            point = WKTElement(f"POINT(116.46{i} 39.88)", srid=4326)
            conn.execute(insert(Space.__table__).values(community_id=cid, geom=point, **row))
    assert store.init(engine) == store.head_revision()
    assert _count(engine, Space) == 4  # every space kept
    with engine.connect() as conn:
        rights = conn.execute(
            select(
                Space.survey_ref,
                TenureRight.kind,
                Party.name,
                Party.party_type,
                TenureRight.share,
                TenureRight.end_date,
                TenureRight.origin,
            )
            .join(Space, Space.id == TenureRight.space_id)
            .join(Party, Party.id == TenureRight.holder_id)
            .order_by(Space.survey_ref, TenureRight.id)
        ).all()
        certificate = conn.execute(select(TenureSource.kind, TenureSource.number)).all()
    assert [tuple(r) for r in rights] == [
        ("JS-007", "ownership", "劲松街道办事处", "government", 1.0, None, "survey"),
        ("JS-007", "operating_right", "愿景集团", "operator", None, date(2038, 12, 31), "survey"),
        ("JS-011", "ownership", "劲松一建公司", "work_unit", None, None, "survey"),
        ("JS-011", "ownership", "劲松房管所", "work_unit", None, None, "survey"),
        ("JS-013", "ownership", "北京市热力集团", "state_enterprise", 1.0, None, "survey"),
    ]
    assert certificate == [("certificate", "京房权证朝字第013号")]
    engine.dispose()


def test_the_survey_shows_as_records_with_shares_flagged(engine, sample):
    view = tenure.tenure_of(engine, "JS-011")
    owners = view["rights"][view["rights"]["kind"] == "ownership"]
    assert set(owners["holder"]) == {"劲松一建公司", "劲松房管所"}
    assert "shares add up to 0" in owners["shares_flag"].iloc[0]


def test_recording_shares_a_permit_a_lease_chain_and_a_document(engine, sample, tmp_path):
    # the owners' agreement gives JS-011's shares: recorded rights, survey ones replaced later
    tenure.record_right(
        engine,
        "JS-011",
        "ownership",
        "劲松一建公司",
        holder_type="work_unit",
        share=0.6,
        why="产权协议",
    )
    with pytest.raises(InputError, match=r"`share=0.5`: JS-011's owners already hold 0.6"):
        tenure.record_right(engine, "JS-011", "所有权", "劲松房管所", share=0.5)
    tenure.record_right(engine, "JS-011", "所有权", "劲松房管所", share=0.4)
    # a chain: owner → street office lease → operator sublet
    lease = tenure.record_right(
        engine,
        "JS-011",
        "lease",
        "劲松街道办事处",
        holder_type="government",
        granted_by="劲松一建公司",
        start=date(2020, 1, 1),
        end=date(2029, 12, 31),
        rent_yuan_year=20000,
    )
    with pytest.raises(InputError, match="which ends 2029-12-31; a lease cannot outlast"):
        tenure.record_right(
            engine, "JS-011", "lease", "愿景集团", parent=lease.right_id, end=date(2035, 1, 1)
        )
    sublet = tenure.record_right(
        engine,
        "JS-011",
        "租赁",
        "愿景集团",
        holder_type="operator",
        parent=lease.right_id,
        granted_by="劲松街道办事处",
        end=date(2029, 6, 30),
    )
    permit = tenure.record_right(
        engine,
        "JS-013",
        "transitional_permit",
        "劲松街道办事处",
        allowed_uses=["养老"],
        start=date(2024, 1, 1),
        end=date(2027, 12, 31),
        conditions="结构与消防安全经鉴定",
    )
    letter = tmp_path / "permit.pdf"
    letter.write_bytes(b"%PDF-1.4 permit letter")
    doc = tenure.attach_source(
        engine,
        "JS-013",
        "permit_letter",
        number="劲街〔2024〕12号",
        issuer="劲松街道办事处",
        file=letter,
        rights=[permit.right_id],
    )
    view = tenure.tenure_of(engine, "JS-011")
    rights = view["rights"].set_index("right_id")
    assert rights.loc[sublet.right_id, "parent_id"] == lease.right_id
    owners = rights[rights["kind"] == "ownership"]
    assert sorted(owners["share"]) == [0.4, 0.6]  # the recorded owners supersede the survey's
    assert set(owners["origin"]) == {"record"} and owners["shares_flag"].isna().all()
    assert list(view["history"]["what"]).count("right_recorded") == 4
    boiler = tenure.tenure_of(engine, "JS-013")
    source = boiler["sources"].set_index("source_id").loc[doc.source_id]
    assert source["file_sha256"] == hashlib.sha256(b"%PDF-1.4 permit letter").hexdigest()
    assert source["file_size"] == len(b"%PDF-1.4 permit letter")
    assert tenure.source_file(engine, doc.source_id) == ("permit.pdf", b"%PDF-1.4 permit letter")
    permit_row = boiler["rights"].set_index("right_id").loc[permit.right_id]
    assert permit_row["allowed_uses"] == ["养老"] and str(doc.source_id) in permit_row["sources"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda e: tenure.record_right(e, "JS-999", "lease", "X"), "no space has this survey"),
        (
            lambda e: tenure.record_right(e, "JS-001", "mortgage", "X"),
            "`right='mortgage'` is not a right kind",
        ),
        (
            lambda e: tenure.record_right(e, "JS-001", "ownership", "X", share=1.5),
            "`share=1.5` must be more than 0",
        ),
        (
            lambda e: tenure.record_right(e, "JS-001", "lease", "X", share=0.5),
            "only ownership has shares",
        ),
        (
            lambda e: tenure.record_right(
                e, "JS-001", "lease", "X", start=date(2025, 1, 1), end=date(2024, 1, 1)
            ),
            "is before `start=2025-01-01`",
        ),
        (
            lambda e: tenure.record_right(e, "JS-001", "transitional_permit", "X"),
            "names the uses it allows",
        ),
        (
            lambda e: tenure.record_right(e, "JS-001", "lease", "X", parent=9999),
            "`parent=9999` is not a right on JS-001",
        ),
        (
            lambda e: tenure.record_right(e, "JS-001", "lease", "X", source=9999),
            "`source=9999` is not a recorded source",
        ),
        (
            lambda e: tenure.attach_source(e, "JS-001", "contract", file="/nowhere/x.pdf"),
            "cannot be read",
        ),
        (lambda e: tenure.attach_source(e, "JS-001", "receipt"), "is not a source kind"),
        (lambda e: tenure.set_status(e, "JS-001"), "Nothing to change"),
    ],
)
def test_bad_records_are_refused_and_nothing_is_written(engine, sample, call, message):
    tenure.tenure_of(engine, "JS-001")  # the survey's records, before
    before = {m: _count(engine, m) for m in (TenureRight, TenureSource, TenureEvent, Party)}
    with pytest.raises(InputError, match=message):
        call(engine)
    assert {m: _count(engine, m) for m in before} == before


def test_settling_a_dispute_changes_the_gap_and_is_kept_in_history(engine, sample):
    rows, _ = title_gaps_in_store(engine)
    assert rows.set_index("survey_ref").loc["JS-011", "gaps"] == ["disputed", "several_owners"]
    tenure.set_status(engine, "JS-011", disputed=False, why="两单位达成产权协议", by="张工")
    tenure.set_status(engine, "JS-003", certificate_status="有", why="补办房产证")
    rows, _ = title_gaps_in_store(engine)
    by_ref = rows.set_index("survey_ref")
    assert by_ref.loc["JS-011", "gaps"] == ["several_owners"]
    assert "JS-003" not in by_ref.index
    history = tenure.tenure_of(engine, "JS-011")["history"]
    settled = history[history["what"] == "dispute_settled"].iloc[0]
    assert settled["who"] == "张工" and settled["why"] == "两单位达成产权协议"
    assert "True → False" in settled["detail"]


def test_tenure_command(sample, db_url, tmp_path):
    runner = CliRunner()
    shown = runner.invoke(app, ["tenure", "JS-011", "--db", db_url])
    assert shown.exit_code == 0, shown.output
    assert "劲松一建公司" in shown.output and "shares add up to 0" in shown.output
    added = runner.invoke(
        app,
        [
            "tenure",
            "JS-013",
            "--right",
            "临时许可",
            "--holder",
            "劲松街道办事处",
            "--uses",
            "养老",
            "--until",
            "2027-12-31",
            "--why",
            "京规自发〔2021〕120号",
            "--db",
            db_url,
        ],
    )
    assert added.exit_code == 0, added.output
    assert "transitional_permit" in added.output and "right_recorded" in added.output
    bad = runner.invoke(
        app,
        [
            "tenure",
            "JS-001",
            "--right",
            "ownership",
            "--holder",
            "X",
            "--share",
            "2",
            "--db",
            db_url,
        ],
    )
    assert bad.exit_code == 1 and "--share 2.0 must be more than 0" in bad.output
    date_bad = runner.invoke(
        app,
        [
            "tenure",
            "JS-001",
            "--right",
            "lease",
            "--holder",
            "X",
            "--until",
            "2027-13-01",
            "--db",
            db_url,
        ],
    )
    assert date_bad.exit_code == 1 and "--until '2027-13-01' is not a date" in date_bad.output
    out = tmp_path / "t.xlsx"
    written = runner.invoke(app, ["tenure", "JS-013", "--output", str(out), "--db", db_url])
    assert written.exit_code == 0, written.output
    import pandas as pd

    assert {"rights", "sources", "history"} <= set(pd.read_excel(out, sheet_name=None))


def test_a_valid_permit_makes_its_space_transitional_an_expired_one_does_not(engine, sample):
    from datetime import timedelta

    from inventory import listing
    from inventory.gaps import title_gaps

    today = date.today()
    for ref, end in (
        ("JS-013", today + timedelta(days=800)),
        ("JS-015", today + timedelta(days=90)),
    ):
        tenure.record_right(
            engine,
            ref,
            "transitional_permit",
            "劲松街道办事处",
            allowed_uses=["养老"],
            start=date(2020, 1, 1),
            end=end,
        )
    # an expired permit on the same kind of gap changes nothing
    tenure.record_right(
        engine,
        "JS-013",
        "transitional_permit",
        "朝阳区住建委",
        allowed_uses=["菜市场"],
        start=date(2018, 1, 1),
        end=date(2019, 12, 31),
    )
    # the whole store's listing joins the permits, a community's reads them per space
    whole = listing.spaces(engine).set_index("survey_ref")["permit_end"]
    one = listing.spaces(engine, community="劲松北社区").set_index("survey_ref")["permit_end"]
    assert whole.equals(one) and whole.notna().sum() == 2
    assert whole["JS-013"] == today + timedelta(days=800)  # the latest of its two
    rows, totals = title_gaps_in_store(engine)
    by_ref = rows.set_index("survey_ref")
    assert by_ref.loc["JS-013", "gap_severity"] == "transitional"
    assert by_ref.loc["JS-013", "gaps"] == ["allocated_land_under_permit"]
    # expiring within the warning period: still operable, and a minor gap to watch
    assert by_ref.loc["JS-015", "gaps"] == ["allocated_land_under_permit", "permit_expiring"]
    # the store's SQL and the frame agree
    _, in_memory = title_gaps(listing.spaces(engine))
    assert totals["spaces_blocking"].tolist() == in_memory["spaces_blocking"].tolist() == [2]
    with engine.begin() as conn:  # the permit lapses: blocking again
        conn.execute(
            TenureRight.__table__.update()
            .where(TenureRight.kind == "transitional_permit")
            .values(end_date=date(2020, 6, 30))
        )
    rows, _ = title_gaps_in_store(engine)
    assert rows.set_index("survey_ref").loc["JS-013", "gap_severity"] == "blocking"


def test_a_rights_table_with_the_same_nothing_lost_report(engine, sample, sample_dir, tmp_path):
    from inventory.models import ImportBatch, RejectedFeature
    from inventory.samples import jinsong_north_rights

    report = tenure.import_rights(engine, sample_dir / "jinsong_north_rights.csv")
    assert (report.read, report.loaded, report.rejected) == (16, 16, 0)
    shares = tenure.tenure_of(engine, "JS-011")["rights"].query("kind == 'ownership'")
    assert sorted(shares["share"]) == [0.5, 0.5] and shares["shares_flag"].isna().all()
    concession = tenure.tenure_of(engine, "JS-007")["rights"].query("kind == 'operating_right'")
    assert concession["end_date"].tolist() == [date(2037, 12, 31)]
    assert concession["origin"].tolist() == ["record"] and concession["sources"].iloc[0]
    # bad rows are quarantined with their reason and row number; the good ones recorded
    bad = jinsong_north_rights().head(3).copy()
    bad.loc[0, "编号"] = "JS-999"
    bad.loc[1, "终止日期"] = "2017-01-01"  # before its start
    bad.loc[2, "份额"] = "1.5"
    bad.loc[2, "权利类型"] = "所有权"
    bad["颜色"] = "红"
    path = tmp_path / "bad.xlsx"
    bad.to_excel(path, index=False)
    before = _count(engine, TenureRight)
    report = tenure.import_rights(engine, path)
    assert (report.read, report.loaded, report.rejected) == (3, 0, 3)
    reasons = report.issues_frame().set_index("row")["reason"]
    assert "no space has this survey reference" in reasons[2]
    assert "end 2017-01-01 is before start 2018-01-01" in reasons[3]
    assert "share 1.5 must be more than 0" in reasons[4]
    assert report.ignored_columns == ["颜色"]
    assert _count(engine, TenureRight) == before  # nothing of the bad rows written
    with engine.connect() as conn:
        batch = conn.execute(select(ImportBatch).where(ImportBatch.id == report.batch_id)).one()
        quarantined = conn.scalar(
            select(func.count()).where(RejectedFeature.batch_id == report.batch_id)
        )
    assert batch.read_count == 3 and batch.rejected_count == 3 == quarantined
    with pytest.raises(InputError, match="has no holder column"):
        headless = tmp_path / "h.csv"
        headless.write_text("编号,权利类型\nJS-001,租赁\n", encoding="utf-8")
        tenure.import_rights(engine, headless)


def test_import_rights_command(sample, db_url, sample_dir, tmp_path):
    runner = CliRunner()
    done = runner.invoke(
        app, ["import-rights", str(sample_dir / "jinsong_north_rights.csv"), "--db", db_url]
    )
    assert done.exit_code == 0, done.output
    assert "16 rows read, 16 rights recorded, 0 quarantined" in done.output
    bad = tmp_path / "bad.csv"
    bad.write_text("编号,权利类型,权利人\nJS-999,租赁,某公司\n", encoding="utf-8")
    report = tmp_path / "rejected.csv"
    failed = runner.invoke(
        app, ["import-rights", str(bad), "--report", str(report), "--db", db_url]
    )
    assert failed.exit_code == 2 and "1 quarantined" in failed.output
    assert "JS-999" in report.read_text(encoding="utf-8")


@pytest.mark.parametrize("mode", ["full", "city"])
def test_map_popups_list_owners_shares_and_permits(engine, sample, sample_dir, tmp_path, mode):
    from inventory import maps

    tenure.import_rights(engine, sample_dir / "jinsong_north_rights.csv")
    path, _ = maps.map_from_store(engine, tmp_path / "m.html", mode=mode)
    page = path.read_text(encoding="utf-8")
    assert "权属记录" in page  # the popups' label
    if mode == "city":  # the spaces travel compressed: read them as the page does
        from tests.test_maps import _city_payload

        page = str(_city_payload(page))
    assert "所有权: 劲松一建公司 50%" in page
    assert "临时许可: 社区运营单位 (存车、便民服务) 至 2027-05-31" in page


def test_revenue_at_risk_names_the_gap_and_the_expiring_permit(engine, sample, sample_dir):
    from inventory.revenue import estimate_in_store

    tenure.import_rights(engine, sample_dir / "jinsong_north_rights.csv")
    risk = estimate_in_store(engine, "jinsong_north").at_risk().set_index("survey_ref")
    assert risk.loc["JS-011", "rent_wan"] == 0 < risk.loc["JS-011", "rent_resolved_wan"]
    assert "ownership disputed" in risk.loc["JS-011", "gap_detail"]
    # the sample's permits end 2027-05-31: within a year of today they are named
    if (date(2027, 5, 31) - date.today()).days <= 365:
        assert "transitional permit ends soon" in risk.loc["JS-008", "gap_detail"]
    assert risk.loc["JS-008", "rent_wan"] > 0


def test_a_permit_lets_its_space_only_for_the_uses_it_names(engine, sample, sample_dir):
    from inventory.revenue import estimate_in_store

    tenure.import_rights(engine, sample_dir / "jinsong_north_rights.csv")
    alloc = estimate_in_store(engine, "jinsong_north").surveyed.allocation.set_index("survey_ref")
    # JS-003's permit allows 存车、便民服务: semi-public convenience, not commerce or care
    assert alloc.loc["JS-003", "allowed"] == "semi_public" and alloc.loc["JS-003", "earns"]
    assert alloc.loc["JS-003", "path"] == "transitional permit (存车、便民服务)"
    # a clean title is not bounded by anything
    assert "commercial" in alloc.loc["JS-012", "allowed"]

    def boiler():
        result = estimate_in_store(engine, "jinsong_north_beijing_2021", policy="default")
        return result.surveyed.allocation.set_index("survey_ref").loc["JS-013"]

    assert not boiler()["earns"]  # allocated land, no permit: blocking
    # a market permit makes the boiler room operable, but not for the elderly care planned
    tenure.record_right(
        engine, "JS-013", "transitional_permit", "朝阳区住建委", allowed_uses=["菜市场"],
        start=date(2020, 1, 1), end=date.today().replace(year=date.today().year + 3),
    )  # fmt: skip
    row = boiler()
    assert row["gap_severity"] == "transitional" and not row["earns"]
    assert "菜市场" in row["reason"] and "permit_uses" in row["reason"]
    tenure.record_right(
        engine, "JS-013", "transitional_permit", "劲松街道办事处", allowed_uses=["社区养老服务"],
        start=date(2020, 1, 1), end=date.today().replace(year=date.today().year + 3),
    )  # fmt: skip
    row = boiler()
    assert row["earns"] and row["use_class"] == "elderly_care" and row["rent_wan_year_mature"] > 0
    assert "社区养老服务" in row["path"]


def test_certificates_are_looked_up_in_any_number(engine):
    # a part of 100,000 surveyed spaces can name more certificates than a server takes
    # values in one statement (65,535 on PostgreSQL)
    numbers = [f"京(2020)不动产权第{i:07d}号" for i in range(70_000)]
    with engine.begin() as conn:
        conn.execute(insert(TenureSource), [{"kind": "certificate", "number": numbers[-1]}])
        src = TenureSource.__table__.c
        found = tenure._ids_by(conn, src.number, src.id, numbers, src.kind == "certificate")
    assert list(found) == [numbers[-1]]
