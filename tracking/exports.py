"""CSV and XLSX exports: campaign reports (one row per variant and one for the holdout, per campaign), and
the raw rows of a period (interventions, deliveries, tracking events, conversions).

Campaigns are read in chunks (three queries per chunk, see tracking/reports.py), so an export over every
campaign and a long period keeps memory flat: CSV is streamed row by row, XLSX is written by openpyxl's
write-only workbook (rows go straight to the zip member) into a spooled temporary file.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import IO, Any

from django.db.models import QuerySet
from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone

from interventions import selectors as intervention_selectors
from tracking import selectors
from tracking.reports import (
    COUNTS,
    CampaignReport,
    GroupReport,
    ReportPeriod,
    campaign_reports,
    campaigns_for_export,
)

CHUNK_SIZE = 50
Progress = Callable[[int], None]  # called with how many campaigns were just exported

COLUMNS = (
    "campaign_id",
    "campaign",
    "status",
    "period_from",
    "period_to",
    "group",
    "role",
    "variant_id",
    "weight",
    "expected_share",
    *COUNTS,
    "conversion_rate",
    "conversion_rate_ci_low",
    "conversion_rate_ci_high",
    "currency",
    "revenue",
    "revenue_other_currencies",
    "revenue_per_user",
    "revenue_per_exposure",
    "lift_vs_control",
    "lift_vs_control_ci_low",
    "lift_vs_control_ci_high",
    "p_value_vs_control",
    "probability_to_beat_control",
    "always_valid_difference_vs_control_ci_low",
    "always_valid_difference_vs_control_ci_high",
    "always_valid_p_value_vs_control",
    "verdict_vs_control",
    "lift_vs_holdout",
    "lift_vs_holdout_ci_low",
    "lift_vs_holdout_ci_high",
    "p_value_vs_holdout",
    "always_valid_p_value_vs_holdout",
    "verdict_vs_holdout",
    "incremental_conversions",
    "incremental_revenue",
    "srm_p_value",
    "srm_warning",
)

Cell = str | int | float | Decimal | None


def export_campaign_count(*, campaign_id: int | None = None) -> int:
    return campaigns_for_export(campaign_id=campaign_id).count()


def reports_iter(
    *, period: ReportPeriod, campaign_id: int | None = None, chunk_size: int = CHUNK_SIZE
) -> Iterator[CampaignReport]:
    """Every campaign's report (or one campaign's), newest campaign first, a chunk at a time."""
    ids = list(campaigns_for_export(campaign_id=campaign_id).values_list("pk", flat=True))
    for start in range(0, len(ids), chunk_size):
        chunk = ids[start : start + chunk_size]
        campaigns = sorted(campaigns_for_export().filter(pk__in=chunk), key=lambda c: chunk.index(c.pk))
        yield from campaign_reports(campaigns=campaigns, period=period)


def report_rows(report: CampaignReport) -> Iterator[list[Cell]]:
    for group in report.groups:
        yield _row(report, group)


def _row(report: CampaignReport, group: GroupReport) -> list[Cell]:
    vs_control = group.vs_control or {}
    vs_holdout = group.vs_holdout or {}
    control_ci = vs_control.get("relative_lift_ci")
    holdout_ci = vs_holdout.get("relative_lift_ci")
    control_valid = vs_control.get("always_valid") or {}
    control_valid_ci = control_valid.get("absolute_lift_ci")
    values: dict[str, Cell] = {
        "campaign_id": report.campaign_id,
        "campaign": report.campaign_name,
        "status": report.campaign_status,
        "period_from": report.period.start.isoformat() if report.period.start else None,
        "period_to": report.period.end.isoformat() if report.period.end else None,
        "group": group.name,
        "role": group.role,
        "variant_id": group.variant_id,
        "weight": group.weight,
        "expected_share": group.expected_share,
        **{name: getattr(group, name) for name in COUNTS},
        "conversion_rate": group.conversion_rate,
        "conversion_rate_ci_low": group.conversion_rate_ci.low if group.conversion_rate_ci else None,
        "conversion_rate_ci_high": group.conversion_rate_ci.high if group.conversion_rate_ci else None,
        "currency": report.currency,
        "revenue": group.revenue,
        "revenue_other_currencies": " ".join(
            f"{amount} {currency}" for currency, amount in sorted(group.revenue_other_currencies.items())
        )
        or None,
        "revenue_per_user": group.revenue_per_user,
        "revenue_per_exposure": group.revenue_per_exposure,
        "lift_vs_control": vs_control.get("relative_lift"),
        "lift_vs_control_ci_low": control_ci.low if control_ci else None,
        "lift_vs_control_ci_high": control_ci.high if control_ci else None,
        "p_value_vs_control": vs_control.get("p_value"),
        "probability_to_beat_control": vs_control.get("probability_to_beat"),
        "always_valid_difference_vs_control_ci_low": control_valid_ci.low if control_valid_ci else None,
        "always_valid_difference_vs_control_ci_high": control_valid_ci.high if control_valid_ci else None,
        "always_valid_p_value_vs_control": control_valid.get("p_value"),
        "verdict_vs_control": vs_control.get("verdict"),
        "lift_vs_holdout": vs_holdout.get("relative_lift"),
        "lift_vs_holdout_ci_low": holdout_ci.low if holdout_ci else None,
        "lift_vs_holdout_ci_high": holdout_ci.high if holdout_ci else None,
        "p_value_vs_holdout": vs_holdout.get("p_value"),
        "always_valid_p_value_vs_holdout": (vs_holdout.get("always_valid") or {}).get("p_value"),
        "verdict_vs_holdout": vs_holdout.get("verdict"),
        "incremental_conversions": vs_holdout.get("incremental_conversions"),
        "incremental_revenue": vs_holdout.get("incremental_revenue"),
        "srm_p_value": report.srm.p_value,
        "srm_warning": "yes" if report.srm.mismatch else "no",
    }
    return [values[column] for column in COLUMNS]


def csv_stream(
    *, period: ReportPeriod, campaign_id: int | None = None, progress: Progress | None = None
) -> Iterator[str]:
    """The CSV export as a stream of text chunks: the header, then one chunk per campaign."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(COLUMNS)
    yield flush()
    for report in reports_iter(period=period, campaign_id=campaign_id):
        for row in report_rows(report):
            writer.writerow([_csv_cell(cell) for cell in row])
        yield flush()
        if progress is not None:
            progress(1)


