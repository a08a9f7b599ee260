#!/usr/bin/python3
"""Generate float64 PyTorch reference values for gradscope's loss options.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_loss_reference.py

Writes tests/data/loss_reference.json: {"cases": {name: {"loss": which function,
"options": {...}, "inputs": {...}, "outputs": {"loss": ...}, "grads": {...}}}}, every tensor
2-D as {"shape": [r, c], "data": [row-major]}. The options use gradscope's names and PyTorch's
meaning; "seed" is the upstream gradient that backward starts from (a random matrix for
reduction "none", 1 otherwise), so a per-element loss's gradient is checked through a random
projection rather than through its sum alone; bce's element "weight" is an input without a
gradient (PyTorch refuses one). tests/test_losses.cpp runs every case.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "loss_reference.json")

ROWS, CLASSES = 7, 5


def enc(t):
    t = torch.as_tensor(t).detach().to(torch.float64)
    if t.dim() == 0:
        t = t.reshape(1, 1)
    elif t.dim() == 1:
        t = t.reshape(-1, 1)
    assert t.dim() == 2
    return {"shape": list(t.shape), "data": t.flatten().tolist()}


def finish(kind, options, out, leaves, g, extra_inputs):
    """Backpropagates `out` from a seed and packs the case."""
    seed = torch.randn(out.shape, generator=g) if out.dim() > 0 else torch.tensor(1.0)
    grads = torch.autograd.grad((out * seed).sum(), list(leaves.values()))
    inputs = {k: enc(v) for k, v in leaves.items()}
    inputs.update({k: enc(v) for k, v in extra_inputs.items()})
    inputs["seed"] = enc(seed)
    return {"loss": kind, "options": options, "inputs": inputs, "outputs": {"loss": enc(out)},
            "grads": {k: enc(v) for k, v in zip(leaves, grads)}}


def cross_entropy_case(seed, reduction="mean", weight=None, ignore_index=None,
                       label_smoothing=0.0):
    g = torch.Generator().manual_seed(seed)
    logits = (2.0 * torch.randn(ROWS, CLASSES, generator=g)).requires_grad_()
    labels = torch.randint(0, CLASSES, (ROWS,), generator=g)
    if ignore_index is not None:
        # at least two ignored rows, whatever the draw gave
        labels[1] = ignore_index
        labels[4] = ignore_index
    w = None if weight is None else torch.tensor(weight)
    out = F.cross_entropy(logits, labels, weight=w,
                          ignore_index=-100 if ignore_index is None else ignore_index,
                          reduction=reduction, label_smoothing=label_smoothing)
    options = {"reduction": reduction, "label_smoothing": label_smoothing}
    if weight is not None:
        options["weight"] = weight
    if ignore_index is not None:
        options["ignore_index"] = ignore_index
    return finish("cross_entropy", options, out, {"logits": logits}, g,
                  {"labels": labels.to(torch.float64)})


BCE_COLS = 4
# PyTorch shapes of bce's element weight, each broadcast to [ROWS x BCE_COLS]; a 1-D weight is
# one per column, which gradscope takes as a [1 x n] row.
BCE_WEIGHT_SHAPES = {"scalar": (1, 1), "row": (1, BCE_COLS), "row_1d": (BCE_COLS,),
                     "column": (ROWS, 1), "full": (ROWS, BCE_COLS)}


def bce_case(seed, reduction="mean", pos_weight=None, scale=3.0, weight_shape=None):
    g = torch.Generator().manual_seed(seed)
    cols = BCE_COLS
    # logits up to ~|30| in the large cases: exp(30) is where a naive form loses digits
    x = (scale * torch.randn(ROWS, cols, generator=g)).requires_grad_()
    t = torch.rand(ROWS, cols, generator=g).requires_grad_()
    pw = None if pos_weight is None else torch.tensor(pos_weight)
    # drawn after x and t, so the cases without a weight keep their values
    w = None if weight_shape is None else 3.0 * torch.rand(weight_shape, generator=g)
    out = F.binary_cross_entropy_with_logits(x, t, reduction=reduction, pos_weight=pw, weight=w)
    options = {"reduction": reduction}
    if pos_weight is not None:
        options["pos_weight"] = pos_weight
    # the weight travels as an input (it may be a matrix) in the shape gradscope is given
    extra = {} if w is None else {"weight": w.reshape(1, -1) if w.dim() == 1 else w}
    return finish("binary_cross_entropy_with_logits", options, out, {"x": x, "t": t}, g, extra)


def regression_case(kind, seed, reduction="mean", **param):
    g = torch.Generator().manual_seed(seed)
    p = (2.0 * torch.randn(ROWS, 3, generator=g)).requires_grad_()
    t = (2.0 * torch.randn(ROWS, 3, generator=g)).requires_grad_()
    d = (p - t).detach().abs()
    # A kink of huber/smooth_l1 at |d| = delta or beta, or of l1 at 0, has one-sided
    # derivatives that agree for huber/smooth_l1 but not for l1; keep every |d| clear of them.
    kinks = [0.0] + list(param.values())
    if any((d - k).abs().min() < 1e-3 for k in kinks):
        sys.exit("%s case %d: a difference lies within 1e-3 of a kink" % (kind, seed))
    fn = {"mse_loss": F.mse_loss, "l1_loss": F.l1_loss, "huber_loss": F.huber_loss,
          "smooth_l1_loss": F.smooth_l1_loss}[kind]
    out = fn(p, t, reduction=reduction, **param)
    options = {"reduction": reduction}
    options.update(param)
    d = (p - t).detach().abs()
    return finish(kind, options, out, {"p": p, "t": t}, g, {}), d


def main():
    cases = {}
    weight = [0.5, 2.0, 1.0, 0.25, 3.0]
    for reduction in ("mean", "sum", "none"):
        cases["ce_plain_" + reduction] = cross_entropy_case(1, reduction)
        cases["ce_weight_" + reduction] = cross_entropy_case(2, reduction, weight=weight)
        cases["ce_ignore_" + reduction] = cross_entropy_case(3, reduction, ignore_index=2)
        cases["ce_smooth_" + reduction] = cross_entropy_case(4, reduction, label_smoothing=0.2)
        cases["ce_all_" + reduction] = cross_entropy_case(
            5, reduction, weight=weight, ignore_index=3, label_smoothing=0.15)
        # an ignore_index outside the classes, as PyTorch's default -100 is
        cases["ce_ignore_outside_" + reduction] = cross_entropy_case(
            6, reduction, weight=weight, ignore_index=-100, label_smoothing=0.1)
        cases["ce_smooth_one_" + reduction] = cross_entropy_case(
            7, reduction, weight=weight, label_smoothing=1.0)

        cases["bce_" + reduction] = bce_case(11, reduction)
        cases["bce_pos_weight_" + reduction] = bce_case(12, reduction,
                                                        pos_weight=[1.0, 3.0, 0.5, 10.0])
        cases["bce_pos_weight_large_" + reduction] = bce_case(
            13, reduction, pos_weight=[2.0, 0.0, 0.5, 4.0], scale=15.0)

        for kind, param in (("mse_loss", {}), ("l1_loss", {}), ("huber_loss", {"delta": 1.0}),
                            ("huber_loss", {"delta": 2.5}), ("smooth_l1_loss", {"beta": 1.0}),
                            ("smooth_l1_loss", {"beta": 0.4}), ("smooth_l1_loss", {"beta": 0.0})):
            suffix = "".join("_%s%g" % kv for kv in param.items())
            seed = 21 + len(cases)
            case, d = regression_case(kind, seed, reduction, **param)
            # both sides of each kink must be exercised, or a wrong branch could pass
            for k in param.values():
                if k > 0 and not ((d < k).any() and (d > k).any()):
                    sys.exit("%s%s: no difference on one side of %g" % (kind, suffix, k))
            cases[kind + suffix + "_" + reduction] = case

    # after the loop above, whose regression seeds depend on the number of cases before them
    for reduction in ("mean", "sum", "none"):
        for i, (name, shape) in enumerate(BCE_WEIGHT_SHAPES.items()):
            cases["bce_weight_%s_%s" % (name, reduction)] = bce_case(
                101 + i, reduction, pos_weight=[1.0, 3.0, 0.5, 10.0], weight_shape=shape)
        cases["bce_weight_only_column_" + reduction] = bce_case(
            111, reduction, weight_shape=BCE_WEIGHT_SHAPES["column"])
        cases["bce_weight_large_full_" + reduction] = bce_case(
            112, reduction, pos_weight=[2.0, 0.0, 0.5, 4.0], scale=15.0,
            weight_shape=BCE_WEIGHT_SHAPES["full"])

    with open(OUT_PATH, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, indent=None)
        f.write("\n")
    for name, case in cases.items():
        loss = case["outputs"]["loss"]["data"]
        print("%-36s %s" % (name, loss[0] if len(loss) == 1 else "[%d values]" % len(loss)))


if __name__ == "__main__":
    main()
