#!/usr/bin/python3
"""Writes tests/data/scheduler_reference.json: the learning rate PyTorch's schedulers
(torch.optim.lr_scheduler) give over 200 steps, for tests/test_schedulers.cpp.

For each case an SGD optimiser (lr 0.1, momentum 0.9) gets the case's scheduler(s); the
recorded values are the lr right after construction and after each of 199 step() calls. For
ReduceLROnPlateau, which PyTorch does not step at construction, they are the lr after each of
200 step(metric) calls, fed the fixed metric sequences stored in the file.

Run from the repository root with Debian's interpreter (it owns python3-torch):
    /usr/bin/python3 tools/make_scheduler_reference.py
"""

import json
import math
import random
import sys
import warnings
from pathlib import Path

import torch
from torch.optim import lr_scheduler as S

STEPS = 200
LR = 0.1
GROUP_LRS = [0.1, 0.01]


def optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))],
                           lr=LR, momentum=0.9)


def two_groups():
    """SGD with two parameter groups of different lr, for the per-group options."""
    first, second = (torch.nn.Parameter(torch.zeros(1, dtype=torch.float64)) for _ in range(2))
    return torch.optim.SGD([{"params": [first]}, {"params": [second], "lr": GROUP_LRS[1]}],
                           lr=GROUP_LRS[0], momentum=0.9)


def first_lr(opt):
    return opt.param_groups[0]["lr"]


def group_lrs(opt):
    return [group["lr"] for group in opt.param_groups]


def record(opt, step, read=first_lr):
    """The lr now, then after each of STEPS - 1 calls of step()."""
    out = [read(opt)]
    for _ in range(STEPS - 1):
        opt.step()  # PyTorch warns if a scheduler steps before its optimiser
        step()
        out.append(read(opt))
    return out


def plateau(opt, options, values, read=first_lr):
    """A ReduceLROnPlateau on opt fed `values`, and the lr after each step(value)."""
    sched = S.ReduceLROnPlateau(opt, **options)
    lrs = []
    for v in values:
        sched.step(v)
        lrs.append(read(opt))
    return sched, lrs


# name -> builds the scheduler(s) on an optimiser, returns the object to step.
SCHEDULES = {
    "step": lambda o: S.StepLR(o, step_size=7, gamma=0.5),
    "multistep": lambda o: S.MultiStepLR(o, milestones=[10, 30, 30, 80, 150], gamma=0.3),
    "exponential": lambda o: S.ExponentialLR(o, gamma=0.97),
    "constant": lambda o: S.ConstantLR(o, factor=0.25, total_iters=12),
    "linear": lambda o: S.LinearLR(o, start_factor=0.05, end_factor=0.9, total_iters=40),
    "cosine": lambda o: S.CosineAnnealingLR(o, T_max=60, eta_min=1e-3),
    "cosine_eta_min_0": lambda o: S.CosineAnnealingLR(o, T_max=37),
    "warm_restarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=1e-4),
    "warm_restarts_t_mult_1": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=17),
    "one_cycle_cos": lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=200, pct_start=0.25),
    "one_cycle_linear_three_phase": lambda o: S.OneCycleLR(
        o, max_lr=0.8, total_steps=230, pct_start=0.3, anneal_strategy="linear",
        div_factor=10.0, final_div_factor=100.0, three_phase=True),
    "chained_linear_exponential": lambda o: S.ChainedScheduler(
        [S.LinearLR(o, start_factor=0.1, total_iters=10), S.ExponentialLR(o, gamma=0.99)]),
    "chained_linear_cosine": lambda o: S.ChainedScheduler(
        [S.LinearLR(o, start_factor=0.2, total_iters=20), S.CosineAnnealingLR(o, T_max=50)]),
    "sequential_warmup_cosine": lambda o: S.SequentialLR(
        o, [S.LinearLR(o, start_factor=0.01, total_iters=10),
            S.CosineAnnealingLR(o, T_max=100, eta_min=1e-4)], milestones=[10]),
    "sequential_three": lambda o: S.SequentialLR(
        o, [S.ConstantLR(o, factor=0.5, total_iters=5), S.ExponentialLR(o, gamma=0.98),
            S.StepLR(o, step_size=20, gamma=0.5)], milestones=[15, 90]),
}

