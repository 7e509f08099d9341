"""What every PNG of the reports shares: a figure without pyplot, the default style, PNG bytes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from typing import Any

RIGHT, WRONG, FAINT = "#1a7f37", "#d62728", "#6e7781"  # green, red (and warnings), grey


def figure(figsize: tuple[float, float], dpi: int, **kwargs: Any):
    """A matplotlib Figure on an Agg canvas (no pyplot, no global figure registry)."""
    # matplotlib: imported when a figure is drawn, not when the module is
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig, dpi: int, *, compress_level: int | None = None) -> bytes:
    """The figure as PNG bytes of exactly figsize * dpi pixels, without a Software stamp."""
    buf = io.BytesIO()
    pil = {} if compress_level is None else {"pil_kwargs": {"compress_level": compress_level}}
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, **pil)
    return buf.getvalue()


@contextlib.contextmanager
def default_style() -> Iterator[None]:
    """matplotlib's default style inside the block, whatever the user's matplotlibrc says."""
    import matplotlib  # imported when a figure is drawn, not when the module is
    import matplotlib.style

    with matplotlib.rc_context():
        matplotlib.style.use("default")
        yield
