#!/usr/bin/env python3
"""gradscope's tabular example (gradscope-tabular) against scikit-learn's MLPClassifier and
MLPRegressor on scikit-learn's bundled data sets, for docs/RESULTS.md.

Measures, per data set and seed, on the same test rows: test accuracy and macro F1
(classification) or R² and MAE (regression), training time and epochs run.

    /usr/bin/python3 tools/compare_sklearn.py --binary build/release/examples/gradscope-tabular \\
        --out /tmp/cmp [--seeds 1,2,3,4,5] [--epochs 200] [--datasets breast_cancer,wine,diabetes]

Run with Debian's interpreter (it has python3-sklearn; the python3 first on PATH may not).

How:
1. Each data set (breast_cancer, wine: classification; diabetes, unscaled: regression) is written
   to OUT/<name>.csv with a header row: the features under scikit-learn's feature names reduced
   to [A-Za-z0-9_], then "target" (class index, or the number). Values are written with repr(),
   so they read back exactly; the script checks that they do.
2. For each seed the C++ example trains on that file and writes a JSON report with its split
   (row indices of the train, validation and test rows), its test metrics (from its own metrics
   code) and train_seconds (its training loop, including the per-epoch validation pass).
   scikit-learn then gets exactly the report's train rows, standardised by a StandardScaler
   fitted on them (as the example does), and the same hyper-parameters: hidden layer sizes,
   ReLU, Adam with the learning rate, batch size, alpha = --alpha, max_iter = --epochs,
   random_state = seed. Its own stopping rule (training loss, tol and n_iter_no_change) stays at
   its defaults; it never sees the validation or test rows. For regression the model is wrapped in
   TransformedTargetRegressor(StandardScaler()), since the example standardises the target on the
   train rows too. Its time is fit() alone, measured with time.perf_counter(): the feature scaler
   is excluded, the target scaler of the regression wrapper included (it is fitted inside fit()).
   Its metrics come from sklearn.metrics on the test rows. A second scikit-learn run per seed
   uses its own early stopping (early_stopping=True, n_iter_no_change = --patience) on the train
   and validation rows together, holding out as many rows as gradscope's validation part.
3. Prints the command, versions and CPU count, then one Markdown table per data set (median and
   min-max over seeds) and the ratio of training times, and writes every per-seed number to
   OUT/results.json (the tables also to OUT/results.md). Reports, checkpoints and the example's
   output land in OUT/reports, OUT/checkpoints and OUT/logs.

Not identical between the two (worth saying next to the numbers): gradscope stops early on its
validation rows and restores the best epoch's weights, scikit-learn stops on its training loss;
the initialisations differ; gradscope reads the CSV as float32, scikit-learn computes in float64.
The L2 penalty is the same: scikit-learn's alpha penalises the weights only (not the biases) with
a gradient of alpha * W / batch size, so gradscope gets --weight-decay alpha / batch, which its
weight_decay_groups applies to the weights only, as an L2 term in Adam's gradient.
"""

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np
import sklearn
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (accuracy_score, f1_score, mean_absolute_error, mean_squared_error,
                             r2_score)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import StandardScaler

PROG = "compare_sklearn"

# name -> (loader returning a sklearn Bunch, task)
DATASETS = {
    "breast_cancer": (load_breast_cancer, "classification"),
    "wine": (load_wine, "classification"),
    "diabetes": (lambda: load_diabetes(scaled=False), "regression"),
}

METRICS = {  # task -> the report's test metric keys, first one is the headline
    "classification": ["accuracy", "macro_f1"],
    "regression": ["r2", "mae"],
}

METRIC_LABELS = {"accuracy": "test accuracy", "macro_f1": "test macro F1", "r2": "test R²",
                 "mae": "test MAE"}


class CompareError(Exception):
    """A problem the user has to fix (missing binary, failed run, malformed report)."""


@dataclass
class Dataset:
    name: str
    task: str  # "classification" or "regression"
    x: np.ndarray  # rows x features, float64
    y: np.ndarray  # class indices (int) or targets (float64)
    columns: list  # sanitised feature names, then "target"


# ---------------------------------------------------------------------------------------------
# Command line


