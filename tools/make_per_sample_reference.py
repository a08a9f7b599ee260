#!/usr/bin/python3
"""Generate the PyTorch (float64) per-sample gradient statistics that
tests/test_per_sample_torch.cpp checks GradientMonitor's per-sample mode against.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_per_sample_reference.py

Writes tests/data/per_sample_reference.json in the layout of the other reference files
({"cases": {name: {"inputs": {...}, "outputs": {...}, "grads": {...}}}}, tensors 2-D row-major),
each case with one more entry, "per_sample": the statistics of every Linear layer (by its module
path, which is also gradscope's) and of the network.

The networks, built with the module names gradscope gives them, so that named_parameters() and
named_modules() agree with gradscope's:
  plain       Sequential: Linear(5,7) -> Tanh -> Linear(7,6) -> ReLU -> Linear(6,4); the first
              ReLU unit is dead on every sample (its bias is -20), so some parameters have a zero
              gradient on every sample and drop out of the GSNR's mean, as gradscope documents.
  residual    gradscope's mlp({.widths = {5, 6, 6, 6, 4}, .activation = Tanh{}, .residual = true,
              .residual_scale = 0.5}): layers.0 = Sequential{linear, act}, layers.1 and layers.2 =
              Residual{branch = Sequential{act, linear}} (pre-activation, y = x + 0.5 F(x)),
              layers.3 = Sequential{linear}.
  projection  Sequential: Linear(5,6) -> ReLU -> Residual(branch = Sequential{Tanh, Linear(6,4)},
              skip = bias-free Linear(6,4) "projection", scale 0.5) -> Linear(4,3): a Linear
              without bias.
each with cross-entropy loss, reduction mean and sum (cases "<network>_<reduction>").

Per-sample gradients come from a loop, one backward per sample on that sample's own loss term l_i
(the loss of a batch of one, which is l_i under either reduction): gradscope's convention
(diag/monitor.hpp) is that g_i = d(l_i)/d(theta) whatever the reduction, so the statistics of the
mean and sum cases agree; the script checks that the g_i sum (sum) or average (mean) to the batch
gradient of one batched backward with that reduction, which it also stores. From the g_i (weight
and bias of a layer flattened together) it computes, the textbook way (two passes: the mean, then
deviations from it), every per-sample field of gradscope's LayerStats (diag/profile.hpp) with the
formulas of diag/gradient_noise.hpp:
  sq_norms              |g_i|^2 in batch order
  per_sample_norm_*     mean, max and the 10/50/90% quantiles of |g_i| (torch.quantile's linear
                        interpolation: Hyndman-Fan definition 7, as gradscope)
  mean_grad_sq_norm     |g_bar|^2
  trace_covariance      sum_i |g_i - g_bar|^2 / (B - 1)
  gradient_noise_scale  B_simple = tr Sigma / (|g_bar|^2 - tr Sigma / B)
  gsnr                  mean over the parameters some sample moves (sum_i g_ij^2 > 0) of
                        g_bar_j^2 / sigma_j^2, sigma_j^2 = (1/B) sum_i (g_ij - g_bar_j)^2
  gsnr_parameters       how many parameters that mean is over
and the same over all layers' parameters taken together ("network").

The script refuses to write the file (exit status 1) if a ReLU input lies within 1e-4 of its kink
(other than the dead unit's, far below it), or if a statistic is ill-conditioned for gradscope's
one-pass formulas (tr Sigma from sum_i |g_i|^2 - B |g_bar|^2, sigma_j^2 from m_j - g_bar_j^2, the
noise scale's denominator): condition number above 1e3, which would make 1e-10 relative
agreement a matter of luck; or if the noise scale is not measurable (the denominator <= 0).
"""

import collections
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_nn_reference import enc  # tensors as {"shape": [r, c], "data": [...]}

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "per_sample_reference.json")

BATCH = 10
KINK_MARGIN = 1e-4
MAX_CONDITION = 1e3


class Residual(nn.Module):
    """gradscope's Residual (nn/residual.hpp): y = skip(x) + scale * branch(x), skip the identity
    or a bias-free Linear named "projection", registered after the branch."""

    def __init__(self, branch, scale, projection=None):
        super().__init__()
        self.branch = branch
        if projection is not None:
            self.projection = projection
        self.scale = scale

    def forward(self, x):
        f = self.branch(x)
        skip = self.projection(x) if hasattr(self, "projection") else x
        return skip + f if self.scale == 1.0 else skip + f * self.scale


