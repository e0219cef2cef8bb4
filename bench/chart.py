"""Draw bench/results/latest.json as a PNG: one panel per scenario, aeros rows highlighted.

Run with the peers' Python (it has matplotlib): ``.venv-peers/bin/python chart.py IN.json OUT.png``.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {
    "hello": "/hello (plain text)",
    "json": "/json (small JSON)",
    "big": "/big (60 KB JSON, compressed)",
    "cached": "/cached (20 ms view, cached)",
    "big-cached": "/big-cached (60 KB JSON, cached, compressed)",
}


def main(source: str, target: str) -> None:
    data = json.load(open(source))
    table, meta = data["table"], data["meta"]
    scenarios = [s for s in TITLES if any(isinstance(r.get(s), dict) for r in table.values())]
    columns = 2 if len(scenarios) > 1 else 1
    rows_of_panels = (len(scenarios) + columns - 1) // columns
    fig, axes = plt.subplots(rows_of_panels, columns, figsize=(7 * columns, 5.5 * rows_of_panels), squeeze=False)
    for axis in axes.flat[len(scenarios) :]:
        axis.set_visible(False)
    for axis, scenario in zip(axes.flat, scenarios):
        rows = [
            (r["label"], r[scenario]["median"])
            for r in table.values()
            if isinstance(r.get(scenario), dict) and "median" in r[scenario]
        ]
        rows.sort(key=lambda item: item[1])
        labels = [label for label, _ in rows]
        values = [value for _, value in rows]
        colours = ["#d9480f" if label.startswith("aeros") else "#868e96" for label in labels]
        bars = axis.barh(labels, values, color=colours)
        for bar, value in zip(bars, values):
            axis.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:,.0f}", va="center", fontsize=8)
        axis.set_title(TITLES[scenario], fontsize=11)
        axis.set_xlabel("requests per second")
        axis.tick_params(axis="y", labelsize=8)
        axis.set_xlim(0, max(values or [1]) * 1.25)
    fig.suptitle(
        f"aeros (orange) and its peers: req/s, median of {meta['runs']} runs, wrk -t1 "
        f"-c{meta['connections']} -d{meta['duration']:g}s, server on 1 core ({meta['date']})",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
