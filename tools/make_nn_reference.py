#!/usr/bin/python3
"""Generate float64 PyTorch reference values for gradscope's layer and loss tests.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_nn_reference.py

Writes tests/data/nn_reference.json, in the layout of core_reference.json:
{"cases": {name: {"inputs": {...}, "outputs": {...}, "grads": {...}}}} with every tensor
2-D, {"shape": [r, c], "data": [row-major]}. Each case seeds its own generator.
"""

import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "nn_reference.json")


def gen(seed):
    return torch.Generator().manual_seed(seed)


def enc(t):
    t = torch.as_tensor(t).detach().to(torch.float64)
    if t.dim() == 0:
        t = t.reshape(1, 1)
    elif t.dim() == 1:
        t = t.reshape(1, -1)
    assert t.dim() == 2
    return {"shape": list(t.shape), "data": t.flatten().tolist()}


def bn_stack(**bn_options):
    """Linear(4,6) -> BatchNorm1d(6, **bn_options) -> ReLU -> Linear(6,3): three SGD steps in
    training mode (MSE loss, lr 0.1), then one evaluation pass (with the running statistics,
    or with the batch's when the layer tracks none)."""
    g = gen(11)
    l1, bn, l2 = nn.Linear(4, 6), nn.BatchNorm1d(6, **bn_options), nn.Linear(6, 3)
    with torch.no_grad():
        l1.weight.copy_(torch.randn(6, 4, generator=g) * 0.5)
        l1.bias.copy_(torch.randn(6, generator=g) * 0.1)
        bn.weight.copy_(1.0 + 0.2 * torch.randn(6, generator=g))
        bn.bias.copy_(0.1 * torch.randn(6, generator=g))
        l2.weight.copy_(torch.randn(3, 6, generator=g) * 0.5)
        l2.bias.copy_(torch.randn(3, generator=g) * 0.1)
    net = nn.Sequential(l1, bn, nn.ReLU(), l2)
    named = {"l1.weight": l1.weight, "l1.bias": l1.bias, "bn.weight": bn.weight,
             "bn.bias": bn.bias, "l2.weight": l2.weight, "l2.bias": l2.bias}
    inputs = {k: enc(v) for k, v in named.items()}
    outputs, grads = {}, {}
    net.train()
    for step in range(3):
        x = torch.randn(8, 4, generator=g)
        y = torch.randn(8, 3, generator=g)
        inputs["x%d" % step] = enc(x)
        inputs["y%d" % step] = enc(y)
        out = net(x)
        loss = F.mse_loss(out, y)
        for p in net.parameters():
            p.grad = None
        loss.backward()
        outputs["loss%d" % step] = enc(loss)
        if step == 0:
            outputs["out0"] = enc(out)
            for k, v in named.items():
                grads["step0." + k] = enc(v.grad)
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.1 * p.grad
    if bn.track_running_stats:
        outputs["running_mean"] = enc(bn.running_mean)
        outputs["running_var"] = enc(bn.running_var)
        outputs["num_batches_tracked"] = enc(bn.num_batches_tracked.to(torch.float64))
    else:
        assert bn.running_mean is None and "running_mean" not in net.state_dict().keys()
    for k, v in named.items():
        outputs["after." + k] = enc(v)
    net.eval()
    x = torch.randn(5, 4, generator=g, requires_grad=True)
    r = torch.randn(5, 3, generator=g)
    inputs["x_eval"] = enc(x)
    inputs["r_eval"] = enc(r)
    out = net(x)
    loss = (out * r).sum()
    for p in net.parameters():
        p.grad = None
    loss.backward()
    outputs["eval.out"] = enc(out)
    outputs["eval.loss"] = enc(loss)
    grads["eval.x"] = enc(x.grad)
    for k, v in named.items():
        grads["eval." + k] = enc(v.grad)
    return {"inputs": inputs, "outputs": outputs, "grads": grads}