def named_sequential(*pairs):
    return nn.Sequential(collections.OrderedDict(pairs))


def plain_net():
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.ReLU(), nn.Linear(6, 4))


class MLP(nn.Module):
    """gradscope's mlp() with residual blocks and one activation (nn/mlp.hpp): a hidden layer that
    keeps its width is Residual{branch = Sequential{act, linear}}, one that changes it is
    Sequential{linear, act}, the output layer Sequential{linear}."""

    def __init__(self, widths, activation, scale):
        super().__init__()
        layers = []
        for l in range(len(widths) - 2):
            if widths[l] == widths[l + 1]:
                branch = named_sequential(("act", activation()),
                                          ("linear", nn.Linear(widths[l], widths[l + 1])))
                layers.append(Residual(branch, scale))
            else:
                layers.append(named_sequential(("linear", nn.Linear(widths[l], widths[l + 1])),
                                               ("act", activation())))
        layers.append(named_sequential(("linear", nn.Linear(widths[-2], widths[-1]))))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def residual_net():
    return MLP([5, 6, 6, 6, 4], nn.Tanh, 0.5)


def projection_net():
    branch = nn.Sequential(nn.Tanh(), nn.Linear(6, 4))
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(),
                         Residual(branch, 0.5, projection=nn.Linear(6, 4, bias=False)),
                         nn.Linear(4, 3))


# name: (builder, classes, labels, seed, parameters to set after the random draw)
NETWORKS = {
    "plain": (plain_net, 4, [0, 0, 0, 0, 0, 0, 1, 0, 0, 2], 31, {"2.bias": (0, -20.0)}),
    "residual": (residual_net, 4, [1, 1, 1, 1, 1, 3, 1, 1, 1, 1], 32, {}),
    "projection": (projection_net, 3, [2, 2, 0, 2, 2, 2, 2, 2, 1, 2], 33, {}),
}
REDUCTIONS = ["mean", "sum"]


def refuse(message):
    print("make_per_sample_reference.py: refusing to write the file:", message, file=sys.stderr)
    sys.exit(1)


def build(name):
    builder, classes, labels, seed, overrides = NETWORKS[name]
    g = torch.Generator().manual_seed(seed)
    net = builder()
    with torch.no_grad():
        for pname, p in net.named_parameters():
            p.copy_(0.8 * torch.randn(p.shape, generator=g))
        params = dict(net.named_parameters())
        for pname, (index, value) in overrides.items():
            params[pname][index] = value
    x = torch.randn(BATCH, 5, generator=g)
    y = torch.tensor(labels, dtype=torch.long)
    assert len(labels) == BATCH and max(labels) < classes
    return net, x, y


def check_relu_kinks(net, x, name):
    """Every ReLU input is at least KINK_MARGIN from 0, except the units that are dead on every
    sample by construction (inputs below -1)."""
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append(i[0].detach()))
             for m in net.modules() if isinstance(m, nn.ReLU)]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    for z in seen:
        near = (z.abs() < KINK_MARGIN).any()
        if near:
            refuse("%s: a ReLU input within %g of 0" % (name, KINK_MARGIN))


def linear_layers(net):
    return [(path, m) for path, m in net.named_modules() if isinstance(m, nn.Linear)]


def flat_grad(layer):
    parts = [layer.weight.grad.flatten()]
    if layer.bias is not None:
        parts.append(layer.bias.grad.flatten())
    return torch.cat(parts)


def per_sample_gradients(net, x, y, reduction):
    """g[path] is [B x parameters]: row i the gradient of sample i's own loss term."""
    layers = linear_layers(net)
    rows = {path: [] for path, _ in layers}
    for i in range(BATCH):
        net.zero_grad(set_to_none=True)
        # A batch of one: its loss is l_i under either reduction.
        F.cross_entropy(net(x[i:i + 1]), y[i:i + 1], reduction=reduction).backward()
        for path, layer in layers:
            rows[path].append(flat_grad(layer).clone())
    return {path: torch.stack(r) for path, r in rows.items()}


