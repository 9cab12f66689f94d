"""Render helpers the pages share: loading with the error state, the snapshot banner, registry
filters, paged tables and CSV downloads. No queries here (they live in data)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NoReturn, ParamSpec, TypeVar

import pandas as pd
import streamlit as st

from prognos.dashboard import charts, data

P = ParamSpec("P")
T = TypeVar("T")
PAGE_SIZES = (25, 50, 100, 250)


MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def plain(text: object) -> str:
    """Text from outside (DMS imports, records) for a Markdown element: shown as written, never
    turned into links, images or formatting."""
    return MARKDOWN_SPECIALS.sub(r"\\\1", str(text))


def unreachable(exc: data.DataUnavailableError) -> NoReturn:
    st.error(
        f"Database unreachable: {exc}\n\n"
        "Check that the stack runs (`prognos stack status`) and that PROGNOS_HOME or "
        "PROGNOS_INFLUX_URL points at it; the page retries on the next refresh."
    )
    st.stop()


def load(fetch: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Call a data function; if the database cannot be reached, explain and stop the page."""
    try:
        return fetch(*args, **kwargs)
    except data.DataUnavailableError as exc:
        unreachable(exc)


def no_data(message: str) -> NoReturn:
    st.info(f"No data yet: {message}")
    st.stop()


def snapshot() -> data.Snapshot:
    """The latest analytics snapshot, shown as a caption; stops the page before the first one."""
    found = load(data.latest_snapshot)
    if found is None:
        no_data(
            f"the analytics job has not written a snapshot to database {data.database()!r}. "
            "Run `prognos cloud analytics` (or `--every 15m`) once records have been ingested."
        )
    days = found.counts.get("lookback_days", 30.0)
    st.caption(
        f"Analytics snapshot of {charts.utc(pd.Series([found.time_ms])).iloc[0]:%Y-%m-%d %H:%M} UTC, "
        f"data window {days:g} days."
    )
    return found


def registry_filters(registry: pd.DataFrame, key: str) -> pd.DataFrame | None:
    """Model, region, lot and service center filters from the registry: the selected rows, or
    None when nothing is selected (or there is no registry)."""
    if registry.empty:
        st.info(
            "No vehicle registry imported (`prognos cloud import-dms vehicles.csv`): the model, "
            "region, lot and service center filters are off and all vehicles are shown."
        )
        return None
    options = charts.filter_options(registry)
    selection: dict[str, list[str]] = {}
    for column, box in zip(charts.FILTER_COLUMNS, st.columns(len(charts.FILTER_COLUMNS)), strict=True):
        selection[column] = box.multiselect(
            charts.FILTER_COLUMNS[column], options[column], key=f"{key}_{column}", placeholder="all"
        )
    if not any(selection.values()):
        return None
    return charts.select_vehicles(registry, selection)


def view_config(view: dict[str, tuple[str, str | None]]) -> dict[str, Any]:
    """Streamlit column settings from a view of charts (heading and number format per column):
    the table keeps its stored column names, the page shows the headings."""
    return {
        column: st.column_config.TextColumn(heading)
        if number_format is None
        else st.column_config.NumberColumn(heading, format=number_format)
        for column, (heading, number_format) in view.items()
    }


def paged_table(
    frame: pd.DataFrame,
    key: str,
    *,
    column_config: dict[str, Any] | None = None,
    column_order: list[str] | None = None,
    size: int = 50,
    wrap_on: str | None = None,
) -> None:
    """A table shown one page at a time, so a long list never reaches the browser whole. With
    `wrap_on` (the column that labels the rows) it is a static table whose long texts wrap,
    so no column is cut off."""
    if len(frame) > PAGE_SIZES[0]:
        left, right = st.columns([1, 3])
        size = left.selectbox("Rows per page", PAGE_SIZES, index=PAGE_SIZES.index(size), key=f"{key}_size")
        pages = charts.page_count(len(frame), size)
        page = int(right.number_input(f"Page (of {pages})", 1, pages, 1, key=f"{key}_page"))
    else:
        page, pages = 1, 1
    shown = charts.page_of(frame, page, size)
    if wrap_on is not None:
        st.table(charts.shown_table(shown, wrap_on))
    else:
        st.dataframe(shown, hide_index=True, column_config=column_config, column_order=column_order)
    if pages > 1:
        first = (page - 1) * size + 1
        st.caption(f"Rows {first}-{first + len(shown) - 1} of {len(frame)}.")


def csv_download(frame: pd.DataFrame, label: str, file_name: str, key: str) -> None:
    st.download_button(
        label, charts.csv_bytes(frame), file_name=file_name, mime="text/csv", key=key, on_click="ignore"
    )
