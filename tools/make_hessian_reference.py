#!/usr/bin/python3
"""Generate the PyTorch (float64) Hessian-vector products that tests/test_hessian_torch.cpp checks
gradscope's exact second-order pass (nn/hessian.hpp) against.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_hessian_reference.py

Writes tests/data/hessian_reference.json in the layout of the other reference files
({"cases": {name: {"inputs": {...}, "outputs": {...}, "grads": {...}}}}, tensors 2-D row-major,
a bias [1 x n]), each case with more entries:
  "network"     how gradscope builds its twin: {"activation", "norm", "residual_scale", "mode"}
  "loss"        "cross_entropy" | "mse" | "bce_with_logits" (reduction mean)
  "parameters"  the parameter names in named_parameters() order (PyTorch's, which is gradscope's)
  "buffers"     batch norm's running statistics by name (evaluation-mode cases only)
  "directions"  {"v": {name: tensor}, "v2": {name: tensor}}
  "products"    {"v": {name: H v}, "v2": {name: H v2}}
and "inputs" holding x, labels ([1 x B] class indices) or targets, pos_weight (BCE only) and
every parameter by name; "grads" the loss's gradient by name; "outputs" the loss.

The network is gradscope's mlp() (nn/mlp.hpp) built from PyTorch modules with gradscope's module
names, so that named_parameters() agree name for name and in order:
  layers.0   Sequential{linear, bn|ln, act}             (5 -> 6 changes the width: plain)
  layers.1   Residual{branch = Sequential{bn|ln, act, linear}}, y = x + s * branch(x)
  layers.2   the same
  layers.3   Sequential{linear = Linear(6, 3)}
with gradscope's definitions: batch norm eps 1e-5, normalising by the batch's biased variance in
training mode and by the running statistics in evaluation mode; layer norm eps 1e-5; GELU the
exact (erf) one, PyTorch's default; SiLU x * sigmoid(x).

H v is PyTorch's double backward: g = autograd.grad(loss, params, create_graph=True), then
autograd.grad(sum_i <g_i, v_i>, params). Every parameter is drawn here and stored, and the
gradscope twin loads every one of them by name, so gradscope's own initialisation never matters.

The cases:
  gelu_batchnorm_train_ce   GELU, batch norm in training mode (batch statistics), residual scale
                            1, cross-entropy, batch 8
  silu_layernorm_mse        SiLU, layer norm, residual scale 1, MSE against random targets
  gelu_batchnorm_eval_bce   GELU, batch norm in evaluation mode with running statistics set to
                            non-trivial values, residual scale 0.5, BCE with logits against
                            targets in (0, 1) with a pos_weight per column
"""

import collections
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_nn_reference import enc  # tensors as {"shape": [r, c], "data": [...]}

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "hessian_reference.json")

WIDTHS = [5, 6, 6, 6, 3]
BATCH = 8
EPS = 1e-5  # gradscope's BatchNormOptions::eps and LayerNormOptions::eps


class Residual(nn.Module):
    """gradscope's Residual (nn/residual.hpp) with the identity skip: y = x + s * branch(x)."""

    def __init__(self, branch, scale):
        super().__init__()
        self.branch = branch
        self.scale = scale

    def forward(self, x):
        f = self.branch(x)
        return x + f if self.scale == 1.0 else x + f * self.scale


def named_sequential(*pairs):
    return nn.Sequential(collections.OrderedDict(pairs))


ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU}  # nn.GELU() is the exact (erf) GELU


def norm_layer(norm, width):
    if norm == "batch":
        return ("bn", nn.BatchNorm1d(width, eps=EPS))
    if norm == "layer":
        return ("ln", nn.LayerNorm(width, eps=EPS))
    raise ValueError(norm)


class MLP(nn.Module):
    """gradscope's mlp({.widths, .activation, .norm, .residual = true, .residual_scale})."""

    def __init__(self, widths, activation, norm, scale):
        super().__init__()
        act = ACTIVATIONS[activation]
        layers = []
        for l in range(len(widths) - 2):
            if widths[l] == widths[l + 1]:
                branch = named_sequential(norm_layer(norm, widths[l]), ("act", act()),
                                          ("linear", nn.Linear(widths[l], widths[l + 1])))
                layers.append(Residual(branch, scale))
            else:
                layers.append(named_sequential(("linear", nn.Linear(widths[l], widths[l + 1])),
                                               norm_layer(norm, widths[l + 1]), ("act", act())))
        layers.append(named_sequential(("linear", nn.Linear(widths[-2], widths[-1]))))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


