"""Every generator family at 28, 64 and 128 px on breastmnist: parameters, seconds per generator epoch,
sampled images per second and peak memory; a published conditional DDPM beside ganmix's `ddpm`; and the
peak memory of one whole 128-px trial.

    python bench/bench_generators.py [--device cpu] [--threads 2] [--sizes 28 64 128] [--epochs 1]
        [--samples 64] [--budget 600] [--peer PATH/script.py] [--no-trial] [--data PATH] [--json PATH]

breastmnist's 28 px train split (546 images) is resized to each size (ganmix's own resize), so every
size trains on the same images. Each row runs in a fresh process, so its peak memory is its own: CPU
peak RSS (the process, torch included; "idle" is the RSS once torch and the data are loaded), and the
peak of torch's CUDA allocator on a GPU. An epoch is timed after one warm-up step; a row whose warm-up
step says an epoch would take more than --budget seconds is skipped with a line. Images per second:
`sample_images` of --samples images after a warm-up call.

The peer (see bench/_peer_ddpm.py) is TeaPearce/Conditional_Diffusion_MNIST's script.py at the width
whose parameter count is nearest ganmix's `ddpm` at 28 px, found through --peer or $GANMIX_PEER_DDPM.
Besides its own row, the two take turns in one process (--duel-rounds; _peer_ddpm.duel), so that on a
shared machine both are timed under the same load: that comparison is the one to judge speed by.
The trial is `ganmix train` of a 128-px dcgan recipe (1 generator epoch, 1 classifier epoch, no sample
metrics) in its own process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from _common import DEFAULT_DATA, load_average, machine_rows, print_rows, write_json

PEER_ENV = "GANMIX_PEER_DDPM"
BATCH = 64


def load_train(path: Path, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    from _common import load_npz
    from ganmix.datasets import resize_images

    train = load_npz(path).train
    return resize_images(train.images, size), train.labels


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def synced(device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # time finished work, not queued kernels
    return time.perf_counter()


def measure_family(name: str, size: int, args: argparse.Namespace) -> dict[str, object]:
    """One row, in this (fresh) process: see the module docstring."""
    from ganmix.models._images import to_unit
    from ganmix.models.generator import create_generator, make_generator_config, sample_images
    from ganmix.models.generator_training import train_generator

    images, labels = load_train(args.data, size)
    row: dict[str, object] = {"family": name, "size": size, "batch": args.batch, "idle_mb": current_rss_mb()}
    torch.manual_seed(0)
    options = {} if args.width is None else {"width": args.width}
    cfg = make_generator_config(name, image_size=size, channels=1, num_classes=int(labels.max()) + 1,
                                batch_size=args.batch, options=options)
    model = create_generator(name, cfg).to(args.device)
    # Trained parameters: an EMA copy (ddpm) is not counted, generator and discriminator both are.
    row["params"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    started = synced(args.device)
    model.train_step(to_unit(images[:args.batch], args.device), labels[:args.batch].to(args.device))
    estimate = (synced(args.device) - started) * math.ceil(len(images) / args.batch)
    if estimate > args.budget:
        row["skipped"] = f"an epoch would take about {estimate:.0f} s (> --budget {args.budget:.0f} s)"
    else:
        stamps = [synced(args.device)]
        train_generator(model, images, labels, epochs=args.epochs, device=args.device,
                        on_epoch=lambda _e, _m: stamps.append(synced(args.device)))
        row["epoch_s"] = min(b - a for a, b in zip(stamps, stamps[1:]))
    wanted = torch.arange(args.samples) % cfg.num_classes
    started = synced(args.device)
    sample_images(model, wanted[:2], seed=0)  # warm-up, and the estimate
    estimate = (synced(args.device) - started) * args.samples / 2
    if estimate > args.budget:
        row["sampling_skipped"] = f"{args.samples} images would take about {estimate:.0f} s"
    else:
        started = synced(args.device)
        sample_images(model, wanted, seed=1)
        row["images_per_s"] = args.samples / (synced(args.device) - started)
    row["peak_mb"] = peak_rss_mb()
    if args.device.startswith("cuda"):
        row["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def measure_peer(args: argparse.Namespace) -> dict[str, object]:
    from _peer_ddpm import measure

    images, labels = load_train(args.data, 28)
    row = measure(args.peer, images, labels, target_params=args.peer_params, samples=args.peer_samples,
                  budget_s=args.budget)
    return {**row, "peak_mb": peak_rss_mb()}


def measure_duel(args: argparse.Namespace) -> dict[str, object]:
    from _peer_ddpm import duel
    from ganmix.models.generator import create_generator, make_generator_config

    images, labels = load_train(args.data, 28)
    torch.manual_seed(0)
    options = {} if args.width is None else {"width": args.width}
    cfg = make_generator_config("ddpm", image_size=28, channels=1, num_classes=int(labels.max()) + 1,
                                batch_size=args.batch, options=options)
    return duel(args.peer, create_generator("ddpm", cfg), images, labels, batches=sorted({args.batch, 256}),
                rounds=args.duel_rounds)


def duel_lines(duel: dict[str, object], sample_steps: object) -> list[str]:
    if "error" in duel:
        return [f"taking turns: failed: {duel['error']}"]
    lines = [f"taking turns in one process (the fastest of {duel['rounds']} rounds; ddpm {duel['params']:,} "
             f"parameters, peer n_feat {duel['n_feat']} {duel['peer_params']:,}), ms per image:"]
    for key in sorted(k for k in duel if str(k).startswith("ours_train_")):
        batch = key.removeprefix("ours_train_").removesuffix("_ms")
        ours, peer = float(duel[key]), float(duel[f"peer_train_{batch}_ms"])  # type: ignore[arg-type]
        lines.append(f"  training step, batch {batch:>3}: ddpm {ours:.2f}, peer {peer:.2f} "
                     f"(ddpm takes {ours / peer:.2f}x the peer's time)")
    ours, peer = float(duel["ours_pass_ms"]), float(duel["peer_pass_ms"])  # type: ignore[arg-type]
    lines.append(f"  one guided denoising pass: ddpm {ours:.2f}, peer {peer:.2f} (ddpm {ours / peer:.2f}x)")
    if isinstance(sample_steps, int):
        lines.append(f"  a sampled image: ddpm {ours * sample_steps:.0f} ({sample_steps} steps), peer "
                     f"{peer * N_T_PEER:.0f} ({N_T_PEER} steps)")
    return lines


def measure_trial(args: argparse.Namespace) -> dict[str, object]:
    """`ganmix train` of a 128-px recipe, in this process; its peak RSS (and GPU peak) is the trial's."""
    from ganmix.search.cli import main
    from ganmix.search.recipe import Recipe

    with tempfile.TemporaryDirectory(prefix="ganmix-bench-trial-") as tmp:
        # One generator epoch and one classifier epoch (no step floor): the peak is what is measured.
        recipe = Recipe(dataset="breastmnist", image_size=128, generator="dcgan", generator_epochs=1,
                        classifier_epochs=1, classifier_min_steps=0)
        path = Path(tmp) / "recipe.yaml"
        recipe.save(path)
        argv = ["train", "--recipe", str(path), "--data-dir", str(args.data.parent), "--results-dir", tmp,
                "--no-sample-metrics", *(["--cpu"] if not args.device.startswith("cuda") else [])]
        started = time.perf_counter()
        rc = main(argv)
        row: dict[str, object] = {"rc": rc, "seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb()}
    if torch.cuda.is_available() and args.device.startswith("cuda"):
        row["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def child(args: argparse.Namespace, *what: str) -> dict[str, object]:
    """Run one measurement in a fresh interpreter and return its row (or the reason it failed)."""
    argv = [sys.executable, __file__, "--child", *what, "--device", args.device, "--threads", str(args.threads),
            "--epochs", str(args.epochs), "--batch", str(args.batch), "--samples", str(args.samples), "--budget", str(args.budget),
            "--data", str(args.data), "--peer-samples", str(args.peer_samples)]
    argv += [] if args.width is None else ["--width", str(args.width)]
    argv += [] if args.peer is None else ["--peer", str(args.peer)]
    argv += [] if args.peer_params is None else ["--peer-params", str(args.peer_params)]
    argv += ["--duel-rounds", str(args.duel_rounds)]
    done = subprocess.run(argv, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]}
    return json.loads(lines[-1])


def _mb(row: dict[str, object], key: str) -> str:
    return f"{row[key]:.0f}" if key in row else "-"


def family_line(row: dict[str, object]) -> str:
    if "error" in row:
        return f"{row.get('family', '?'):<8} {row.get('size', '?'):>4}  failed: {row['error']}"
    epoch = f"{row['epoch_s']:.2f}" if "epoch_s" in row else "skipped"
    rate = f"{row['images_per_s']:.3g}" if "images_per_s" in row else "skipped"
    line = (f"{row['family']:<8} {row['size']:>4} {row['params']:>10,} {epoch:>9} {rate:>9} "
            f"{_mb(row, 'peak_mb'):>8} {_mb(row, 'idle_mb'):>6} {_mb(row, 'gpu_peak_mb'):>8}")
    why = "; ".join(str(row[key]) for key in ("skipped", "sampling_skipped") if key in row)
    return line + (f"  ({why})" if why else "")


def peer_lines(ours: dict[str, object] | None, peer: dict[str, object], sample_steps: object) -> list[str]:
    lines = [f"{'':<28} {'params':>10} {'s/epoch':>9} {'images/s':>9} {'sampler':>22}"]
    if ours is not None and "error" not in ours:
        epoch = f"{ours['epoch_s']:.2f}" if "epoch_s" in ours else "skipped"
        rate = f"{ours['images_per_s']:.3g}" if "images_per_s" in ours else "skipped"
        lines.append(f"{'ganmix ddpm (batch ' + str(ours.get('batch', BATCH)) + ')':<28} {ours['params']:>10,} "
                     f"{epoch:>9} {rate:>9} {f'{sample_steps} steps, guided x2':>22}")
    if "error" in peer:
        return [*lines, f"peer failed: {peer['error']}"]
    epoch = f"{peer['epoch_s']:.2f}" if "epoch_s" in peer else "skipped"
    rate = f"{peer['images_per_s']:.3g}" if "images_per_s" in peer else "skipped"
    why = "; ".join(str(peer[key]) for key in ("skipped", "sampling_skipped") if key in peer)
    lines.append(f"{'peer, n_feat ' + str(peer['n_feat']) + ' (batch 256)':<28} {peer['params']:>10,} {epoch:>9} "
                 f"{rate:>9} {f'{N_T_PEER} steps, guided x2':>22}" + (f"  ({why})" if why else ""))
    return lines


N_T_PEER = 400


def run_peer(args: argparse.Namespace, rows: list[dict[str, object]]) -> list[str]:
    from ganmix.models.generator import generator_options, list_generators

    if args.peer is None or not args.peer.is_file():
        return [f"peer: skipped (no script.py found: pass --peer PATH or set ${PEER_ENV}; it is script.py of "
                "github:TeaPearce/Conditional_Diffusion_MNIST)"]
    ours = next((r for r in rows if r.get("family") == "ddpm" and r.get("size") == 28), None)
    if "ddpm" not in list_generators():
        head = "peer at its own width (no `ddpm` family registered to match):"
    elif ours is None or "params" not in ours:
        ours = child(args, "family", "ddpm", "28")
        head = "peer vs ganmix's ddpm at 28 px, matched parameter count:"
    else:
        head = "peer vs ganmix's ddpm at 28 px, matched parameter count:"
    args.peer_params = ours.get("params") if ours else None  # type: ignore[assignment]
    peer = child(args, "peer")
    steps = generator_options("ddpm").get("sample_steps", "?") if "ddpm" in list_generators() else "?"
    lines = [head, *peer_lines(ours if ours and ours.get("family") == "ddpm" else None, peer, steps)]
    if "ddpm" in list_generators() and args.duel_rounds > 0:
        lines += duel_lines(child(args, "duel"), steps)
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on the CPU")
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 128])
    parser.add_argument("--families", nargs="+", default=None, help="default: every registered family")
    parser.add_argument("--batch", type=int, default=BATCH, help="generator batch size (default 64)")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs after a warm-up step (the fastest counts)")
    parser.add_argument("--samples", type=int, default=64, help="images sampled for images/s")
    parser.add_argument("--budget", type=float, default=600.0, help="skip an epoch or a sampling run longer than this")
    parser.add_argument("--width", type=int, default=None, help="override every family's width option")
    parser.add_argument("--peer", type=Path, default=Path(os.environ[PEER_ENV]) if PEER_ENV in os.environ else None,
                        help=f"the peer's script.py (or ${PEER_ENV})")
    parser.add_argument("--peer-samples", type=int, default=10, help="images the peer samples (a multiple of 10)")
    parser.add_argument("--peer-params", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--duel-rounds", type=int, default=3,
                        help="rounds of ddpm and the peer taking turns in one process (0: skip)")
    parser.add_argument("--no-trial", action="store_true", help="skip the 128-px trial")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="breastmnist.npz (or $GANMIX_BREASTMNIST)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here (for bench/run_all.py)")
    parser.add_argument("--child", nargs="+", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_child(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    kind, *rest = args.child
    if kind == "family":
        row = measure_family(rest[0], int(rest[1]), args)
    else:
        row = {"peer": measure_peer, "duel": measure_duel, "trial": measure_trial}[kind](args)
    print(json.dumps(row), flush=True)


def main() -> None:
    args = parse_args()
    if args.child:
        run_child(args)
        return
    from ganmix.models.generator import list_generators

    load_before = load_average()
    families = args.families or list_generators()
    print_rows(machine_rows(args.device))
    print(f"breastmnist train (546 images, 28 px, resized), {args.threads} threads, batch {args.batch}, "
          f"load average {load_before:.2f}", flush=True)
    print(f"{'family':<8} {'px':>4} {'params':>10} {'s/epoch':>9} {'images/s':>9} {'peak MB':>8} {'idle':>6} "
          f"{'GPU MB':>8}", flush=True)
    rows, out = [], []
    for size in args.sizes:
        for name in families:
            row = child(args, "family", name, str(size))
            row.setdefault("family", name), row.setdefault("size", size)
            rows.append(row)
            print(family_line(row), flush=True)
            if "epoch_s" in row:
                out.append((f"{name} {size}px epoch, batch {args.batch} (s)",
                            f"{row['epoch_s']:.3f}  ({row['params']} params, {row.get('images_per_s', 0):.3g} "
                            f"images/s, peak {row['peak_mb']:.0f} MB)"))
    for line in run_peer(args, rows):
        print(line, flush=True)
        out.append(("peer ddpm", line))
    if not args.no_trial:
        trial = child(args, "trial")
        text = ("failed: " + str(trial["error"]) if "error" in trial else
                f"peak RSS {trial['peak_mb']:.0f} MB" + (f", GPU {trial['gpu_peak_mb']:.0f} MB" if "gpu_peak_mb" in trial
                                                         else "") + f", {trial['seconds']:.0f} s (exit {trial['rc']})")
        print(f"128-px trial (dcgan, 1 generator + 1 classifier epoch, no sample metrics): {text}", flush=True)
        out.append(("128-px trial peak memory", text))
    load_after = load_average()
    print(f"load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}")
    out.append(("load average (1 min) before / after", f"{load_before:.2f} / {load_after:.2f}"))
    write_json(args.json, "generators", out, (load_before, load_after))


if __name__ == "__main__":
    main()
