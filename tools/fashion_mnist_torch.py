#!/usr/bin/env python3
"""The PyTorch twin of examples/fashion_mnist.cpp (gradscope-fashion-mnist), for comparing test
accuracy and time per epoch on the same machine.

Same data (the gzipped IDX files of Debian's dataset-fashion-mnist, read here with gzip and
numpy), same input scaling (pixels to [0, 1], standardised with the mean and standard deviation
of all 60000 training pixels), same architecture as gradscope's mlp() (hidden layer
linear -> [bn|ln] -> act -> [dropout]; with --residual, the hidden layers after the first are
pre-activation blocks x + s * linear(act(norm(x))); then a Linear output layer), same
initialisers, optimisers and hyper-parameters, same batching (a fresh shuffle per epoch, the last
partial batch kept unless batch norm would see a single sample), evaluation in eval mode under
no_grad. Flag names follow the C++ tool's.

Run with Debian's interpreter, which has torch (the python3 first on PATH may not). With an
OpenBLAS on LD_LIBRARY_PATH (docs/RESULTS.md, "Speed"), set OPENBLAS_NUM_THREADS to the same
number as --threads: torch.set_num_threads does not reach OpenBLAS's own thread pool.

    /usr/bin/python3 tools/fashion_mnist_torch.py --threads 2
    /usr/bin/python3 tools/fashion_mnist_torch.py --depth 30 --activation sigmoid --init xavier --epochs 2
    /usr/bin/python3 tools/fashion_mnist_torch.py --depth 30 --norm batch --residual --epochs 2

Prints per-epoch loss, test accuracy, seconds (training only) and samples/s; --json writes the
same fields as the C++ tool's --json (a subset of them).
"""

import argparse
import gzip
import json
import math
import os
import struct
import sys
import time
import warnings

import numpy as np
import torch
from torch import nn


def read_idx(path):
    """An IDX file of unsigned bytes (gzipped or not) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08 or not 1 <= rank <= 3:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != math.prod(dims):
        raise ValueError(f"{path}: {body.size} bytes of data for dimensions {dims}")
    return body.reshape(dims)


def load_data(directory, limit):
    def path(name):
        p = os.path.join(directory, name)
        if not os.path.exists(p):
            sys.exit(f"fashion_mnist_torch: error: {p}: no such file (apt-get install dataset-fashion-mnist, "
                     "or give --data)")
        return p

    train_x = read_idx(path("train-images-idx3-ubyte.gz"))
    train_y = read_idx(path("train-labels-idx1-ubyte.gz"))
    test_x = read_idx(path("t10k-images-idx3-ubyte.gz"))
    test_y = read_idx(path("t10k-labels-idx1-ubyte.gz"))
    pixels = train_x.astype(np.float64) / 255.0  # statistics of all 60000 images, whatever --limit
    mean, std = float(pixels.mean()), float(pixels.std())

    def prepare(images, labels, n=None):
        if n:
            images, labels = images[:n], labels[:n]
        x = (images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0) - np.float32(mean)) \
            * np.float32(1.0 / std)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels.astype(np.int64))

    return prepare(train_x, train_y, limit), prepare(test_x, test_y), mean, std


ACTIVATIONS = {
    "identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU, "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "silu": nn.SiLU, "softplus": nn.Softplus,
    "hardtanh": nn.Hardtanh,
}

INITS = {
    "default": None,  # nn.Linear's own
    "naive": lambda w: nn.init.normal_(w, 0.0, 1.0),
    "xavier": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "he": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "lecun": lambda w: nn.init.normal_(w, 0.0, 1.0 / math.sqrt(w.shape[1])),
    "orthogonal": nn.init.orthogonal_,
}


class Residual(nn.Module):
    """y = x + s * branch(x), as gradscope's Residual."""

    def __init__(self, branch, scale):
        super().__init__()
        self.branch = branch
        self.scale = scale

    def forward(self, x):
        f = self.branch(x)
        return x + f if self.scale == 1.0 else x + f * self.scale


