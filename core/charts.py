"""PNG charts (matplotlib, Agg backend): equity and PnL curves for /pnl and a master's page.

Rendering is CPU work of tens of milliseconds: ``render_*`` run it in a worker thread
(``asyncio.to_thread``) so the event loop — and with it every copy — never waits for a chart.
Each call builds its own ``Figure`` with the Agg canvas (no pyplot, no global state), which is
what makes rendering from several threads at once safe. Values arrive as ``Decimal`` and become
floats here only, for drawing.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

WIDTH = 800  # pixels
HEIGHT = 450
DPI = 100

_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


@dataclass(frozen=True, slots=True)
class Series:
    """One line: ``points`` are ``(day or moment, value)`` in time order."""

    label: str
    points: Sequence[tuple[date | datetime, Decimal]]
    dashed: bool = False


def line_chart_png(
    title: str, series: Sequence[Series], *, y_label: str = "", width: int = WIDTH, height: int = HEIGHT
) -> bytes:
    """A line chart as PNG bytes of exactly ``width`` × ``height`` pixels (blocking: see
    ``render_line_chart``). With no points at all the chart says so instead of being blank."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    drawn = 0
    for index, line in enumerate(series):
        if not line.points:
            continue
        xs = [x for x, _ in line.points]
        ys = [float(y) for _, y in line.points]
        style = "--" if line.dashed else "-"
        marker = "o" if len(xs) == 1 else None
        axes.plot(  # matplotlib's date converter takes the days; its stubs only know numbers
            xs,  # type: ignore[arg-type]
            ys,
            style,
            label=line.label,
            color=_COLORS[index % len(_COLORS)],
            linewidth=1.8,
            marker=marker,
        )
        drawn += 1
    if drawn:
        axes.axhline(0, color="#999999", linewidth=0.8)
        axes.legend(loc="upper left", fontsize=9)
        figure.autofmt_xdate()
    else:
        axes.text(
            0.5, 0.5, "no data for this period yet", ha="center", va="center", transform=axes.transAxes, color="#666666"
        )
        axes.set_xticks([])
        axes.set_yticks([])
    axes.set_title(title, fontsize=12)
    if y_label:
        axes.set_ylabel(y_label)
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # never bbox_inches="tight": the size must stay fixed
    return buffer.getvalue()


async def render_line_chart(
    title: str, series: Sequence[Series], *, y_label: str = "", width: int = WIDTH, height: int = HEIGHT
) -> bytes:
    """``line_chart_png`` off the event loop."""
    return await asyncio.to_thread(line_chart_png, title, series, y_label=y_label, width=width, height=height)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk; ``ValueError`` if ``data`` is not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
