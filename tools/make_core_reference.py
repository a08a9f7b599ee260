#!/usr/bin/python3
"""Generate float64 reference values and gradients for gradscope's core tests.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_core_reference.py

Writes tests/data/core_reference.json. Every case uses its own
torch.Generator().manual_seed(k); inputs are drawn in the order they are listed
in each case function, so the output is reproducible.

JSON layout:
  {"generator": ..., "torch_version": ...,
   "cases": {name: {"inputs":  {name: {"shape": [r, c], "data": [row-major]}},
                    "outputs": {name: {...}},   # always includes "loss", shape [1, 1]
                    "grads":   {input name: {...}}}}}  # d loss / d input
All tensors are 2-D. Constant inputs (labels/targets) appear in "inputs" only.
"""

import json
import os
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "core_reference.json")


class ReferenceError(RuntimeError):
    pass


def check(cond, msg):
    if not cond:
        raise ReferenceError(msg)


def gen(seed):
    return torch.Generator().manual_seed(seed)


def randn(g, *shape):
    return torch.randn(*shape, generator=g)


def rand(g, *shape):
    return torch.rand(*shape, generator=g)


def as_2d(t):
    t = t.detach()
    if t.dim() == 0:
        t = t.reshape(1, 1)
    check(t.dim() == 2, "non-2-D tensor of shape %s" % (list(t.shape),))
    return t


def encode(t):
    t = as_2d(t).contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def run_case(inputs, grad_names, forward):
    """inputs: ordered dict name -> tensor (leaf, float64).
    grad_names: names of inputs that require grad.
    forward: fn(dict of tensors) -> dict of outputs including "loss" (scalar)."""
    for n in grad_names:
        inputs[n].requires_grad_(True)
    outputs = forward(inputs)
    loss = outputs["loss"]
    check(loss.numel() == 1, "loss must be a scalar")
    outputs["loss"] = loss.reshape(1, 1)
    grads = torch.autograd.grad(loss.reshape(()), [inputs[n] for n in grad_names])
    for n in grad_names:
        check(inputs[n].dtype == torch.float64, "input %s is not float64" % n)
    return {
        "inputs": {n: encode(t) for n, t in inputs.items()},
        "outputs": {n: encode(t) for n, t in outputs.items()},
        "grads": {n: encode(gr) for n, gr in zip(grad_names, grads)},
    }


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def case_tanh_mlp_nll():
    g = gen(1)
    inp = {}
    inp["x"] = randn(g, 4, 3)
    inp["W1"] = randn(g, 5, 3) * 0.5
    inp["b1"] = randn(g, 1, 5) * 0.1
    inp["W2"] = randn(g, 3, 5) * 0.5
    inp["b2"] = randn(g, 1, 3) * 0.1
    labels = torch.tensor([0, 2, 1, 2])
    inp["Y"] = F.one_hot(labels, num_classes=3).to(torch.float64)

    def fwd(t):
        h = torch.tanh(t["x"] @ t["W1"].T + t["b1"])
        z = h @ t["W2"].T + t["b2"]
        loss = -(torch.log_softmax(z, dim=1) * t["Y"]).sum() / 4
        return {"z": z, "loss": loss}

    return run_case(inp, ["x", "W1", "b1", "W2", "b2"], fwd)


def case_sigmoid_mse_broadcast():
    g = gen(2)
    inp = {}
    inp["x"] = randn(g, 6, 4)
    inp["W"] = randn(g, 3, 4) * 0.5
    inp["b"] = randn(g, 1, 3) * 0.1
    inp["t"] = rand(g, 6, 3)

    def fwd(t):
        y = torch.sigmoid(t["x"] @ t["W"].T + t["b"])
        loss = ((y - t["t"]) ** 2).mean()
        return {"y": y, "loss": loss}

    return run_case(inp, ["x", "W", "b"], fwd)


def case_elementwise_chain():
    g = gen(3)
    inp = {}
    inp["a"] = randn(g, 3, 4)
    inp["b"] = rand(g, 3, 4) + 0.5
    inp["c"] = randn(g, 1, 4)
    dist = (inp["a"].abs() - 0.5).abs().min().item()
    check(dist >= 1e-3,
          "elementwise_chain: an element of a is within 1e-3 of +-0.5 "
          "(min distance %r); clamp kink would break finite differences" % dist)

    def fwd(t):
        a, b, c = t["a"], t["b"], t["c"]
        u = torch.sqrt(torch.exp(a) / b + 1) * torch.log(b) - c
        v = torch.pow(torch.abs(a) + 1, 1.5)
        w = torch.clamp(a, -0.5, 0.5) * torch.square(c)
        loss = (u.sum() + v.mean() + w.sum() / 3 + (-a).mean() * 0.25
                + (2.0 - b).sum() / (b + 1.0).sum())
        return {"u": u, "v": v, "w": w, "loss": loss}

    return run_case(inp, ["a", "b", "c"], fwd)


def _unique_max_margin(values, dim=None):
    """Smallest gap between the top value and the runner-up (per slice)."""
    if dim is None:
        top2 = values.flatten().topk(2).values
        return (top2[0] - top2[1]).item()
    top2 = values.topk(2, dim=dim).values
    return (top2.select(dim, 0) - top2.select(dim, 1)).min().item()


