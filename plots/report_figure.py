"""The report figure: each row's paper value beside ours, with 95 % intervals and per-run dots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def comparison_figure(
    labels: list[str],
    paper: list[float | None],
    paper_ci: list[tuple[float, float] | None],
    ours: list[float | None],
    ours_ci: list[tuple[float, float] | None],
    points: list[list[float]],
    title: str,
) -> plt.Figure:
    """One horizontal lane per row, values in percent: the paper's (black diamond) and ours (blue
    circle), each with its 95 % interval as a bar; ``points`` (per fold or per volume) as small
    grey dots on our lane.

    Args:
        labels: Row labels (may hold a newline).
        paper: The paper's value per row (``None``: not reported).
        paper_ci: Its interval (``None``: unknown).
        ours: Our value per row (``None``: no run).
        ours_ci: Its interval.
        points: Per-row lists of individual values.
        title: Figure title.

    Returns:
        The figure (the caller saves and closes it).
    """
    n = max(len(labels), 1)
    fig, ax = plt.subplots(figsize=(9, 1.6 + 0.75 * n), dpi=100)
    for i in range(len(labels)):
        y = n - 1 - i
        for value, ci, offset, style in (
            (paper[i], paper_ci[i], 0.15, {"marker": "D", "color": "black"}),
            (ours[i], ours_ci[i], -0.15, {"marker": "o", "color": "tab:blue"}),
        ):
            if value is None or not np.isfinite(value):
                continue
            if ci is not None and all(np.isfinite(ci)):
                ax.plot([100 * ci[0], 100 * ci[1]], [y + offset] * 2, lw=2, color=style["color"])
            ax.plot(100 * value, y + offset, ls="none", ms=7, **style)
        if points[i]:
            jitter = np.linspace(-0.08, 0.08, len(points[i])) - 0.15
            ax.scatter(100 * np.asarray(points[i]), y + jitter, s=10, color="grey", zorder=1)
    ax.set_yticks(range(n), list(reversed(labels)) or [""], fontsize=8)
    ax.set_xlabel("percent")
    ax.set_xlim(-2, 102)
    ax.grid(axis="x", alpha=0.3)
    ax.plot([], [], "D", color="black", label="paper (95 % interval where its n is known)")
    ax.plot([], [], "o", color="tab:blue", label="ours (95 % interval)")
    if any(points):
        ax.scatter([], [], s=10, color="grey", label="ours: each fold / volume")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.5 / n - 0.08), ncol=3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
