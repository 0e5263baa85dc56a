"""The published peer of ganmix's `ddpm`: TeaPearce/Conditional_Diffusion_MNIST's script.py, run as it is.

Its code is not part of ganmix: bench_generators.py finds the file through --peer or $GANMIX_PEER_DDPM
(fetch github:TeaPearce/Conditional_Diffusion_MNIST and save its script.py) and skips it with a line
when absent. Only its data loading is adapted: its `train_mnist()` downloads MNIST and is hard-wired
to cuda:0, so this module imports the script's own ContextUnet and DDPM classes and runs the body of
its training loop (zero_grad, loss = ddpm(x, c), backward, step; batch 256, n_T 400, Adam 1e-4,
drop_prob 0.1) over breastmnist's train split as [0, 1] floats, and its own sampler (`DDPM.sample`,
400 steps of classifier-free guidance on a doubled batch, guide_w 2.0). Its network is fixed at 28 px
(AvgPool2d(7) and a 7x7 transposed conv), so it runs at 28 px only.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch.utils.data import DataLoader, TensorDataset

# As the script hard-codes them in train_mnist().
BATCH_SIZE, N_T, LR, DROP_PROB, BETAS, N_CLASSES = 256, 400, 1e-4, 0.1, (1e-4, 0.02), 10
DEFAULT_N_FEAT = 128  # the script's own width


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_conditional_ddpm", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def params_at(module: ModuleType, n_feat: int) -> int:
    net = module.ContextUnet(in_channels=1, n_feat=n_feat, n_classes=N_CLASSES)
    return sum(p.numel() for p in net.parameters())


def matched_width(module: ModuleType, target: int | None) -> int:
    """The n_feat (a multiple of 8, for its GroupNorm(8, ...)) whose parameter count is nearest `target`."""
    if target is None:
        return DEFAULT_N_FEAT
    return min(range(8, 257, 8), key=lambda n_feat: abs(params_at(module, n_feat) - target))


def measure(path: Path, images: torch.Tensor, labels: torch.Tensor, *, target_params: int | None,
            samples: int, budget_s: float) -> dict[str, object]:
    """Parameters, seconds per epoch over `images` (uint8 (N, 1, 28, 28)) and sampled images per second."""
    module = load_script(path)
    n_feat = matched_width(module, target_params)
    torch.manual_seed(0)
    ddpm = module.DDPM(nn_model=module.ContextUnet(in_channels=1, n_feat=n_feat, n_classes=N_CLASSES),
                       betas=BETAS, n_T=N_T, device="cpu", drop_prob=DROP_PROB)
    row: dict[str, object] = {"n_feat": n_feat, "params": sum(p.numel() for p in ddpm.nn_model.parameters())}
    # The adapted data loading: breastmnist tensors in [0, 1] (what its ToTensor() gives MNIST), no workers.
    loader = DataLoader(TensorDataset(images.float() / 255, labels), batch_size=BATCH_SIZE, shuffle=True)
    optim = torch.optim.Adam(ddpm.parameters(), lr=LR)

    def step(x: torch.Tensor, c: torch.Tensor) -> None:  # the body of the script's training loop
        optim.zero_grad()
        loss = ddpm(x, c)
        loss.backward()
        optim.step()

    ddpm.train()
    started = time.perf_counter()
    step(*next(iter(loader)))  # warm-up, and the estimate of an epoch
    estimate = (time.perf_counter() - started) * math.ceil(len(images) / BATCH_SIZE)
    if estimate > budget_s:
        row["skipped"] = f"an epoch would take about {estimate:.0f} s (> --budget {budget_s:.0f} s)"
        return row
    started = time.perf_counter()
    for x, c in loader:
        step(x, c)
    row["epoch_s"] = time.perf_counter() - started

    ddpm.eval()
    n_sample = max(N_CLASSES, samples // N_CLASSES * N_CLASSES)  # its sampler cycles through 10 labels
    with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):  # it prints every timestep
        x = torch.randn(2 * n_sample, 1, 28, 28)
        c, t = torch.arange(2 * n_sample) % N_CLASSES, torch.full((2 * n_sample, 1, 1, 1), 0.5)
        started = time.perf_counter()
        ddpm.nn_model(x, c, t, torch.zeros(2 * n_sample))  # one of its N_T denoising passes
        estimate = (time.perf_counter() - started) * N_T
        if estimate > budget_s:
            row["sampling_skipped"] = f"{n_sample} images would take about {estimate:.0f} s"
            return row
        started = time.perf_counter()
        ddpm.sample(n_sample, (1, 28, 28), "cpu", guide_w=2.0)
        row["images_per_s"] = n_sample / (time.perf_counter() - started)
    row["sample_steps"] = N_T
    return row


def duel(path: Path, ours: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batches: list[int],
         rounds: int) -> dict[str, object]:
    """ganmix's `ddpm` (`ours`, built at 28 px) and the peer at the matched width, in this one process,
    taking turns on the same images: round after round, one training step of each at each batch size, then
    one guided denoising pass of each over the same images. Rows run in separate processes minutes apart
    see different loads on a shared machine; taking turns, both see the same, and the fastest round of each
    is compared. Per image: milliseconds per training step, and per denoising pass (a sampler runs
    `sample_steps` of them: 50 DDIM steps for ours by default, 400 for the peer)."""
    module = load_script(path)
    params = sum(p.numel() for p in ours.parameters() if p.requires_grad)
    n_feat = matched_width(module, params)
    torch.manual_seed(0)
    peer = module.DDPM(nn_model=module.ContextUnet(in_channels=1, n_feat=n_feat, n_classes=N_CLASSES),
                       betas=BETAS, n_T=N_T, device="cpu", drop_prob=DROP_PROB)
    optim = torch.optim.Adam(peer.parameters(), lr=LR)

    def peer_step(x: torch.Tensor, c: torch.Tensor) -> None:  # the body of the script's training loop
        optim.zero_grad()
        peer(x, c).backward()
        optim.step()

    guided = 2  # both samplers run the network on a doubled batch (with and without the label)
    n = min(len(images), 32)
    x_pass, c_pass = torch.randn(guided * n, 1, 28, 28), labels[:n].repeat(guided)
    t = torch.full((guided * n,), 500)

    def ours_pass() -> None:
        ours.ema_unet(x_pass, t, class_labels=c_pass)  # what one step of `ddpm.sample` runs

    def peer_pass() -> None:
        peer.nn_model(x_pass, c_pass, (t / N_T).view(-1, 1, 1, 1), torch.zeros(guided * n))

    jobs: dict[str, tuple[int, Callable[[], object]]] = {}
    for batch in batches:
        unit, c = images[:batch].float() / 255, labels[:batch]
        jobs[f"ours_train_{batch}"] = (batch, lambda unit=unit, c=c: ours.train_step(unit * 2 - 1, c))
        jobs[f"peer_train_{batch}"] = (batch, lambda unit=unit, c=c: peer_step(unit, c))
    jobs["ours_pass"], jobs["peer_pass"] = (n, ours_pass), (n, peer_pass)
    best = {name: math.inf for name in jobs}
    for round_ in range(rounds + 1):  # round 0 warms both up and is not counted
        for name, (count, job) in jobs.items():
            grad = torch.enable_grad() if "train" in name else torch.no_grad()
            with grad:
                started = time.perf_counter()
                job()
                took = (time.perf_counter() - started) * 1000 / count
            if round_:
                best[name] = min(best[name], took)
    return {"n_feat": n_feat, "params": params, "peer_params": sum(p.numel() for p in peer.nn_model.parameters()),
            "rounds": rounds, **{f"{name}_ms": value for name, value in best.items()}}
