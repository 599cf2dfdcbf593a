"""Network cost where designs spend their time: UNet forward and forward + vector-Jacobian product per sample.

    .venv/bin/python benchmarks/network.py --threads 1 --repeats 5

For every shipped model (the bundled particle prior, the seed B style priors; with --seed-a also seed A's
appendix-C UNet at 64x64 with untrained weights, i.e. the architecture before the matdiff-2d preset, whose
cost does not depend on its weights) and both weight layouts
(contiguous NCHW, as before; channels_last NHWC, what ``DiffusionModel`` uses on the CPU now), alternating
layouts in one process so that both see the same machine
load: the forward pass (unguided sampling, noise-space candidates) and the forward pass plus the gradient with
respect to the input (what TFG/DPS guidance and the noise-space L-BFGS pay per step). Prints min and median
ms per sample and the largest output difference between the layouts (they must agree to float tolerance).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from matdiff.diffusion import load_model, untrained_model
from matdiff.styles import bundled_model_path


def timed(fn, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls of fn (after one warm-up call)."""
    fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def measure(model, batch: int, layout: torch.memory_format, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of forward and forward + input gradient at batch ``batch`` with the network's weights
    in ``layout`` (inputs stay contiguous, as callers pass them)."""
    model.unet.to(memory_format=layout)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((batch, *model.sample_shape), generator=gen)
    t = torch.full((batch,), 500)

    def forward():
        with torch.no_grad():
            return model.predict(x, t)[0]

    def forward_vjp():
        leaf = x.detach().requires_grad_(True)
        x0, _ = model.predict(leaf, t)
        return torch.autograd.grad(x0.sum(), leaf)[0]

    return {"fwd": timed(forward, repeats), "fwd+vjp": timed(forward_vjp, repeats), "out": forward()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=50, help="particle prior batch (a guided design batch)")
    parser.add_argument("--model", default=None, help="particle prior folder (default: the bundled one)")
    parser.add_argument("--seed-a", action="store_true", help="also seed A's UNet at 64x64 (untrained)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = {f"particle prior ({args.model or 'bundled'})": (args.model, args.batch)}
    models |= {f"seed B {s}": (bundled_model_path(s), 2) for s in ("digits", "metamaterial")}
    if args.seed_a:
        models["seed A UNet, 64x64, untrained"] = ("seedA-2d", args.batch)
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    print("| model | batch | layout | fwd ms/sample, min / median | fwd+vjp, min / median | max diff |")
    print("|---|---|---|---|---|---|")
    for name, (path, batch) in models.items():
        model = untrained_model("seedA-2d", 64) if path == "seedA-2d" else load_model(path)
        results = {key: {"fwd": [], "fwd+vjp": []} for key in layouts}
        outputs = {}
        for _ in range(args.repeats):  # alternate the layouts
            for key, layout in layouts.items():
                run = measure(model, batch, layout, 1)
                results[key]["fwd"] += run["fwd"]
                results[key]["fwd+vjp"] += run["fwd+vjp"]
                outputs[key] = run["out"]
        diff = float((outputs["contiguous"] - outputs["channels_last"]).abs().max())
        for key in layouts:
            cells = []
            for part in ("fwd", "fwd+vjp"):
                ms = [1000 * s / batch for s in results[key][part]]
                cells.append(f"{min(ms):.2f} / {statistics.median(ms):.2f}")
            print(f"| {name} | {batch} | {key} | {cells[0]} | {cells[1]} | {diff:.1e} |")


if __name__ == "__main__":
    main()