def statistics(g, where):
    """The per-sample statistics of the rows of g (diag/gradient_noise.hpp), and a refusal when
    one of them is ill-conditioned for gradscope's one-pass formulas."""
    b = g.shape[0]
    sq_norms = (g * g).sum(dim=1)
    norms = sq_norms.sqrt()
    g_bar = g.mean(dim=0)
    mean_sq = float((g_bar * g_bar).sum())
    deviations = g - g_bar
    trace = float((deviations * deviations).sum()) / (b - 1)
    signal = mean_sq - trace / b
    if not signal > 0.0:
        refuse("%s: |g_bar|^2 - tr Sigma / B = %g, the noise scale is not measurable"
               % (where, signal))
    condition_trace = float(sq_norms.sum()) / ((b - 1) * trace)
    condition_signal = (mean_sq + trace / b) / signal
    second = (g * g).mean(dim=0)
    moved = second > 0.0
    variance = (deviations * deviations).mean(dim=0)[moved]
    condition_gsnr = float((second[moved] / variance).max())
    for what, c in [("tr Sigma", condition_trace), ("the noise scale", condition_signal),
                    ("a GSNR term", condition_gsnr)]:
        if not c <= MAX_CONDITION:
            refuse("%s: %s has condition number %g > %g" % (where, what, c, MAX_CONDITION))
    gsnr_terms = g_bar[moved] ** 2 / variance
    return {
        "sq_norms": sq_norms.tolist(),
        "per_sample_norm_mean": float(norms.mean()),
        "per_sample_norm_max": float(norms.max()),
        "per_sample_norm_q10": float(torch.quantile(norms, 0.1)),
        "per_sample_norm_q50": float(torch.quantile(norms, 0.5)),
        "per_sample_norm_q90": float(torch.quantile(norms, 0.9)),
        "mean_grad_sq_norm": mean_sq,
        "trace_covariance": trace,
        "gradient_noise_scale": trace / signal,
        "gsnr": float(gsnr_terms.mean()),
        "gsnr_parameters": int(moved.sum()),
    }


def make_case(name, reduction):
    net, x, y = build(name)
    check_relu_kinks(net, x, name)
    where = "%s_%s" % (name, reduction)
    # One batched backward with the reduction: the loss and gradients the twin must reproduce.
    net.zero_grad(set_to_none=True)
    logits = net(x)
    loss = F.cross_entropy(logits, y, reduction=reduction)
    loss.backward()
    batch_grads = {p: t.grad.clone() for p, t in net.named_parameters()}
    batch_flat = {path: flat_grad(layer).clone() for path, layer in linear_layers(net)}

    g = per_sample_gradients(net, x, y, reduction)
    for path, rows in g.items():
        total = rows.sum(dim=0) if reduction == "sum" else rows.mean(dim=0)
        if not torch.allclose(total, batch_flat[path], rtol=1e-12, atol=1e-14):
            refuse("%s: the per-sample gradients of %s do not %s to the batch gradient"
                   % (where, path, "sum" if reduction == "sum" else "average"))

    layers = {path: statistics(rows, "%s layer %s" % (where, path)) for path, rows in g.items()}
    dead = sum(rows.shape[1] for rows in g.values()) - sum(
        s["gsnr_parameters"] for s in layers.values())
    if name == "plain" and dead == 0:
        refuse("%s: the dead ReLU unit leaves no parameter out of the GSNR" % where)
    network = statistics(torch.cat(list(g.values()), dim=1), "%s network" % where)

    inputs = {p: enc(t) for p, t in net.named_parameters()}
    inputs["x"] = enc(x)
    inputs["labels"] = enc(y.to(torch.float64))
    return {
        "network": name,
        "reduction": reduction,
        "inputs": inputs,
        "outputs": {"logits": enc(logits), "loss": enc(loss)},
        "grads": {p: enc(t) for p, t in batch_grads.items()},
        "per_sample": {"layer_order": list(layers), "layers": layers, "network": network},
    }, dead


def main():
    cases = {}
    for name in NETWORKS:
        for reduction in REDUCTIONS:
            case, dead = make_case(name, reduction)
            cases["%s_%s" % (name, reduction)] = case
            ps = case["per_sample"]["network"]
            print("%-16s loss %.6f  B_simple %.4f  GSNR %.4f over %d parameters (%d left out)"
                  % ("%s_%s" % (name, reduction), case["outputs"]["loss"]["data"][0],
                     ps["gradient_noise_scale"], ps["gsnr"], ps["gsnr_parameters"], dead))
    doc = {"generator": "tools/make_per_sample_reference.py", "torch": torch.__version__,
           "batch": BATCH, "cases": cases}
    with open(OUT_PATH, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", OUT_PATH, os.path.getsize(OUT_PATH), "bytes")


if __name__ == "__main__":
    main()