PLATEAUS = {
    "plateau_min_rel": dict(mode="min", factor=0.5, patience=5, threshold=1e-2,
                            threshold_mode="rel", cooldown=3, min_lr=1e-3),
    "plateau_min_abs": dict(mode="min", factor=0.3, patience=3, threshold=0.02,
                            threshold_mode="abs", cooldown=0, min_lr=0.0),
    "plateau_max_rel": dict(mode="max", factor=0.7, patience=4, threshold=1e-3,
                            threshold_mode="rel", cooldown=2, min_lr=2e-3),
    "plateau_max_abs": dict(mode="max", factor=0.5, patience=2, threshold=0.005,
                            threshold_mode="abs", cooldown=5, min_lr=0.0, eps=1e-3),
}

# On two_groups(): min_lr and max_lr given per group, each group's lr recorded at every step.
PLATEAU_PER_GROUP = ("plateau_min_lrs_per_group",
                     dict(mode="min", factor=0.5, patience=3, threshold=1e-2,
                          threshold_mode="rel", cooldown=2, min_lr=[0.01, 0.0005]))
ONE_CYCLE_PER_GROUP = ("one_cycle_max_lrs_per_group",
                       dict(max_lr=[1.0, 0.1], total_steps=200, pct_start=0.3))


def metrics(name, mode):
    """A loss-like sequence (falling, noisy, with stalls) or an accuracy-like one (rising)."""
    rng = random.Random(name)
    out, level = [], 2.0
    for i in range(STEPS):
        if i % 50 < 30:
            level *= 0.97
        out.append(level * (1.0 + 0.05 * rng.uniform(-1.0, 1.0)))
    if mode == "max":
        out = [1.0 - v / 2.5 for v in out]
    return out


def reductions(lrs, first):
    return sum(1 for a, b in zip([first] + lrs, lrs) if b < a)


def per_group_cases():
    """The two per-group cases; "lrs" holds every group's lr at each step."""
    name, options = PLATEAU_PER_GROUP
    values = metrics(name, options["mode"])
    _, lrs = plateau(two_groups(), options, values, read=group_lrs)
    reduced = {"name": name, "group_lrs": GROUP_LRS, "metrics": values, "lrs": lrs}
    name, options = ONE_CYCLE_PER_GROUP
    opt = two_groups()
    sched = S.OneCycleLR(opt, **options)
    cycled = {"name": name, "group_lrs": GROUP_LRS, "lrs": record(opt, sched.step, group_lrs)}
    return [reduced, cycled]


def main():
    warnings.simplefilter("ignore")  # the step-order and deprecation warnings are expected
    cases = []
    for name, make in SCHEDULES.items():
        opt = optimizer()
        sched = make(opt)
        cases.append({"name": name, "lrs": record(opt, sched.step)})
    for name, options in PLATEAUS.items():
        values = metrics(name, options["mode"])
        sched, lrs = plateau(optimizer(), options, values)
        count = reductions(lrs, LR)
        if count < 3:
            print(f"{name}: only {count} reductions; the case would test little", file=sys.stderr)
            return 1
        cases.append({"name": name, "metrics": values, "lrs": lrs, "best": sched.best,
                      "num_bad_epochs": sched.num_bad_epochs,
                      "cooldown_counter": sched.cooldown_counter})
        print(f"{name}: {count} reductions, final lr {lrs[-1]:.6g}")
    grouped = per_group_cases()
    # Each group must be reduced several times and reach its own min_lr, or the per-group
    # minimum would go untested.
    for g, min_lr in enumerate(PLATEAU_PER_GROUP[1]["min_lr"]):
        lrs = [step[g] for step in grouped[0]["lrs"]]
        count = reductions(lrs, GROUP_LRS[g])
        if count < 3 or lrs[-1] != min_lr:
            print(f"{PLATEAU_PER_GROUP[0]}: group {g} reduced {count} times to {lrs[-1]:.6g}, "
                  f"not to its min_lr {min_lr}", file=sys.stderr)
            return 1
        print(f"{PLATEAU_PER_GROUP[0]}: group {g}: {count} reductions, final lr {lrs[-1]:.6g}")
    cases += grouped
    for case in cases:
        flat = [v for step in case["lrs"] for v in (step if isinstance(step, list) else [step])]
        if not all(math.isfinite(v) for v in flat):
            print(f"{case['name']}: non-finite lr", file=sys.stderr)
            return 1
    out = {"torch_version": torch.__version__, "steps": STEPS, "lr": LR, "cases": cases}
    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "scheduler_reference.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({len(cases)} cases, torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