def parse_list(text, convert):
    """'1,2,3' -> [convert('1'), ...]; an argparse error (which names the flag) otherwise."""
    try:
        items = [convert(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}")
    if not items:
        raise argparse.ArgumentTypeError("empty list")
    return items


def parse_args(argv):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--binary", required=True, help="path of gradscope-tabular")
    p.add_argument("--out", required=True, help="directory for the CSV files, reports and results")
    p.add_argument("--seeds", default="1,2,3,4,5", type=lambda s: parse_list(s, int))
    p.add_argument("--epochs", default=200, type=int)
    p.add_argument("--datasets", default=",".join(DATASETS),
                   type=lambda s: parse_list(s, str))
    p.add_argument("--hidden", default="64,64", type=lambda s: parse_list(s, int))
    p.add_argument("--batch", default=32, type=int)
    p.add_argument("--lr", default=1e-3, type=float)
    p.add_argument("--alpha", default=1e-4, type=float,
                   help="scikit-learn's L2 penalty (its default); gradscope gets alpha / batch")
    p.add_argument("--validation", default=0.15, type=float)
    p.add_argument("--test", default=0.15, type=float)
    p.add_argument("--patience", default=20, type=int)
    args = p.parse_args(argv)
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        p.error(f"--datasets: unknown {', '.join(unknown)} (known: {', '.join(DATASETS)})")
    if args.epochs < 1 or args.batch < 1 or args.patience < 0:
        p.error("--epochs and --batch must be positive, --patience non-negative")
    return args


# ---------------------------------------------------------------------------------------------
# Data


def sanitise(name):
    """A feature name reduced to [A-Za-z0-9_]: 'od280/od315 x' -> 'od280_od315_x'."""
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", name)).strip("_") or "feature"


def load_dataset(name):
    """One of DATASETS as a Dataset with unique, sanitised column names."""
    loader, task = DATASETS[name]
    bunch = loader()
    columns = [sanitise(f) for f in bunch.feature_names]
    if len(set(columns)) != len(columns) or "target" in columns:
        raise CompareError(f"{name}: sanitised feature names are not unique: {columns}")
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64 if task == "classification" else np.float64)
    return Dataset(name, task, x, y, columns + ["target"])


def write_csv(dataset, path):
    """The data set as CSV with a header row, numbers by repr(); checks it reads back exactly."""
    with open(path, "w", newline="") as f:
        f.write(",".join(dataset.columns) + "\n")
        for row, target in zip(dataset.x.tolist(), dataset.y.tolist()):
            f.write(",".join(repr(v) for v in row) + "," + repr(target) + "\n")
    back = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    if not (np.array_equal(back[:, :-1], dataset.x) and np.array_equal(back[:, -1], dataset.y)):
        raise CompareError(f"{path}: the written CSV does not read back to the same numbers")


# ---------------------------------------------------------------------------------------------
# gradscope


def check_binary(path):
    """The example exists and is executable, or a CompareError saying what to build."""
    if not os.path.isfile(path):
        raise CompareError(f"{path}: no such file (build the example first: "
                           "cmake --build --preset release --target gradscope-tabular)")
    if not os.access(path, os.X_OK):
        raise CompareError(f"{path}: not executable")


def gradscope_command(args, csv_path, dataset, seed, report_path, checkpoint_path):
    """The command line of one gradscope-tabular run, every default passed explicitly."""
    command = [args.binary, csv_path, "--target", "target",
               "--task", "classify" if dataset.task == "classification" else "regress",
               "--hidden", ",".join(map(str, args.hidden)), "--epochs", str(args.epochs),
               "--batch", str(args.batch), "--lr", repr(args.lr),
               "--weight-decay", repr(args.alpha / args.batch),
               "--validation", repr(args.validation),
               "--test", repr(args.test), "--seed", str(seed), "--patience", str(args.patience),
               "--report", report_path, "--checkpoint", checkpoint_path, "--no-progress"]
    if dataset.task == "classification":
        command.append("--stratify")
    return command


def run_gradscope(command, log_path):
    """Runs the example, saves its output to log_path; a CompareError with its stderr on failure."""
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except OSError as e:
        raise CompareError(f"cannot run {command[0]}: {e}")
    with open(log_path, "w") as f:
        f.write(f"$ {shlex.join(command)}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
                f"--- exit status {done.returncode}\n")
    if done.returncode != 0:
        raise CompareError(f"{shlex.join(command)}\nexited with status {done.returncode}; "
                           f"its stderr:\n{done.stderr.rstrip() or '(empty)'}")


def require(report, keys, path):
    """report[k0][k1]... or a CompareError naming the report file and the missing key."""
    value = report
    for depth, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise CompareError(f"{path}: no key {'.'.join(keys[:depth + 1])!r}")
        value = value[key]
    return value


def require_number(report, keys, path, kind=(int, float)):
    value = require(report, keys, path)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise CompareError(f"{path}: {'.'.join(keys)} is {value!r}, not a number")
    return value


