#!/usr/bin/env python3
"""Trains a per-reading anomaly classifier on the simulator's labelled faults and exports it
as ONNX, for the processor's `[processor.onnx]` scorer.

The features are the scorer's (docs/anomalies.md, "Bring your own model"): for a sensor's
window of its last N readings, oldest first, with m and s the mean and the (population)
standard deviation of the N - 1 earlier ones,

    [t_1 - m, ..., t_N - m, s, r]

where r counts how many of the newest readings repeat the one before them. The model's input
is float32 [batch, N + 2]; its last output's last column is the score (here the probability
that the newest reading is anomalous).

Labels: the first N readings of a spike, level shift, stuck spell or noise burst are anomalous
(a later reading of a long fault looks normal inside its own window, so it is left out of
training); drift and dropouts are left out (drift has no onset to see, and the window holds no
sequence numbers). Unlabelled readings are normal.

    python models/train.py --simulator target/debug/sensor-simulator --out model.onnx \
        [--check check.json] [--readings 200000] [--seed 1] [--window 10]

--check writes held-out windows with this script's own scores, to test the Rust features and
scorer against.
"""

import argparse
import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
from skl2onnx import to_onnx
from sklearn.neural_network import MLPClassifier
from sklearn.metrics import precision_score, recall_score

TRAINED_KINDS = {"spike", "level_shift", "stuck", "noise"}


def features(window):
    """The scorer's features for one full window (oldest first)."""
    earlier = np.asarray(window[:-1], dtype=np.float64)
    m, s = earlier.mean(), earlier.std()
    r = 0
    for newer, older in zip(reversed(window[1:]), reversed(window[:-1])):
        if newer != older:
            break
        r += 1
    return [t - m for t in window] + [s, r]


def readings(simulator, count, seed):
    """The simulator's labelled readings, as `--print` writes them."""
    command = [
        simulator, "--print", "--count", str(count), "--seed", str(seed),
        "--sensors", "50", "--fault-rate", "6",
        "--fault-kinds", "spike,level_shift,stuck,noise,drift,dropout",
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines()]


def dataset(lines, n):
    windows = defaultdict(list)
    position = defaultdict(int)
    xs, ys, ws = [], [], []
    for line in lines:
        reading = line["reading"]
        window = windows[reading["sensor_id"]]
        window.append(reading["temperature"])
        del window[:-n]
        kind, fault_id = line["fault"], line["fault_id"]
        at = 0
        if kind is not None:
            at = position[fault_id]
            position[fault_id] += 1
        if len(window) < n:
            continue
        if kind is None:
            label = 0
        elif kind in TRAINED_KINDS and at < n:
            label = 1
        else:
            continue
        xs.append(features(window))
        ys.append(label)
        ws.append(list(window))
    return np.asarray(xs, dtype=np.float32), np.asarray(ys), ws


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--simulator", required=True, help="the sensor-simulator binary")
    parser.add_argument("--out", required=True, help="where to write the ONNX model")
    parser.add_argument("--check", help="where to write held-out inputs and their scores")
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=10, help="the processor's window_size")
    args = parser.parse_args()

    x, y, windows = dataset(readings(args.simulator, args.readings, args.seed), args.window)
    split = len(x) * 4 // 5
    # A small neural network: tract runs its MatMul/Relu graph in microseconds. (A random
    # forest scored the same but took over a millisecond per reading as tract's
    # TreeEnsembleClassifier, and tract has no `Scaler`: the features are in °C as they come.)
    model = MLPClassifier(
        hidden_layer_sizes=(32, 16), early_stopping=True, max_iter=200, random_state=args.seed
    )
    model.fit(x[:split], y[:split])
    held_out = model.predict(x[split:])
    print(
        f"trained on {split} windows ({int(y[:split].sum())} anomalous); held out "
        f"{len(x) - split}: precision {precision_score(y[split:], held_out):.3f}, "
        f"recall {recall_score(y[split:], held_out):.3f}",
        file=sys.stderr,
    )

    onnx = to_onnx(
        model, x[:1], options={id(model): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3}
    )
    with open(args.out, "wb") as f:
        f.write(onnx.SerializeToString())
    if args.check:
        # Held-out anomalous windows, and the first 300 held-out ones, with this script's scores.
        rows = sorted(set(list(np.flatnonzero(y[split:])[:200] + split) + list(range(split, split + 300))))
        with open(args.check, "w") as f:
            json.dump(
                {
                    "windows": [windows[i] for i in rows],
                    "scores": model.predict_proba(x[rows])[:, 1].astype(float).tolist(),
                },
                f,
            )


if __name__ == "__main__":
    main()
