"""MPSE phase 2 on one photo: time per image of ``feedforward`` vs ``optimize``, and a side-by-side.

Uses a phase-2 checkpoint (``mobile2dslr fit --config configs/mpse/phase2_style.yaml
--model.init_from PHASE1.ckpt``); the photo is the held-out demo scene ``chelsea``
(phone-degraded) resized to ``--size`` squared, restyled after the demo ``astronaut``.
Prints both times and their ratio, measured in this run, and the weighted loss terms of
the phase-1 output, the feed-forward output and the optimised output.

    .venv/bin/python benchmarks/phase2_modes.py --ckpt PHASE2.ckpt [--size 512 --steps 60 --style_weight 1]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from callbacks.image_grid import side_by_side
from datamodules.degradations import PhoneDegradation
from datamodules.demo import load_scene
from datamodules.io import write_image
from lightning_modules.style_optimization import optimize_style
from mobile2dslr.checkpoints import load_phase


def _square(image: np.ndarray, size: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a SemanticStyleRefinement checkpoint")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=60, help="optimize steps (the per-step time scales linearly)")
    parser.add_argument("--style_weight", type=float, default=None, help="override the checkpoint's style weight")
    parser.add_argument("--out", default="outputs/phase2_example/side_by_side.png")
    args = parser.parse_args()

    torch.manual_seed(0)
    module = load_phase(args.ckpt).eval()
    if args.style_weight is not None:
        module.objective.weights["style"] = args.style_weight
    phone = _square(PhoneDegradation().degrade(load_scene("chelsea")[0][1], seed=0), args.size)
    reference = _square(load_scene("astronaut")[0][1], args.size)
    with torch.no_grad():
        module.refiner(phone)  # warm-up
        started = time.perf_counter()
        feedforward = module.refiner(phone).clamp(0, 1)
        seconds_ff = time.perf_counter() - started
        content = module.content(phone)
    started = time.perf_counter()
    optimized = optimize_style(content, reference, module.objective, module.lambda_head, steps=args.steps,
                               working_side=args.size, progress=True)
    seconds_opt = time.perf_counter() - started
    print(f"{args.size}x{args.size}, {torch.get_num_threads()} threads, fp32:")
    print(f"  feedforward  {seconds_ff:8.2f} s/image")
    print(f"  optimize     {seconds_opt:8.2f} s/image ({args.steps} steps, {seconds_opt / args.steps:.2f} s/step)"
          f"  = {seconds_opt / seconds_ff:.0f}x feedforward")
    context = module.objective.context(content, reference)
    weights = module.objective.weights
    with torch.no_grad():
        for name, image in (("phase-1 output", content), ("feedforward", feedforward), ("optimize", optimized)):
            raw, _ = module.objective(image, context, module.lambda_head)
            print(f"  {name:15s}" + "  ".join(f"{k} {weights[k] * v.item():.3g}" for k, v in raw.items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    strip = side_by_side(phone[0], content[0], feedforward[0], optimized[0], reference[0])
    write_image(args.out, strip.permute(1, 2, 0).numpy())
    print(f"wrote {args.out}: phone | phase 1 | feedforward | optimize | reference")


if __name__ == "__main__":
    main()