def make_network(a):
    def linear(n_in, n_out):
        layer = nn.Linear(n_in, n_out)
        if INITS[a.init] is not None:
            INITS[a.init](layer.weight)
        return layer

    def norm(width):
        return {"batch": [nn.BatchNorm1d(width)], "layer": [nn.LayerNorm(width)], "none": []}[a.norm]

    def dropout():
        return [nn.Dropout(a.dropout)] if a.dropout > 0 else []

    widths = [784] + [a.width] * a.depth + [10]
    layers = []
    for n_in, n_out in zip(widths[:-2], widths[1:-1]):  # hidden layers, input side first
        if a.residual and n_in == n_out:
            branch = nn.Sequential(*norm(n_in), ACTIVATIONS[a.activation](), *dropout(), linear(n_in, n_out))
            if a.zero_init_residual:
                nn.init.zeros_(branch[-1].weight)
                nn.init.zeros_(branch[-1].bias)
            layers.append(Residual(branch, a.residual_scale))
        else:
            layers.append(nn.Sequential(linear(n_in, n_out), *norm(n_out), ACTIVATIONS[a.activation](), *dropout()))
    layers.append(linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


def make_schedule(a, optimizer, total_steps):
    """The C++ tool's Schedule: LinearLR warm-up, then CosineAnnealingLR, joined by SequentialLR."""
    warmup = min(a.warmup, total_steps)
    parts = []
    if warmup > 0:
        parts.append(torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.01, total_iters=warmup))
    if a.lr_schedule == "cosine" and total_steps > warmup:
        parts.append(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps - warmup))
    if len(parts) == 2:
        # SequentialLR restarts the cosine with step(0), which PyTorch 1.13 warns about itself.
        warnings.filterwarnings("ignore", category=UserWarning, module="torch.optim.lr_scheduler")
        return torch.optim.lr_scheduler.SequentialLR(optimizer, parts, milestones=[warmup])
    return parts[0] if parts else None


def make_optimizer(a, params):
    if a.optimizer == "sgd":
        return torch.optim.SGD(params, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)
    if a.optimizer == "adam":
        return torch.optim.Adam(params, lr=a.lr, weight_decay=a.weight_decay)
    if a.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=a.lr, weight_decay=a.weight_decay)
    return torch.optim.RMSprop(params, lr=a.lr, momentum=a.momentum, weight_decay=a.weight_decay)