def losses():
    g = gen(12)
    logits = (torch.randn(6, 5, generator=g) * 3).requires_grad_()
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    ce_mean = F.cross_entropy(logits, labels)
    (g_mean,) = torch.autograd.grad(ce_mean, logits)
    ce_sum = F.cross_entropy(logits, labels, reduction="sum")
    (g_sum,) = torch.autograd.grad(ce_sum, logits)
    z = torch.randn(4, 3, generator=g) * 30  # large logits: the stable form matters
    z.requires_grad_()
    t = torch.rand(4, 3, generator=g).requires_grad_()
    bce = F.binary_cross_entropy_with_logits(z, t)
    gz, gt = torch.autograd.grad(bce, (z, t))
    p = torch.randn(4, 3, generator=g, requires_grad=True)
    q = torch.randn(4, 3, generator=g, requires_grad=True)
    mse_sum = F.mse_loss(p, q, reduction="sum")
    gp, gq = torch.autograd.grad(mse_sum, (p, q))
    return {
        "inputs": {"logits": enc(logits), "labels": enc(labels.to(torch.float64)),
                   "z": enc(z), "t": enc(t), "p": enc(p), "q": enc(q)},
        "outputs": {"ce_mean": enc(ce_mean), "ce_sum": enc(ce_sum), "bce": enc(bce),
                    "mse_sum": enc(mse_sum)},
        "grads": {"ce_mean.logits": enc(g_mean), "ce_sum.logits": enc(g_sum),
                  "bce.z": enc(gz), "bce.t": enc(gt), "mse_sum.p": enc(gp), "mse_sum.q": enc(gq)},
    }


def layer_norm():
    g = gen(13)
    x = torch.randn(4, 6, generator=g, requires_grad=True)
    w = (1.0 + 0.3 * torch.randn(6, generator=g)).requires_grad_()
    b = (0.2 * torch.randn(6, generator=g)).requires_grad_()
    r = torch.randn(4, 6, generator=g)
    y = F.layer_norm(x, (6,), w, b, eps=1e-5)
    loss = (y * r).sum()
    gx, gw, gb = torch.autograd.grad(loss, (x, w, b))
    return {"inputs": {"x": enc(x), "weight": enc(w), "bias": enc(b), "r": enc(r)},
            "outputs": {"y": enc(y), "loss": enc(loss)},
            "grads": {"x": enc(gx), "weight": enc(gw), "bias": enc(gb)}}


def activations():
    # Points away from every kink (0 for the rectifiers, +-1 for hardtanh, 20/beta softplus).
    x = torch.linspace(-4.1, 4.3, 29).reshape(1, -1)
    fns = {
        "leaky_relu": lambda v: F.leaky_relu(v, 0.2),
        "elu": lambda v: F.elu(v, 1.3),
        "selu": F.selu,
        "gelu": F.gelu,
        "gelu_tanh": lambda v: F.gelu(v, approximate="tanh"),
        "silu": F.silu,
        "softplus": lambda v: F.softplus(v, beta=2.0),
        "hardtanh": lambda v: F.hardtanh(v, -0.7, 1.2),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
    }
    outputs, grads = {}, {}
    for name, fn in fns.items():
        xi = x.clone().requires_grad_()
        y = fn(xi)
        (d,) = torch.autograd.grad(y.sum(), xi)
        outputs[name] = enc(y)
        grads[name] = enc(d)
    return {"inputs": {"x": enc(x)}, "outputs": outputs, "grads": grads}


def main():
    cases = {"bn_stack": bn_stack(),
             # momentum None: a cumulative average, factor 1/num_batches_tracked
             "bn_stack_cumulative": bn_stack(momentum=None),
             "bn_stack_batch_stats": bn_stack(track_running_stats=False),
             "losses": losses(), "layer_norm": layer_norm(),
             "activations": activations()}
    doc = {"generator": "tools/make_nn_reference.py", "torch_version": torch.__version__,
           "cases": cases}
    tmp = OUT_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, OUT_PATH)
    print("wrote", OUT_PATH)


if __name__ == "__main__":
    main()