def read_split(report, path, rows):
    """The report's train/validation/test row indices, checked: in range, disjoint, non-empty."""
    split, seen = {}, set()
    for part in ("train", "validation", "test"):
        indices = require(report, ["split", part], path)
        if not isinstance(indices, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 0 <= i < rows for i in indices):
            raise CompareError(f"{path}: split.{part} is not a list of row indices in [0, {rows})")
        if len(set(indices)) != len(indices):
            raise CompareError(f"{path}: split.{part} lists a row twice")
        if seen.intersection(indices):
            raise CompareError(f"{path}: split.{part} shares rows with an earlier part")
        seen.update(indices)
        split[part] = np.asarray(indices, dtype=np.int64)
    if len(split["train"]) == 0 or len(split["test"]) == 0:
        raise CompareError(f"{path}: empty train or test split")
    if len(seen) != rows:
        print(f"{PROG}: note: {path}: the split covers {len(seen)} of {rows} rows", file=sys.stderr)
    return split


def read_report(path, dataset, seed, hidden):
    """The example's JSON report, checked against the contract and this run."""
    try:
        with open(path) as f:
            report = json.load(f)
    except FileNotFoundError:
        raise CompareError(f"{path}: the example exited with status 0 but wrote no report")
    except json.JSONDecodeError as e:
        raise CompareError(f"{path}: not JSON: {e}")
    expected = {"task": dataset.task, "rows": dataset.x.shape[0], "features": dataset.x.shape[1],
                "seed": seed, "hidden": hidden}
    for key, want in expected.items():
        got = require(report, [key], path)
        if got != want:
            raise CompareError(f"{path}: {key} is {got!r}, expected {want!r}")
    result = {
        "epochs_run": require_number(report, ["epochs_run"], path, int),
        "best_epoch": require_number(report, ["best_epoch"], path, int),
        "train_seconds": require_number(report, ["train_seconds"], path),
        "test": {k: require_number(report, ["test", k], path) for k in METRICS[dataset.task]},
        "validation": {k: require_number(report, ["validation", k], path)
                       for k in METRICS[dataset.task]},
    }
    if dataset.task == "regression":
        result["test"]["mse"] = require_number(report, ["test", "mse"], path)
    if result["train_seconds"] <= 0 or result["epochs_run"] < 1:
        raise CompareError(f"{path}: train_seconds {result['train_seconds']} or epochs_run "
                           f"{result['epochs_run']} out of range")
    split = read_split(report, path, dataset.x.shape[0])
    result["split_sizes"] = {part: int(len(idx)) for part, idx in split.items()}
    return result, split


# ---------------------------------------------------------------------------------------------
# scikit-learn


def make_estimator(task, args, seed, validation_fraction=None):
    """MLPClassifier, or MLPRegressor inside a target-standardising wrapper, as the example.
    With a validation_fraction, scikit-learn's own early stopping on that share of the rows it
    is given (its score: accuracy or R²), with gradscope's patience."""
    options = dict(hidden_layer_sizes=tuple(args.hidden), activation="relu", solver="adam",
                   learning_rate_init=args.lr, batch_size=args.batch, alpha=args.alpha,
                   max_iter=args.epochs, random_state=seed)
    if validation_fraction is not None:
        options.update(early_stopping=True, validation_fraction=validation_fraction,
                       n_iter_no_change=args.patience)
    if task == "classification":
        return MLPClassifier(**options)
    return TransformedTargetRegressor(regressor=MLPRegressor(**options),
                                      transformer=StandardScaler())