# Text a spreadsheet would run as a formula when it opens the file (OWASP's list of first characters).
# Campaign and variant names are marketers' and API clients' input, so such text is written as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(cell: Any) -> Any:
    # Empty for "not computable" rather than the string "None"; Decimals keep their exact digits.
    if cell is None:
        return ""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell  # the quote spreadsheets read as "what follows is text"
    return cell


def _xlsx_row(sheet: Any, row: list[Cell]) -> list[Any]:
    """Text cells as strings that open as typed: control characters XML cannot hold (openpyxl refuses
    them, which failed the whole export) become U+FFFD, and text that looks like a formula stays text."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cells: list[Any] = []
    for value in row:
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value=ILLEGAL_CHARACTERS_RE.sub("\ufffd", value))
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    return cells


def xlsx_write(
    *,
    target: IO[bytes],
    period: ReportPeriod,
    campaign_id: int | None = None,
    progress: Progress | None = None,
) -> None:
    """Write the XLSX export (sheet "Report") to a binary file object."""
    # Imported here, not with the module: the URLconf imports this module (see tracking.analytics).
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet: Any = workbook.create_sheet("Report")
    sheet.append(list(COLUMNS))
    for report in reports_iter(period=period, campaign_id=campaign_id):
        for row in report_rows(report):
            # Money stays exact in the file: openpyxl writes Decimals as numbers without float rounding.
            sheet.append(_xlsx_row(sheet, row))
        if progress is not None:
            progress(1)
    workbook.save(target)


def xlsx_file(*, period: ReportPeriod, campaign_id: int | None = None) -> IO[bytes]:
    """The XLSX export in a temporary file (in memory up to 8 MB, then on disk), rewound for reading."""
    spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115  (caller closes)
    xlsx_write(target=spooled, period=period, campaign_id=campaign_id)
    spooled.seek(0)
    return spooled


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def export_response(
    *, file_format: str, period: ReportPeriod, campaign_id: int | None = None
) -> StreamingHttpResponse | FileResponse:
    """The download of the API and the admin: CSV streamed as it is written, XLSX from a spooled file."""
    filename = f"campaign-report-{timezone.now():%Y%m%d-%H%M%S}.{file_format}"
    if file_format == "csv":
        response = StreamingHttpResponse(
            csv_stream(period=period, campaign_id=campaign_id), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    return FileResponse(
        xlsx_file(period=period, campaign_id=campaign_id),
        as_attachment=True,
        filename=filename,
        content_type=XLSX,
    )


# --- Raw rows: interventions, deliveries, tracking events and conversions of a period -----------------
#
# Memory stays flat however many rows: the rows come from a server-side cursor (QuerySet.iterator with
# chunk_size: PostgreSQL sends RAW_CHUNK_SIZE rows at a time), CSV is yielded every RAW_CHUNK_SIZE rows,
# and XLSX goes through openpyxl's write-only workbook, which streams each sheet to a temporary file.

RAW_CHUNK_SIZE = 2000
# An XLSX sheet holds 1,048,576 rows; longer exports continue on "<kind> 2", "<kind> 3", ...
XLSX_ROWS_PER_SHEET = 1_000_000


@dataclass(frozen=True)
class RawKind:
    name: str
    fields: tuple[str, ...]
    rows: Callable[..., QuerySet[Any, tuple[Any, ...]]]  # (start=, end=, campaign_id=) -> tuples

    @property
    def columns(self) -> list[str]:
        """``intervention__campaign_id`` reads ``campaign_id``: the export names what the value is."""
        return [field.rsplit("__", 1)[-1] for field in self.fields]


RAW_KINDS: dict[str, RawKind] = {
    "interventions": RawKind(
        "interventions",
        intervention_selectors.INTERVENTION_EXPORT_FIELDS,
        intervention_selectors.interventions_for_export,
    ),
    "deliveries": RawKind(
        "deliveries",
        intervention_selectors.DELIVERY_EXPORT_FIELDS,
        intervention_selectors.deliveries_for_export,
    ),
    "events": RawKind("events", selectors.TRACKING_EVENT_EXPORT_FIELDS, selectors.tracking_events_for_export),
    "conversions": RawKind(
        "conversions", selectors.CONVERSION_EXPORT_FIELDS, selectors.conversions_for_export
    ),
}


def _raw_queryset(
    *, kind: str, period: ReportPeriod, campaign_id: int | None
) -> QuerySet[Any, tuple[Any, ...]]:
    return RAW_KINDS[kind].rows(start=period.start, end=period.end, campaign_id=campaign_id)


def raw_count(*, kind: str, period: ReportPeriod, campaign_id: int | None = None) -> int:
    return _raw_queryset(kind=kind, period=period, campaign_id=campaign_id).count()


def raw_rows(*, kind: str, period: ReportPeriod, campaign_id: int | None = None) -> Iterator[tuple[Any, ...]]:
    return _raw_queryset(kind=kind, period=period, campaign_id=campaign_id).iterator(
        chunk_size=RAW_CHUNK_SIZE
    )


def _raw_csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return _csv_cell(value)


def raw_csv_stream(
    *, kind: str, period: ReportPeriod, campaign_id: int | None = None, progress: Progress | None = None
) -> Iterator[str]:
    """The rows as CSV text, the header first, then a chunk every ``RAW_CHUNK_SIZE`` rows. Times are
    ISO-8601 in UTC; ids, user ids and order ids are written as text a spreadsheet will not run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return text

    writer.writerow(RAW_KINDS[kind].columns)
    yield flush()
    pending = 0
    for row in raw_rows(kind=kind, period=period, campaign_id=campaign_id):
        writer.writerow([_raw_csv_cell(value) for value in row])
        pending += 1
        if pending == RAW_CHUNK_SIZE:
            yield flush()
            if progress is not None:
                progress(pending)
            pending = 0
    yield flush()
    if progress is not None and pending:
        progress(pending)


