#!/usr/bin/python3
"""Generate float64 reference trajectories of PyTorch's optimisers and gradient clipping.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_optim_reference.py

Writes tests/data/optim_reference.json, which tests/test_optim.cpp and tests/test_clip.cpp
compare gradscope against.

The problem: parameters W [3x4] and b [1x3], a fixed batch x [5x4] and target y [5x3],
    loss = mean((x W^T + b - y)^2).
Each optimiser case starts from the same W and b and takes `steps` steps of
zero_grad / forward / backward / step; the parameters after every step are recorded.

JSON layout (every tensor is 2-D, {"shape": [r, c], "data": [row-major]}):
  {"generator": ..., "torch_version": ...,
   "problem":  {"W": ..., "b": ..., "x": ..., "y": ...},
   "initial":  {"loss": float, "grads": {"W": ..., "b": ...}},
   "optimizers": {name: {"class": "SGD" | "Adam" | "AdamW" | "RMSprop",
                         "options": {PyTorch keyword: value},
                         "steps": [{"W": ..., "b": ...}, ...]}},   # after step 1, 2, ...
   "groups": {name: {"class": ..., "options": {defaults}, "group1": {what group 1 sets},
                     "scheduler": {"step_size": int, "gamma": float} (optional, a StepLR),
                     "steps": [{"W": ..., "b": ..., "lr": [group 0's, group 1's]}, ...]}},
   "clip": {"max_norm": float,
            name: {"norm_type": float or "inf", "total_norm": float,
                   "grads": {"W": ..., "b": ...}}}}                # clipped initial gradients
"""

import json
import math
import os
import sys

import torch

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "optim_reference.json")
STEPS = 3
MAX_NORM = 0.5


class ReferenceError(RuntimeError):
    pass


def check(cond, msg):
    if not cond:
        raise ReferenceError(msg)


def encode(t):
    t = t.detach()
    check(t.dim() == 2, "non-2-D tensor of shape %s" % (list(t.shape),))
    t = t.contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.flatten().tolist()]}


def make_problem():
    g = torch.Generator().manual_seed(2024)
    W = torch.randn(3, 4, generator=g) * 0.5
    b = torch.randn(1, 3, generator=g) * 0.1
    x = torch.randn(5, 4, generator=g)
    # Targets far from the initial outputs, so that the gradient is large enough for the
    # clipping cases to clip.
    y = torch.randn(5, 3, generator=g) * 2.0
    return {"W": W, "b": b, "x": x, "y": y}


def loss_fn(W, b, x, y):
    return ((x @ W.T + b - y) ** 2).mean()


def fresh_params(problem):
    return (problem["W"].clone().requires_grad_(True),
            problem["b"].clone().requires_grad_(True))


# (name, optimiser class, keyword options, steps). The first five are the cases the tests were
# specified with; the others cover dampening, plain SGD, L2 + AMSGrad and default RMSprop.
CASES = [
    ("sgd_momentum", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, STEPS),
    ("sgd_nesterov_weight_decay", torch.optim.SGD,
     {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}, STEPS),
    ("adam", torch.optim.Adam, {"lr": 0.01}, STEPS),
    ("adamw", torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}, STEPS),
    ("rmsprop_centered_momentum", torch.optim.RMSprop,
     {"lr": 0.01, "centered": True, "momentum": 0.5}, STEPS),
    ("sgd_plain", torch.optim.SGD, {"lr": 0.1}, STEPS),
    ("sgd_dampening_weight_decay", torch.optim.SGD,
     {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.02}, STEPS),
    # A small beta2 lets the second moment fall, so the AMSGrad maximum matters within the
    # recorded steps (checked below); large lr so that the gradient changes quickly.
    ("adam_amsgrad_l2", torch.optim.Adam,
     {"lr": 0.3, "betas": (0.8, 0.5), "weight_decay": 0.1, "amsgrad": True}, 5),
    ("adamw_amsgrad", torch.optim.AdamW,
     {"lr": 0.3, "betas": (0.8, 0.5), "weight_decay": 0.05, "amsgrad": True}, 5),
    ("rmsprop_default", torch.optim.RMSprop, {}, STEPS),
    ("rmsprop_weight_decay", torch.optim.RMSprop,
     {"lr": 0.02, "alpha": 0.9, "weight_decay": 0.1, "eps": 1e-6}, STEPS),
]