def sklearn_metrics(task, truth, predicted):
    """The test metrics under the report's keys, from sklearn.metrics."""
    if task == "classification":
        return {"accuracy": float(accuracy_score(truth, predicted)),
                "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0))}
    return {"r2": float(r2_score(truth, predicted)),
            "mae": float(mean_absolute_error(truth, predicted)),
            "mse": float(mean_squared_error(truth, predicted))}


def run_sklearn(dataset, split, args, seed, early_stopping=False):
    """Fits on the train rows only, scores the test rows; fit() timed alone. With
    early_stopping, fits on the train and validation rows together and lets scikit-learn hold
    out as many of them as gradscope's validation rows (its own random choice) to stop on."""
    rows = split["train"]
    fraction = None
    if early_stopping:
        rows = np.concatenate([split["train"], split["validation"]])
        fraction = len(split["validation"]) / len(rows)
    scaler = StandardScaler().fit(dataset.x[rows])
    x_train = scaler.transform(dataset.x[rows])
    x_test = scaler.transform(dataset.x[split["test"]])
    y_train, y_test = dataset.y[rows], dataset.y[split["test"]]
    model = make_estimator(dataset.task, args, seed, fraction)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
    mlp = model if dataset.task == "classification" else model.regressor_
    return {"fit_seconds": seconds, "n_iter": int(mlp.n_iter_),
            "convergence_warning": any(issubclass(w.category, ConvergenceWarning) for w in caught),
            "test": sklearn_metrics(dataset.task, y_test, model.predict(x_test))}


# ---------------------------------------------------------------------------------------------
# Summary


def spread(values, fmt):
    """'median (min–max)' of the values, each formatted with fmt."""
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def metric_format(key):
    return (lambda v: f"{v:.1f}") if key == "mae" else (lambda v: f"{v:.3f}")


def ms_format(v):
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def table(dataset, runs, args):
    """A Markdown table with its caption for one data set's runs (one dict per seed)."""
    keys = METRICS[dataset.task]
    rows_n, features_n = dataset.x.shape
    seeds = ", ".join(str(r["seed"]) for r in runs)
    sides = [("gradscope", [r["gradscope"] for r in runs], "train_seconds", "epochs_run"),
             (f"scikit-learn {sklearn.__version__}", [r["sklearn"] for r in runs], "fit_seconds",
              "n_iter"),
             (f"scikit-learn {sklearn.__version__}, early_stopping",
              [r["sklearn_early_stopping"] for r in runs], "fit_seconds", "n_iter")]
    lines = [f"### {dataset.name} ({dataset.task}, {rows_n} rows × {features_n} features)", "",
             "| tool | " + " | ".join(METRIC_LABELS[k] for k in keys)
             + " | train time (ms) | epochs run | ms / epoch |",
             "|---" * (len(keys) + 4) + "|"]
    for label, results, time_key, epochs_key in sides:
        cells = [spread([r["test"][k] for r in results], metric_format(k)) for k in keys]
        cells.append(spread([1e3 * r[time_key] for r in results], ms_format))
        cells.append(spread([r[epochs_key] for r in results], lambda v: f"{v:g}"))
        cells.append(spread([1e3 * r[time_key] / r[epochs_key] for r in results], ms_format))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    sizes = runs[0]["gradscope"]["split_sizes"]
    warned = sum(r["sklearn"]["convergence_warning"] for r in runs)
    def ratios(side):
        whole = statistics.median(r[side]["fit_seconds"] / r["gradscope"]["train_seconds"]
                                  for r in runs)
        per_epoch = statistics.median(
            (r[side]["fit_seconds"] / r[side]["n_iter"])
            / (r["gradscope"]["train_seconds"] / r["gradscope"]["epochs_run"]) for r in runs)
        return f"{whole:.1f} (per epoch {per_epoch:.1f})"

    lines += [
        "",
        f"Median (min–max) over seeds {seeds}. Both: hidden {','.join(map(str, args.hidden))}, "
        f"ReLU, Adam (lr {args.lr:g}), batch {args.batch}, L2 penalty alpha "
        f"{args.alpha:g} (gradscope: weight decay alpha / batch on the weights), at most "
        f"{args.epochs} epochs, features standardised on the train rows"
        f"{', target too' if dataset.task == 'regression' else ''}. "
        f"Split of seed {runs[0]['seed']}: {sizes['train']} train, {sizes['validation']} "
        f"validation, {sizes['test']} test rows (gradscope's seeded"
        f"{' stratified' if dataset.task == 'classification' else ''} split; each seed its own). "
        f"gradscope trains on the train rows and stops early on the validation rows (patience "
        f"{args.patience}), restoring the best epoch's weights; scikit-learn gets the same train "
        f"rows, never sees the validation or test rows, and stops on its training loss (tol 1e-4, "
        f"n_iter_no_change 10, its defaults); 'early_stopping' is scikit-learn given the train and "
        f"validation rows together with early_stopping=True, holding out as many rows as "
        f"gradscope's validation part (its own random choice) and n_iter_no_change "
        f"{args.patience}. "
        f"All are scored on the same test rows, gradscope by "
        f"its own metrics code, scikit-learn by sklearn.metrics. Time: gradscope's training loop "
        f"including its per-epoch validation; scikit-learn's fit() alone (feature scaler "
        f"excluded{', target scaler included' if dataset.task == 'regression' else ''}). "
        f"scikit-learn without early stopping reached max_iter without converging "
        f"(ConvergenceWarning) in {warned} of {len(runs)} runs.",
        "",
        f"Training time of scikit-learn / gradscope, median of per-seed ratios: "
        f"{ratios('sklearn')}; with early_stopping {ratios('sklearn_early_stopping')}.",
    ]
    return "\n".join(lines)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info():
    """The BLAS numpy and scikit-learn run on: threadpoolctl's view (OpenBLAS, MKL, BLIS and
    OpenMP with their thread counts) plus the BLAS/LAPACK shared libraries mapped into this
    process, which also names a reference BLAS that threadpoolctl does not recognise."""
    pools = []
    try:
        from threadpoolctl import threadpool_info
        for i in threadpool_info():
            version = f" {i['version']}" if i.get("version") else ""
            pools.append(f"{i.get('internal_api')}{version} ({i.get('num_threads')} threads)")
    except ImportError:
        pass
    libraries = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                path = fields[-1] if len(fields) >= 6 else ""
                name = os.path.basename(path)
                if re.search(r"blas|lapack|mkl", name) and ".cpython-" not in name:
                    libraries.add(os.path.realpath(path))
    except OSError:
        pass
    return {"threadpools": pools, "libraries": sorted(libraries)}


def provenance(argv):
    """The command and the versions, for the top of the output and results.json."""
    return {
        "command": shlex.join([sys.executable, "tools/compare_sklearn.py"] + argv),
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model(),
        "blas": blas_info(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def provenance_lines(info):
    blas = ", ".join(info["blas"]["libraries"]) or "unknown"
    if info["blas"]["threadpools"]:
        blas += " [" + "; ".join(info["blas"]["threadpools"]) + "]"
    return [f"    {info['command']}", "",
            f"Python {info['python']}, scikit-learn {info['sklearn']}, numpy {info['numpy']}, "
            f"BLAS: {blas}; {info['cpu_count']} CPUs ({info['cpus_usable']} usable), "
            f"{info['cpu_model']}; {info['date']}."]


# ---------------------------------------------------------------------------------------------


def compare_dataset(dataset, args, out):
    """Writes the CSV, runs both tools for every seed; returns the per-seed results."""
    csv_path = os.path.join(out, f"{dataset.name}.csv")
    write_csv(dataset, csv_path)
    runs = []
    for seed in args.seeds:
        stem = f"{dataset.name}-seed{seed}"
        report_path = os.path.join(out, "reports", stem + ".json")
        if os.path.exists(report_path):
            os.remove(report_path)  # never read a previous run's report
        command = gradscope_command(args, csv_path, dataset, seed, report_path,
                                    os.path.join(out, "checkpoints", stem + ".safetensors"))
        run_gradscope(command, os.path.join(out, "logs", stem + ".log"))
        gradscope, split = read_report(report_path, dataset, seed, args.hidden)
        runs.append({"seed": seed, "gradscope": gradscope,
                     "sklearn": run_sklearn(dataset, split, args, seed),
                     "sklearn_early_stopping": run_sklearn(dataset, split, args, seed,
                                                           early_stopping=True)})
        g, s = runs[-1]["gradscope"], runs[-1]["sklearn"]
        key = METRICS[dataset.task][0]
        print(f"{PROG}: {stem}: gradscope {key} {g['test'][key]:.4f} in {g['train_seconds']:.3f} s "
              f"({g['epochs_run']} epochs); scikit-learn {s['test'][key]:.4f} in "
              f"{s['fit_seconds']:.3f} s ({s['n_iter']} epochs)", file=sys.stderr)
    return runs


def main(argv):
    args = parse_args(argv)
    info = provenance(argv)
    try:
        check_binary(args.binary)
        for sub in ("", "reports", "checkpoints", "logs"):
            os.makedirs(os.path.join(args.out, sub), exist_ok=True)
        print("\n".join(provenance_lines(info)) + "\n", flush=True)
        results, tables = {}, []
        for name in args.datasets:
            dataset = load_dataset(name)
            results[name] = compare_dataset(dataset, args, args.out)
            tables.append(table(dataset, results[name], args))
            print(tables[-1] + "\n", flush=True)
    except CompareError as e:
        sys.exit(f"{PROG}: error: {e}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"provenance": info, "settings": vars(args), "results": results}, f, indent=1)
        f.write("\n")
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write("\n".join(provenance_lines(info)) + "\n\n" + "\n\n".join(tables) + "\n")
    print(f"{PROG}: per-seed numbers in {os.path.join(args.out, 'results.json')}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