def _raw_xlsx_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)  # Excel has no time zones: UTC, said in the header
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def raw_xlsx_write(
    *,
    target: IO[bytes],
    kind: str,
    period: ReportPeriod,
    campaign_id: int | None = None,
    progress: Progress | None = None,
) -> None:
    """The rows as an XLSX workbook (a sheet per million rows), written to a binary file object."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    header = [f"{column} (UTC)" if column.endswith("_at") else column for column in RAW_KINDS[kind].columns]
    sheet: Any = None
    pending = 0
    for written, row in enumerate(raw_rows(kind=kind, period=period, campaign_id=campaign_id)):
        if written % XLSX_ROWS_PER_SHEET == 0:
            number = written // XLSX_ROWS_PER_SHEET + 1
            sheet = workbook.create_sheet(kind if number == 1 else f"{kind} {number}")
            sheet.append(header)
        sheet.append(_xlsx_row(sheet, [_raw_xlsx_value(value) for value in row]))
        pending += 1
        if progress is not None and pending == RAW_CHUNK_SIZE:
            progress(pending)
            pending = 0
    if sheet is None:
        workbook.create_sheet(kind).append(header)
    if progress is not None and pending:
        progress(pending)
    workbook.save(target)


def raw_export_response(
    *, kind: str, file_format: str, period: ReportPeriod, campaign_id: int | None = None
) -> StreamingHttpResponse | FileResponse:
    """The download of the API and the admin: CSV streamed as the cursor reads, XLSX from a spooled file."""
    filename = f"{kind}-{timezone.now():%Y%m%d-%H%M%S}.{file_format}"
    if file_format == "csv":
        response = StreamingHttpResponse(
            raw_csv_stream(kind=kind, period=period, campaign_id=campaign_id),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    spooled: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115  (the response closes it)
    raw_xlsx_write(target=spooled, kind=kind, period=period, campaign_id=campaign_id)
    spooled.seek(0)
    return FileResponse(spooled, as_attachment=True, filename=filename, content_type=XLSX)