# Two parameter groups: W in group 0 with the optimiser's defaults, b in group 1 with its own
# options (name, class, defaults, group 1's options, StepLR options or None, steps). Each group
# sets options that change its trajectory, so a group given another group's options fails.
GROUP_CASES = [
    ("sgd_groups", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9},
     {"lr": 0.05, "momentum": 0.5, "dampening": 0.1, "weight_decay": 0.1}, None, STEPS),
    ("adam_groups", torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1},
     {"lr": 0.03, "betas": (0.8, 0.9), "weight_decay": 0.0, "amsgrad": True}, None, STEPS),
    # the recipe: no weight decay on the bias
    ("adamw_groups", torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.1},
     {"weight_decay": 0.0}, None, STEPS),
    ("rmsprop_groups", torch.optim.RMSprop, {"lr": 0.01},
     {"lr": 0.02, "alpha": 0.9, "centered": True, "momentum": 0.5}, None, STEPS),
    # a scheduler scales each group's own base lr
    ("sgd_groups_steplr", torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, {"lr": 0.02},
     {"step_size": 2, "gamma": 0.5}, 5),
]


def run_groups(problem, cls, defaults, group1, scheduler, steps):
    W, b = fresh_params(problem)
    opt = cls([{"params": [W]}, dict({"params": [b]}, **group1)], **defaults)
    sched = None
    if scheduler is not None:
        sched = torch.optim.lr_scheduler.StepLR(opt, **scheduler)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(W, b, problem["x"], problem["y"]).backward()
        opt.step()
        if sched is not None:
            sched.step()
        trajectory.append({"W": encode(W), "b": encode(b),
                           "lr": [group["lr"] for group in opt.param_groups]})
    return trajectory


def run_optimizer(problem, cls, options, steps):
    W, b = fresh_params(problem)
    opt = cls([W, b], **options)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(W, b, problem["x"], problem["y"]).backward()
        opt.step()
        trajectory.append({"W": encode(W), "b": encode(b)})
    return opt, trajectory


def amsgrad_max_matters(opt):
    """True if some max_exp_avg_sq entry differs from exp_avg_sq (the max was used)."""
    for state in opt.state.values():
        if not torch.equal(state["max_exp_avg_sq"], state["exp_avg_sq"]):
            return True
    return False


def json_options(options):
    out = {}
    for k, v in options.items():
        if isinstance(v, tuple):
            out[k] = list(v)
        else:
            out[k] = v
    return out


def clip_case(problem, norm_type):
    W, b = fresh_params(problem)
    loss_fn(W, b, problem["x"], problem["y"]).backward()
    total = torch.nn.utils.clip_grad_norm_([W, b], MAX_NORM, norm_type=norm_type)
    check(total.item() > MAX_NORM * 1.5,
          "clip (norm %s): total norm %r is not well above max_norm, nothing would be clipped"
          % (norm_type, total.item()))
    return {"norm_type": "inf" if math.isinf(norm_type) else norm_type,
            "total_norm": total.item(),
            "grads": {"W": encode(W.grad), "b": encode(b.grad)}}


def main():
    problem = make_problem()
    W, b = fresh_params(problem)
    loss = loss_fn(W, b, problem["x"], problem["y"])
    loss.backward()
    initial = {"loss": loss.item(), "grads": {"W": encode(W.grad), "b": encode(b.grad)}}

    optimizers = {}
    for name, cls, options, steps in CASES:
        opt, trajectory = run_optimizer(problem, cls, options, steps)
        if options.get("amsgrad"):
            check(amsgrad_max_matters(opt),
                  "%s: max_exp_avg_sq never differed from exp_avg_sq; the case does not "
                  "exercise AMSGrad" % name)
        optimizers[name] = {"class": cls.__name__, "options": json_options(options),
                            "steps": trajectory}

    groups = {}
    for name, cls, defaults, group1, scheduler, steps in GROUP_CASES:
        case = {"class": cls.__name__, "options": json_options(defaults),
                "group1": json_options(group1),
                "steps": run_groups(problem, cls, defaults, group1, scheduler, steps)}
        if scheduler is not None:
            case["scheduler"] = scheduler
        groups[name] = case

    clip = {"max_norm": MAX_NORM}
    for name, norm_type in (("l2", 2.0), ("inf", math.inf), ("l1", 1.0), ("l3", 3.0)):
        clip[name] = clip_case(problem, norm_type)

    doc = {
        "generator": "tools/make_optim_reference.py",
        "torch_version": torch.__version__,
        "problem": {k: encode(v) for k, v in problem.items()},
        "initial": initial,
        "optimizers": optimizers,
        "groups": groups,
        "clip": clip,
    }
    os.makedirs(os.path.dirname(OUT_PATH), exist_ok=True)
    tmp = OUT_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, OUT_PATH)
    print("initial loss = %r" % initial["loss"])
    for name, case in optimizers.items():
        print("%-28s %d steps" % (name, len(case["steps"])))
    for name, case in groups.items():
        print("%-28s %d steps, two groups" % (name, len(case["steps"])))
    for name in ("l2", "inf", "l1", "l3"):
        print("clip %-4s total norm = %r" % (name, clip[name]["total_norm"]))
    print("wrote %s" % os.path.relpath(OUT_PATH, REPO_ROOT))


if __name__ == "__main__":
    try:
        main()
    except ReferenceError as e:
        print("make_optim_reference.py: error: %s" % e, file=sys.stderr)
        sys.exit(1)
