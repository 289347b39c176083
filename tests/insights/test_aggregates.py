"""The insights figures over a seeded log, against values worked out by hand."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.insights.aggregates import Window, nearest_rank, summarize
from backend.insights.records import open_for_reading
from tests.support.searchlog import at, make_record, seed

D1, D2, D3 = dt.date(2026, 5, 1), dt.date(2026, 5, 2), dt.date(2026, 5, 3)


@pytest.fixture
def insights(tmp_path):
    path = tmp_path / "searches.sqlite"
    seed(
        path,
        [
            # Day 1: three searches, one of them with nothing shown.
            make_record(at(D1, 9), took_ms=10.0, top=(("p1", 0.92),), shown=1, hidden=0),
            make_record(
                at(D1, 10),
                took_ms=30.0,
                top=(("p1", 0.81), ("p2", 0.7)),
                shown=2,
                hidden=0,
                category="toys",
            ),
            make_record(
                at(D1, 11),
                took_ms=20.0,
                top=(("p3", 0.42),),
                shown=0,
                hidden=1,
                category="toys",
                min_price=5.0,
                kind="url",
                ref="shop.example",
            ),
            # Day 2: nothing. Day 3: two searches, both unserved.
            make_record(
                at(D3, 8),
                took_ms=50.0,
                top=(("p2", 0.3),),
                shown=0,
                hidden=1,
                channel="page",
                kind="similar",
                ref="p9",
                stages_ms={"rank": 4.0},
            ),
            make_record(at(D3, 23, 59), took_ms=70.0, top=(), shown=0, hidden=0, category="garden"),
            # Outside the window on both sides.
            make_record(at(D1 - dt.timedelta(days=1), 23, 59), took_ms=999.0),
            make_record(at(D3 + dt.timedelta(days=1), 0, 0), took_ms=999.0),
        ],
    )
    conn = open_for_reading(path)
    yield summarize(conn, Window(D1, D3), threshold=0.8)
    conn.close()


def test_totals_and_days(insights):
    assert (insights.searches, insights.no_match) == (5, 3)
    assert insights.no_match_share == pytest.approx(0.6)
    assert [(d.day, d.searches, d.no_match) for d in insights.days] == [
        (D1, 3, 1),
        (D2, 0, 0),
        (D3, 2, 2),
    ]
    assert [d.no_match_share for d in insights.days] == [pytest.approx(1 / 3), None, 1.0]
    assert insights.kinds == {"upload": 3, "url": 1, "similar": 1}
    assert insights.channels == {"api": 4, "page": 1}


def test_daily_and_overall_latency_percentiles_are_nearest_rank(insights):
    # Day 1 sorted: 10, 20, 30 -> p50 rank 2 = 20, p95 rank 3 = 30. Day 3: 50, 70.
    assert [(d.p50_ms, d.p95_ms) for d in insights.days] == [(20, 30), (None, None), (50, 70)]
    # All five: 10 20 30 50 70 -> p50 rank 3 = 30, p95 rank 5 = 70.
    assert insights.latency["took"] == (30, 70)
    # Stages: decode/embed on four searches (2.0 each), rank on all five (3, 3, 3, 4, 3).
    assert insights.latency["decode"] == (2, 2)
    assert insights.latency["rank"] == (3, 4)


def test_products_shown_first_count_only_searches_that_showed_something(insights):
    assert insights.top_products == [("p1", 2)]


def test_category_filters(insights):
    assert insights.categories == [("toys", 2), ("garden", 1)]
    assert insights.unfiltered == 2


def test_best_similarity_histogram_and_threshold_count(insights):
    bins = insights.similarity_bins
    assert len(bins) == 20 and sum(bins) == 4  # the search without candidates has none
    # 0.92 -> bin 18, 0.81 -> 16, 0.42 -> 8, 0.3 -> 6.
    assert {index: count for index, count in enumerate(bins) if count} == {
        6: 1,
        8: 1,
        16: 1,
        18: 1,
    }
    assert insights.best_at_or_above == 2  # 0.92 and 0.81 reach 0.8


def test_unserved_searches_newest_first_with_what_came_closest(insights):
    assert [(u.at, u.kind, u.ref, u.best_id, u.best_similarity) for u in insights.unserved] == [
        (dt.datetime(2026, 5, 3, 23, 59, tzinfo=dt.UTC), "upload", None, None, None),
        (dt.datetime(2026, 5, 3, 8, tzinfo=dt.UTC), "similar", "p9", "p2", 0.3),
        (dt.datetime(2026, 5, 1, 11, tzinfo=dt.UTC), "url", "shop.example", "p3", 0.42),
    ]
    assert (insights.unserved[2].category, insights.unserved[2].min_price) == ("toys", 5.0)


def test_no_log_gives_zeros_for_every_day():
    insights = summarize(None, Window(D1, D3), threshold=0.8)
    assert insights.searches == 0 and insights.no_match_share is None
    assert [d.searches for d in insights.days] == [0, 0, 0]


@pytest.mark.parametrize(
    "n, percent, rank",
    [
        (1, 50, 1),
        (1, 95, 1),
        (2, 50, 1),
        (3, 50, 2),
        (4, 50, 2),
        (10, 95, 10),
        (20, 95, 19),
        (100, 95, 95),
        (101, 50, 51),
    ],
)
def test_nearest_rank(n, percent, rank):
    assert nearest_rank(n, percent) == rank


def test_window_of_the_last_days():
    window = Window.last_days(7, D3)
    assert (window.first, window.last, len(window.days)) == (dt.date(2026, 4, 27), D3, 7)
    assert window.until - window.since == 7 * 86400
