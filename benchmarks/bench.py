"""`make bench`: how close inference and training come to this machine's limits, in one run.

(a) generator inference throughput in megapixels/s and as a fraction of the fp32 matmul peak
    measured in the same run, for eager, channels_last, bf16 and compiled variants;
(b) training iterations/s of every phase (its demo config; phase 1 also at the full recipe,
    and with bf16-mixed / channels_last);
(c) `mobile2dslr enhance` on a 12 MP photo: time and peak memory per tile size.

Writes ``bench.json`` and ``bench.png`` into ``--out`` (default outputs/bench). Ratios
measured in this run are the headline; absolute times depend on the machine.

    make bench                                  # everything (~15 min on a 2-core CPU)
    .venv/bin/python benchmarks/bench.py --only inference --side 256
"""

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import torch  # noqa: E402

from inference_speed import VARIANTS, flops_per_pixel, matmul_peak, throughput  # noqa: E402
from tiled_memory import make_photo, run_in_launcher  # noqa: E402
from train_speed import PHASES, measure_phase  # noqa: E402

SHARED = REPO.parent / "shared"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _official_generator():
    """The official DPED generator with its iPhone weights when ../shared has them (speed does not depend on them)."""
    from lightning_modules.nets import DPEDGenerator

    net = DPEDGenerator(width=64, norm="instance")
    npz = SHARED / "weights/dped_official/npz/iphone_orig.npz"
    if npz.is_file():
        from mobile2dslr.commands.import_dped import import_dped
        from mobile2dslr.checkpoints import load_enhancer

        with tempfile.TemporaryDirectory() as folder:
            import_dped(str(npz), f"{folder}/iphone.ckpt")
            net = load_enhancer(f"{folder}/iphone.ckpt")
    return net.eval()


