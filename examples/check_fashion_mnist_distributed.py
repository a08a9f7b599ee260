"""gradscope-fashion-mnist on one process and, with --distributed, on two under mpiexec.

The same command line otherwise: batch norm (synchronised across the two), 2 epochs on the first
3000 images, batch 100, so that each process takes 50 rows of every batch. The two runs take the
same steps in exact arithmetic; in float, rounding (another summation order in the all-reduce and
in batch norm's statistics) moves the result by far less than the spread between seeds (about one
percentage point of test accuracy at this size), so the check asks for the same final test
accuracy to 0.5 points and the same final training loss to 1%, and for the checkpoint and the
HTML report that rank 0 writes. The checkpoint, loaded under mpiexec with --epochs 0, gives the
distributed run's final test loss and accuracy exactly. Then --doctor under mpiexec: rank 0
alone prints the diagnosis; and --per-sample is refused with a message that says why.

    check_fashion_mnist_distributed.py MPIEXEC PROGRAM DATA OUT
"""
import json
import pathlib
import shutil
import subprocess
import sys


def run(command, expect_status=0):
    done = subprocess.run(command, capture_output=True, text=True)
    print(" ".join(command))
    print(done.stdout, done.stderr)
    if (done.returncode == 0) != (expect_status == 0):
        sys.exit(f"exit status {done.returncode}")
    return done


def main():
    mpiexec, program, data, out = sys.argv[1:5]
    out = pathlib.Path(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    def command(epochs):
        return [program, "--data", data, "--limit", "3000", "--epochs", str(epochs), "--batch",
                "100", "--norm", "batch", "--log-every", "0", "--no-progress", "--threads", "1"]
    common, evaluate = command(2), command(0)
    run(common + ["--json", str(out / "one.json")])
    run([mpiexec, "-n", "2"] + common + ["--distributed", "--json", str(out / "two.json"),
                                          "--save", str(out / "two.safetensors"),
                                          "--report", str(out / "two.html")])
    one = json.loads((out / "one.json").read_text())
    two = json.loads((out / "two.json").read_text())
    failures = []
    if two["processes"] != 2:
        failures.append(f"the distributed run's JSON says {two['processes']} processes")
    if not (out / "two.safetensors").exists():
        failures.append("the distributed run saved no checkpoint")
    else:
        run([mpiexec, "-n", "2"] + evaluate + ["--distributed", "--json", str(out / "loaded.json"),
                                                "--load", str(out / "two.safetensors")])
        loaded = json.loads((out / "loaded.json").read_text())["initial"]
        final = (two["final_test_accuracy"], two["final_test_loss"])
        if (loaded["test_accuracy"], loaded["test_loss"]) != final:
            failures.append(f"the loaded checkpoint evaluates to {loaded}, not the distributed "
                            f"run's final test accuracy and loss {final}")
    report = out / "two.html"
    if not report.exists() or "<svg" not in report.read_text():
        failures.append("the distributed run wrote no HTML report with plots")
    doctor = run([mpiexec, "-n", "2"] + common + ["--distributed", "--doctor"])
    if doctor.stdout.count("gradscope doctor:") != 1:
        failures.append("--doctor under two processes did not print one diagnosis")
    refused = run([mpiexec, "-n", "2"] + common + ["--distributed", "--per-sample"],
                  expect_status=2)
    if "cannot be combined with --per-sample" not in refused.stderr + refused.stdout:
        failures.append("--distributed --per-sample was not refused with its reason")
    a, b = one["epochs"][-1], two["epochs"][-1]
    print(f"test accuracy: one process {a['test_accuracy']}, two {b['test_accuracy']}")
    print(f"training loss: one process {a['train_loss']}, two {b['train_loss']}")
    if abs(a["test_accuracy"] - b["test_accuracy"]) > 0.005:
        failures.append("the test accuracies differ by more than 0.5 points")
    if abs(a["train_loss"] - b["train_loss"]) > 0.01 * a["train_loss"]:
        failures.append("the training losses differ by more than 1%")
    if failures:
        sys.exit("; ".join(failures))


main()