def case_softmax_max_reductions():
    g = gen(4)
    inp = {}
    inp["a"] = randn(g, 4, 5)
    inp["m"] = randn(g, 4, 5)
    inp["c"] = randn(g, 1, 5)
    a0 = inp["a"]
    for what, margin in (("row maxima", _unique_max_margin(a0, dim=1)),
                         ("column maxima", _unique_max_margin(a0, dim=0)),
                         ("global max", _unique_max_margin(a0))):
        check(margin >= 1e-3,
              "softmax_max_reductions: %s of a not unique by 1e-3 (margin %r)"
              % (what, margin))

    def fwd(t):
        a, m, c = t["a"], t["m"], t["c"]
        s = torch.softmax(a, dim=1)
        loss = ((s * m).sum()
                + a.max(dim=1).values.mean()
                + a.max(dim=0).values.sum() * 0.5
                + a.max()
                + (a.sum(dim=1) ** 2).sum() / 10
                + (a.mean(dim=0, keepdim=True) * c).sum()
                + a.mean()
                + (a / 2.0).sum() * 0.1
                + (3.0 - a).sum() * 0.01
                + (a.sum(dim=0, keepdim=True).sum()
                   * a.mean(dim=1, keepdim=True).sum()) * 0.05)
        return {"s": s, "loss": loss}

    return run_case(inp, ["a", "c"], fwd)


def case_matmul_concat_slice():
    g = gen(5)
    inp = {}
    inp["A"] = randn(g, 3, 4)
    inp["B"] = randn(g, 4, 2)
    inp["C"] = randn(g, 3, 3)
    inp["D"] = randn(g, 3, 3)
    with torch.no_grad():
        K0 = torch.cat([inp["A"] @ inp["B"], inp["C"]], dim=1)
    kmin = K0.abs().min().item()
    check(kmin >= 1e-3,
          "matmul_concat_slice: an element of K is within 1e-3 of 0 "
          "(min |K| = %r); relu kink would break finite differences" % kmin)

    def fwd(t):
        M = t["A"] @ t["B"]
        K = torch.cat([M, t["C"]], dim=1)
        S = K[:, 1:4]
        P = S.T @ S
        D = t["D"]
        loss = ((P * D).sum() + torch.relu(K).sum()
                + (torch.log_softmax(S, dim=1) * D).sum())
        return {"K": K, "S": S, "P": P, "loss": loss}

    return run_case(inp, ["A", "B", "C"], fwd)


def case_deep_tanh_chain():
    g = gen(6)
    inp = {}
    inp["x"] = randn(g, 8, 16)
    # Draw order: x, then per layer W_l followed by b_l.
    for l in range(6):
        inp["W%d" % l] = randn(g, 16, 16) / 4
        inp["b%d" % l] = randn(g, 1, 16) * 0.1

    def fwd(t):
        h = t["x"]
        for l in range(6):
            h = torch.tanh(h @ t["W%d" % l].T + t["b%d" % l])
        loss = h.mean() + (h ** 2).sum() * 0.01
        return {"loss": loss}

    names = ["x"] + ["W%d" % l for l in range(6)] + ["b%d" % l for l in range(6)]
    return run_case(inp, names, fwd)


CASES = [
    ("tanh_mlp_nll", case_tanh_mlp_nll),
    ("sigmoid_mse_broadcast", case_sigmoid_mse_broadcast),
    ("elementwise_chain", case_elementwise_chain),
    ("softmax_max_reductions", case_softmax_max_reductions),
    ("matmul_concat_slice", case_matmul_concat_slice),
    ("deep_tanh_chain", case_deep_tanh_chain),
]


def verify(path):
    with open(path) as f:
        doc = json.load(f)
    check(set(doc["cases"]) == {n for n, _ in CASES}, "case set mismatch")
    for name, case in doc["cases"].items():
        for section in ("inputs", "outputs", "grads"):
            for tname, t in case[section].items():
                shape = t["shape"]
                check(len(shape) == 2, "%s/%s/%s: not 2-D" % (name, section, tname))
                check(len(t["data"]) == shape[0] * shape[1],
                      "%s/%s/%s: data length mismatch" % (name, section, tname))
        check(case["outputs"]["loss"]["shape"] == [1, 1], "%s: loss shape" % name)
        for gname, gt in case["grads"].items():
            check(gname in case["inputs"], "%s: grad %s has no input" % (name, gname))
            check(gt["shape"] == case["inputs"][gname]["shape"],
                  "%s: grad %s shape %s != input shape %s"
                  % (name, gname, gt["shape"], case["inputs"][gname]["shape"]))
    return doc


def main():
    cases = {}
    for name, fn in CASES:
        cases[name] = fn()
    doc = {
        "generator": "tools/make_core_reference.py",
        "torch_version": torch.__version__,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    tmp = OUT_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, OUT_PATH)
    loaded = verify(OUT_PATH)
    for name, _ in CASES:
        loss = loaded["cases"][name]["outputs"]["loss"]["data"][0]
        print("%-24s loss = %r" % (name, loss))
    print("wrote %s" % os.path.relpath(OUT_PATH, REPO_ROOT))


if __name__ == "__main__":
    try:
        main()
    except ReferenceError as e:
        print("make_core_reference.py: error: %s" % e, file=sys.stderr)
        sys.exit(1)