def inference(device: torch.device, side: int) -> dict:
    from lightning_modules.nets import DPEDGenerator
    from mobile2dslr.devices import bf16_supported

    fast_bf16 = bf16_supported(device)
    # Without native bf16 (AVX512-BF16/AMX, or CUDA) bf16 runs emulated, ~20x slower: measure it small.
    peak = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device, sizes=(1024, 2048) if fast_bf16 else (256,))}
    nets = {
        "official DPED generator (64 ch, instance norm)": _official_generator(),
        "DPED+ generator (64 ch, separable, BN)": DPEDGenerator(width=64, norm="batch", activation="lrelu", separable=True).eval(),
    }
    rows = []
    for net_name, net in nets.items():
        net = net.to(device)
        flops = flops_per_pixel(net, device)
        for variant, (_, dtype, _) in VARIANTS.items():
            if dtype is not None and not fast_bf16:
                continue
            try:
                row = throughput(net, variant, device, side)
            except Exception as err:  # e.g. no compiler toolchain: report, go on
                row = {"variant": variant, "error": f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"}
            rows.append({**row, "net": net_name, "mflop_per_pixel": flops / 1e6})
    # The peak again at the end (the best of both is the machine's): shared or clock-scaling CPUs are noisy.
    peak["fp32"] = max(peak["fp32"], matmul_peak(torch.float32, device))
    print(f"\n(a) inference, {side}x{side} input; matmul peak (best of many, start and end): fp32 {peak['fp32']:.1f} GFLOP/s, "
          f"bf16 {peak['bf16']:.1f} GFLOP/s" + ("" if fast_bf16 else " (no native bf16 here: bf16 variants skipped, fp32 is the default path)"))
    for net_name in nets:
        mine = [r for r in rows if r["net"] == net_name]
        print(f"{net_name}: {mine[0]['mflop_per_pixel']:.2f} MFLOP per pixel")
        print(f"  {'variant':30s} {'MP/s':>7s} {'x eager':>8s} {'% fp32 peak':>12s} {'warm-up s':>10s}")
        base = next((r["megapixels_per_s"] for r in mine if "megapixels_per_s" in r), None)
        for row in mine:
            if "error" in row:
                print(f"  {row['variant']:30s} failed: {row['error']}")
                continue
            row["speedup"] = row["megapixels_per_s"] / base
            row["fraction_of_fp32_peak"] = row["megapixels_per_s"] * 1e6 * row["mflop_per_pixel"] * 1e6 / (peak["fp32"] * 1e9)
            print(f"  {row['variant']:30s} {row['megapixels_per_s']:7.3f} {row['speedup']:8.2f} "
                  f"{100 * row['fraction_of_fp32_peak']:11.1f}% {row['warmup_s']:10.1f}")
    return {"matmul_peak_gflops": peak, "native_bf16": fast_bf16, "side": side, "rows": rows}


def training(batches: int) -> list[dict]:
    print(f"\n(b) training, mean of {batches} batches after one warm-up")
    print(f"  {'phase':52s} {'s/iteration':>12s} {'iterations/s':>13s}")
    setups = [(name, config, steps, extra, "32-true", False) for name, (config, steps, extra) in PHASES.items()]
    from mobile2dslr.devices import bf16_supported

    phase1 = PHASES["MPSE phase 1 (demo)"]
    setups.append(("MPSE phase 1 (demo), channels_last", *phase1, "32-true", True))
    if bf16_supported(torch.device("cuda" if torch.cuda.is_available() else "cpu")):
        setups += [("MPSE phase 1 (demo), bf16-mixed", *phase1, "bf16-mixed", False),
                   ("MPSE phase 1 (demo), bf16-mixed + channels_last", *phase1, "bf16-mixed", True)]
    rows = []
    for name, config, steps, extra, precision, channels_last in setups:
        seconds = measure_phase(config, steps, extra, batches=batches, precision=precision, channels_last=channels_last)
        rows.append({"phase": name, "config": config, "precision": precision, "channels_last": channels_last,
                     "seconds_per_iteration": seconds, "iterations_per_s": 1 / seconds})
        print(f"  {name:52s} {seconds:12.3f} {1 / seconds:13.3f}")
    return rows


def tiled(out: Path, tiles: list[int]) -> list[dict]:
    from mobile2dslr.checkpoints import build_phase, save_phase

    print("\n(c) mobile2dslr enhance on a 12 MP photo (4000x3000), DPED+ generator, default path (bf16 where fast)")
    photo = make_photo(out / "photo_12mp.jpg", source=SHARED / "data/dped_fullsize/iphone/test_data/full_size_test_images/16.jpg")
    model, hparams = build_phase({"class_path": "lightning_modules.DPEDPlus", "init_args": {"generator": {
        "class_path": "lightning_modules.nets.DPEDGenerator",
        "init_args": {"width": 64, "norm": "batch", "activation": "lrelu", "separable": True}}}})
    ckpt = save_phase(model, hparams, str(out / "dped_plus.ckpt"))
    print(f"  {'tile':>6s} {'enhance s':>10s} {'MP/s':>7s} {'process s':>10s} {'peak RSS GiB':>13s}")
    print(f"  {len(tiles)} fresh enhance processes, about 2 min each on a 2-core CPU ...", flush=True)
    rows = run_in_launcher(photo, ckpt, out, tiles)
    for row in rows:
        print(f"  {row['tile']:6d} {row['seconds']:10.1f} {row['megapixels_per_s']:7.3f} {row['process_seconds']:10.1f} {row['peak_rss_gib']:13.2f}")
    return rows


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    rows = [r for r in results.get("inference", {}).get("rows", []) if "error" not in r]
    for net in dict.fromkeys(r["net"] for r in rows):
        mine = [r for r in rows if r["net"] == net]
        axes[0].barh([f"{r['variant']}\n{net.split(' (')[0]}" for r in mine], [100 * r["fraction_of_fp32_peak"] for r in mine])
    axes[0].set_xlabel("% of fp32 matmul peak (this run)")
    axes[0].set_title("(a) inference")
    train = results.get("training", [])
    axes[1].barh([r["phase"] for r in train], [r["iterations_per_s"] for r in train])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("iterations / s (log)")
    axes[1].set_title("(b) training")
    tiles = results.get("tiled", [])
    if tiles:
        axes[2].plot([r["tile"] for r in tiles], [r["seconds"] for r in tiles], "o-", label="seconds")
        twin = axes[2].twinx()
        twin.plot([r["tile"] for r in tiles], [r["peak_rss_gib"] for r in tiles], "s--", color="C1", label="peak RSS GiB")
        twin.set_ylabel("peak RSS (GiB)")
        axes[2].set_xscale("log", base=2)
        axes[2].set_xlabel("tile side (px)")
        axes[2].set_ylabel("seconds for 12 MP")
        axes[2].set_ylim(bottom=0)
        twin.set_ylim(bottom=0)
    axes[2].set_title("(c) 12 MP enhance vs tile")
    fig.suptitle(results["device"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "outputs" / "bench")
    parser.add_argument("--only", choices=["inference", "training", "tiled"], action="append", help="run only these parts")
    parser.add_argument("--side", type=int, default=512, help="(a) image side")
    parser.add_argument("--batches", type=int, default=3, help="(b) timed batches per phase")
    parser.add_argument("--tiles", type=int, nargs="+", default=[256, 512, 1024, 2048], help="(c) tile sides")
    parser.add_argument("--plot", type=Path, help="only redraw the plot of this bench.json")
    args = parser.parse_args()
    if args.plot:
        plot(json.loads(args.plot.read_text()), args.plot.with_suffix(".png"))
        return
    parts = args.only or ["inference", "training", "tiled"]
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    os.environ.setdefault("WANDB_MODE", "disabled")
    os.chdir(REPO)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = {"device": _device_name(device), "torch": torch.__version__}
    print(f"mobile2dslr benchmark on {results['device']}, torch {torch.__version__}")
    if "inference" in parts:
        results["inference"] = inference(device, args.side)
    if "training" in parts:
        results["training"] = training(args.batches)
    if "tiled" in parts:
        results["tiled"] = tiled(args.out, args.tiles)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "bench.png")
    print(f"\nwrote {args.out / 'bench.json'} and {args.out / 'bench.png'}")


if __name__ == "__main__":
    main()
