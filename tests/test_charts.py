"""Charts: valid PNGs of a fixed size, rendered off the event loop."""

from __future__ import annotations

import io
import threading
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from PIL import Image

from core import charts
from core.charts import HEIGHT, WIDTH, Series, line_chart_png, png_size, render_line_chart


def curve(days: int, start: str = "0", step: str = "12.5") -> list[tuple[date, D]]:
    return [
        (date(2025, 1, 1) + timedelta(days=i), D(start) + D(step) * i * (-1 if i % 3 == 0 else 1)) for i in range(days)
    ]


def test_a_chart_is_a_valid_png_of_the_expected_size():
    data = line_chart_png(
        "PnL 30d",
        [Series("you", curve(30)), Series("master (scaled)", curve(30, step="15"), dashed=True)],
        y_label="USDT",
    )
    assert png_size(data) == (WIDTH, HEIGHT) == (800, 450)
    image = Image.open(io.BytesIO(data))
    image.verify()  # a well-formed PNG, not just a header
    assert image.format == "PNG" and image.size == (800, 450)


@pytest.mark.parametrize("series", [[], [Series("you", [])], [Series("you", curve(1))]])
def test_empty_and_single_point_charts_still_render(series):
    assert png_size(line_chart_png("nothing yet", series)) == (800, 450)


def test_other_sizes_are_exact_too():
    assert png_size(line_chart_png("small", [Series("x", curve(5))], width=400, height=300)) == (400, 300)


def test_png_size_refuses_what_is_not_a_png():
    with pytest.raises(ValueError):
        png_size(b"GIF89a" + b"\0" * 30)


async def test_rendering_happens_off_the_event_loop(monkeypatch):
    loop_thread = threading.get_ident()
    seen = []
    original = charts.line_chart_png

    def spy(*args, **kwargs):
        seen.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(charts, "line_chart_png", spy)
    data = await render_line_chart("PnL", [Series("you", curve(10))])
    assert png_size(data) == (800, 450)
    assert seen and seen[0] != loop_thread
