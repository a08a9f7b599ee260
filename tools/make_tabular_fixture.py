#!/usr/bin/env python3
"""Writes the small synthetic CSV tables that gradscope-tabular's ctest tests train on.

    /usr/bin/python3 tools/make_tabular_fixture.py tests/data

tabular_classes.csv     180 rows: three classes named by strings ("amber", "cobalt",
                        "crimson"), four features; each class is a Gaussian blob whose
                        centre is 4 standard deviations along its own axis (5.7 from each other),
                        so a model that learns reaches well above 90% while chance is 33%.
tabular_regression.csv  200 rows: y = 2 x0 - x1^2 + sin(3 x2) + noise (sd 0.1), features
                        on different scales (x2 in thousandths), so that scaling matters.

Seeded (numpy's default_rng(20261202)), so the files are the same on every run.
"""
import pathlib
import sys

import numpy as np


def write_csv(path, header, rows):
    with open(path, "w", encoding="ascii") as out:
        out.write(",".join(header) + "\n")
        for row in rows:
            out.write(",".join(row) + "\n")


def classes(rng, out):
    names = ["crimson", "amber", "cobalt"]  # not sorted: labels follow sorted names
    centres = np.array([[4.0, 0, 0, 0], [0, 4.0, 0, 0], [0, 0, 4.0, 0]])
    rows = []
    for i in range(180):
        c = i % 3
        x = centres[c] + rng.standard_normal(4)
        rows.append([f"{v:.5f}" for v in x] + [names[c]])
    order = rng.permutation(len(rows))
    write_csv(out / "tabular_classes.csv", ["petal", "sepal", "stem", "noise", "colour"],
              [rows[i] for i in order])


def regression(rng, out):
    rows = []
    for _ in range(200):
        x0, x1, x2 = rng.uniform(-1, 1, 3)
        y = 2 * x0 - x1 ** 2 + np.sin(3 * x2) + 0.1 * rng.standard_normal()
        rows.append([f"{x0:.5f}", f"{10 * x1:.4f}", f"{x2 / 1000:.8f}", f"{y:.5f}"])
    write_csv(out / "tabular_regression.csv", ["a", "b", "c", "y"], rows)


def main():
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
    rng = np.random.default_rng(20261202)
    classes(rng, out)
    regression(rng, out)


if __name__ == "__main__":
    main()
