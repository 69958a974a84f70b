"""Export the raw conversions of a period to CSV or XLSX, with a progress bar.

See tracking/management/export_command.py for the options.
"""

from __future__ import annotations

from tracking.management.export_command import RawExportCommand


class Command(RawExportCommand):
    help = "Export raw conversions (for a period, and a campaign) to CSV or XLSX."
    kind = "conversions"