def evaluate(net, x, y):
    net.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for begin in range(0, len(x), 1000):
            logits = net(x[begin:begin + 1000])
            target = y[begin:begin + 1000]
            loss += nn.functional.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    net.train()
    return loss / len(x), correct / len(x)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--depth", type=int, default=2, help="hidden layers")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--activation", default="relu", choices=sorted(ACTIVATIONS))
    p.add_argument("--init", default="he", choices=sorted(INITS))
    p.add_argument("--norm", default="none", choices=["none", "batch", "layer"])
    p.add_argument("--residual", action="store_true")
    p.add_argument("--residual-scale", type=float, default=1.0)
    p.add_argument("--zero-init-residual", action="store_true")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw", "rmsprop"])
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                   help="cosine: CosineAnnealingLR over all the steps (after the warm-up), as the C++ tool")
    p.add_argument("--warmup", type=int, default=0,
                   help="steps of linear warm-up (LinearLR from lr / 100) before the schedule")
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=None, help="default 0; adamw: 0.01")
    p.add_argument("--clip", type=float, default=0.0, help="clip_grad_norm_ to this (0: no clipping)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave torch's default)")
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (0: all)")
    p.add_argument("--json", default="", help="write the run's record here")
    a = p.parse_args()
    if a.weight_decay is None:
        a.weight_decay = 1e-2 if a.optimizer == "adamw" else 0.0

    if a.threads > 0:
        torch.set_num_threads(a.threads)
        if "OPENBLAS_NUM_THREADS" not in os.environ and "OMP_NUM_THREADS" not in os.environ:
            # An OpenBLAS put on LD_LIBRARY_PATH keeps its own pool of one thread per core whatever
            # set_num_threads says; on a shared machine that made a 1-thread run 4x slower.
            print("fashion_mnist_torch: note: OPENBLAS_NUM_THREADS is not set; if torch uses OpenBLAS, its GEMMs "
                  f"may use more than --threads {a.threads} thread(s)", file=sys.stderr)
    torch.manual_seed(a.seed)
    (train_x, train_y), (test_x, test_y), mean, std = load_data(a.data, a.limit)
    net = make_network(a)
    optimizer = make_optimizer(a, net.parameters())
    parameters = sum(t.numel() for t in net.parameters())
    print(f"Fashion-MNIST: {len(train_x)} training, {len(test_x)} test images; inputs standardised "
          f"(mean {mean:.4f}, std {std:.4f})")
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s); MLP 784 -> {a.depth} x {a.width} -> 10 "
          f"({a.activation}, {a.init} init, norm {a.norm}{', residual' if a.residual else ''}), {parameters} "
          f"parameters; {a.optimizer} lr {a.lr:g}{' (cosine)' if a.lr_schedule == 'cosine' else ''}, batch {a.batch}")
    initial_loss, initial_accuracy = evaluate(net, test_x, test_y)
    print(f"before training: test loss {initial_loss:.4f}, test accuracy {100 * initial_accuracy:.2f}%", flush=True)

    generator = torch.Generator().manual_seed(a.seed)
    epochs = []
    n = len(train_x)
    batches = n // a.batch if a.norm == "batch" and n % a.batch == 1 else -(-n // a.batch)
    scheduler = make_schedule(a, optimizer, batches * a.epochs)
    step = 0
    for epoch in range(1, a.epochs + 1):
        order = torch.randperm(n, generator=generator)
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for begin in range(0, n, a.batch):
            index = order[begin:begin + a.batch]
            if len(index) < 2 and a.norm == "batch":
                break
            x, y = train_x[index], train_y[index]
            logits = net(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            if a.clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), a.clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            loss_sum += loss.item() * len(index)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(index)
        seconds = time.perf_counter() - start
        eval_start = time.perf_counter()
        test_loss, test_accuracy = evaluate(net, test_x, test_y)
        record = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                  "test_loss": test_loss, "test_accuracy": test_accuracy, "seconds": seconds,
                  "eval_seconds": time.perf_counter() - eval_start, "samples_per_second": seen / seconds}
        epochs.append(record)
        print(f"epoch {epoch}/{a.epochs}  loss {record['train_loss']:.4f}  train acc "
              f"{100 * record['train_accuracy']:.2f}%  test loss {test_loss:.4f}  test acc {100 * test_accuracy:.2f}%  "
              f"{seconds:.2f} s  {record['samples_per_second']:.0f} samples/s", flush=True)
    if epochs:
        total = sum(e["seconds"] for e in epochs)
        print(f"final test accuracy {100 * epochs[-1]['test_accuracy']:.2f}% after {a.epochs} epoch(s); "
              f"{total / len(epochs):.2f} s per epoch, {sum(e['samples_per_second'] * e['seconds'] for e in epochs) / total:.0f} "
              "samples/s (training only)")
    if a.json:
        record = {"tool": "fashion_mnist_torch.py", "torch_version": torch.__version__, "config": vars(a),
                  "threads": torch.get_num_threads(), "parameters": parameters,
                  "data": {"train_samples": n, "test_samples": len(test_x), "input_mean": mean, "input_std": std},
                  "initial": {"test_loss": initial_loss, "test_accuracy": initial_accuracy}, "epochs": epochs,
                  "final_test_accuracy": epochs[-1]["test_accuracy"] if epochs else initial_accuracy}
        with open(a.json, "w") as f:
            json.dump(record, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
