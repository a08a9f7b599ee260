#!/usr/bin/python3
"""Generate the PyTorch (float64) input-output Jacobian that tests/test_jacobian.cpp checks
diag::input_output_jacobian against.

Run from the repository root with Debian's interpreter (which owns python3-torch):

    /usr/bin/python3 tools/make_jacobian_reference.py

Writes tests/data/jacobian_reference.json in the layout of the other reference files
({"cases": {name: {"inputs": {...}, "outputs": {...}, "grads": {}}}}, tensors 2-D row-major).
The network is Linear(5,7) -> LayerNorm(7) -> GELU -> Linear(7,7) -> BatchNorm1d(7) -> Tanh
-> Linear(7,4) in eval mode, with random parameters and batch-norm running statistics; its
state_dict keys ("0.weight", "4.running_var", ...) are the names gradscope's Sequential gives.
"""

import json
import os

import torch
import torch.nn as nn

from make_nn_reference import enc  # tensors as {"shape": [r, c], "data": [...]}

torch.set_default_dtype(torch.float64)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PATH = os.path.join(REPO_ROOT, "tests", "data", "jacobian_reference.json")


def main():
    g = torch.Generator().manual_seed(21)
    net = nn.Sequential(nn.Linear(5, 7), nn.LayerNorm(7), nn.GELU(), nn.Linear(7, 7),
                        nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 4))
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("running_var"):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=g))
            else:
                tensor.copy_(0.7 * torch.randn(tensor.shape, generator=g))
    net.eval()
    x = torch.randn(1, 5, generator=g)
    jacobian = torch.autograd.functional.jacobian(lambda v: net(v)[0], x)[:, 0, :]
    inputs = {name: enc(t) for name, t in net.state_dict().items()
              if not name.endswith("num_batches_tracked")}
    inputs["x"] = enc(x)
    doc = {"generator": "tools/make_jacobian_reference.py", "torch": torch.__version__,
           "cases": {"sequential_eval": {"inputs": inputs,
                                         "outputs": {"jacobian": enc(jacobian),
                                                     "output": enc(net(x))},
                                         "grads": {}}}}
    with open(OUT_PATH, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("wrote", OUT_PATH, "jacobian", tuple(jacobian.shape))


if __name__ == "__main__":
    main()