CASES = {
    "gelu_batchnorm_train_ce": dict(activation="gelu", norm="batch", scale=1.0, mode="train",
                                    loss="cross_entropy", seed=41),
    "silu_layernorm_mse": dict(activation="silu", norm="layer", scale=1.0, mode="train",
                               loss="mse", seed=42),
    "gelu_batchnorm_eval_bce": dict(activation="gelu", norm="batch", scale=0.5, mode="eval",
                                    loss="bce_with_logits", seed=43),
}


def draw_parameters(net, g):
    """Every parameter drawn here: weights N(0, 0.6^2), biases N(0, 0.2^2), norm scales
    1 + N(0, 0.2^2), norm shifts N(0, 0.1^2)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            z = torch.randn(p.shape, generator=g)
            if ".bn." in name or ".ln." in name:
                p.copy_(1.0 + 0.2 * z if name.endswith("weight") else 0.1 * z)
            else:
                p.copy_(0.6 * z if name.endswith("weight") else 0.2 * z)


def make_case(name, spec):
    g = torch.Generator().manual_seed(spec["seed"])
    net = MLP(WIDTHS, spec["activation"], spec["norm"], spec["scale"])
    draw_parameters(net, g)
    buffers = {}
    if spec["mode"] == "eval":
        with torch.no_grad():
            for bname, b in net.named_buffers():
                if bname.endswith("running_mean"):
                    b.copy_(0.3 * torch.randn(b.shape, generator=g))
                    buffers[bname] = b
                elif bname.endswith("running_var"):
                    b.copy_(0.5 + torch.rand(b.shape, generator=g))
                    buffers[bname] = b
        net.eval()
    else:
        net.train()

    x = torch.randn(BATCH, WIDTHS[0], generator=g)
    inputs = {"x": enc(x)}
    classes = WIDTHS[-1]
    if spec["loss"] == "cross_entropy":
        labels = torch.randint(0, classes, (BATCH,), generator=g)
        inputs["labels"] = enc(labels.to(torch.float64))
        loss_fn = lambda out: F.cross_entropy(out, labels)
    elif spec["loss"] == "mse":
        targets = torch.randn(BATCH, classes, generator=g)
        inputs["targets"] = enc(targets)
        loss_fn = lambda out: F.mse_loss(out, targets)
    else:
        targets = torch.rand(BATCH, classes, generator=g)
        pos_weight = 0.5 + torch.rand(classes, generator=g) * 1.5
        inputs["targets"] = enc(targets)
        inputs["pos_weight"] = enc(pos_weight)
        loss_fn = lambda out: F.binary_cross_entropy_with_logits(out, targets,
                                                                 pos_weight=pos_weight)

    names = [n for n, _ in net.named_parameters()]
    params = [p for _, p in net.named_parameters()]
    v = [torch.randn(p.shape, generator=g) for p in params]
    v2 = [torch.randn(p.shape, generator=g) for p in params]

    loss = loss_fn(net(x))
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gv = sum((gi * vi).sum() for gi, vi in zip(grads, v))
    hv = torch.autograd.grad(gv, params, retain_graph=True)
    gv2 = sum((gi * vi).sum() for gi, vi in zip(grads, v2))
    hv2 = torch.autograd.grad(gv2, params)

    # Symmetry of torch's own products, and that they are not trivially small.
    v2hv = sum(float((a * b).sum()) for a, b in zip(v2, hv))
    vhv2 = sum(float((a * b).sum()) for a, b in zip(v, hv2))
    assert abs(v2hv - vhv2) <= 1e-12 * max(1.0, abs(v2hv)), (name, v2hv, vhv2)
    assert max(float(h.abs().max()) for h in hv) > 1e-2, name

    for n, p in zip(names, params):
        inputs[n] = enc(p)
    by_name = lambda ts: {n: enc(t) for n, t in zip(names, ts)}
    return {
        "network": {"activation": spec["activation"], "norm": spec["norm"],
                    "residual_scale": spec["scale"], "mode": spec["mode"]},
        "loss": spec["loss"],
        "parameters": names,
        "buffers": {n: enc(b) for n, b in buffers.items()},
        "inputs": inputs,
        "outputs": {"loss": enc(loss)},
        "grads": by_name(grads),
        "directions": {"v": by_name(v), "v2": by_name(v2)},
        "products": {"v": by_name(hv), "v2": by_name(hv2)},
    }, v2hv


def main():
    cases = {}
    for name, spec in CASES.items():
        cases[name], v2hv = make_case(name, spec)
        print("%-26s loss %.6f  v2.Hv %.6f" % (name, cases[name]["outputs"]["loss"]["data"][0],
                                                v2hv))
    doc = {"generator": "tools/make_hessian_reference.py", "torch": torch.__version__,
           "cases": cases}
    tmp = OUT_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    os.replace(tmp, OUT_PATH)
    print("wrote", OUT_PATH, os.path.getsize(OUT_PATH), "bytes")


if __name__ == "__main__":
    main()
