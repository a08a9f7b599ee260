#!/usr/bin/env python3
"""A gradscope checkpoint loads into the same network built in PyTorch and computes the same thing.

    checkpoint_pytorch.py <dir>

<dir> holds what tests/tools/write_checkpoint_fixture.cpp wrote: mlp.safetensors, a checkpoint of
mlp<double>({4, 8, 3}, tanh, batch norm), and io.safetensors, an input batch and gradscope's
eval-mode output for it. The network is rebuilt as Linear -> BatchNorm1d -> Tanh -> Linear under
gradscope's names, loaded with load_state_dict(strict=True), and its output must match to 1e-12.

The safetensors package is not needed: the format is read here with struct, json and numpy.
"""
import json
import struct
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def load_safetensors(path):
    """{name: tensor} from a safetensors file: an 8-byte little-endian header length, the JSON
    header, then each tensor's bytes at data_offsets counted from the end of the header."""
    data = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        values = np.frombuffer(body[begin:end], dtype=np.dtype(DTYPES[info["dtype"]]))
        tensors[name] = torch.from_numpy(values.reshape(info["shape"]).copy())
    return tensors


class GradscopeMlp(nn.Module):
    """mlp<double>({4, 8, 3}, tanh, batch norm) with gradscope's parameter names."""

    def __init__(self):
        super().__init__()
        hidden = nn.Sequential(OrderedDict(linear=nn.Linear(4, 8), bn=nn.BatchNorm1d(8), act=nn.Tanh()))
        output = nn.Sequential(OrderedDict(linear=nn.Linear(8, 3)))
        self.layers = nn.Sequential(OrderedDict([("0", hidden), ("1", output)]))

    def forward(self, x):
        return self.layers(x)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = Path(sys.argv[1])
    state = load_safetensors(directory / "mlp.safetensors")
    io = load_safetensors(directory / "io.safetensors")

    # PyTorch counts batches in an int64 scalar, and gradscope writes the count so.
    tracked = "layers.0.bn.num_batches_tracked"
    assert state[tracked].shape == torch.Size([]), f"{tracked} has shape {tuple(state[tracked].shape)}"
    assert state[tracked].dtype == torch.int64, f"{tracked} has dtype {state[tracked].dtype}"

    net = GradscopeMlp().double()
    net.load_state_dict(state, strict=True)  # names and shapes must match exactly
    net.eval()
    with torch.no_grad():
        output = net(io["input"])

    error = (output - io["output"]).abs().max().item()
    print(f"{len(state)} tensors loaded, {tracked} = {state[tracked].item()}, "
          f"max |PyTorch - gradscope| = {error:.3g}")
    if state[tracked].item() != 5 or not error <= 1e-12:
        sys.exit("FAILED: PyTorch's output differs from gradscope's beyond 1e-12 (or the batch count is wrong)")


if __name__ == "__main__":
    main()
