"""Class-conditional diffusion (Ho et al., 2020) on `diffusers`, with classifier-free guidance (Ho & Salimans, 2022).

A `UNet2DModel` predicts the noise of an image at a random step of a `DDPMScheduler`'s forward process; its
class embedding has one extra row, the "no class" label, that replaces the true label with probability
`label_dropout` in training, so one network learns both the conditional and the unconditional model.
Sampling runs a deterministic `DDIMScheduler` (eta 0, "trailing" spacing, so even 2 steps start from pure
noise) for `sample_steps` steps on an exponential moving average of the weights (diffusers' `EMAModel`),
mixing the two predictions: eps = eps(none) + guidance_scale * (eps(label) - eps(none)).

Depth follows the size: `min(3, floor(log2(size / 8)) + 1)` halvings (8 px: 1, 28: 2, 64 and 128: 3); a
size that does not halve evenly is padded (edge pixels repeated) up to one that does, and cropped back.
On 2 CPU cores this family is slow (see README); the default search space offers it only with a GPU.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from ganmix.models.ddpm_info import FAMILY, SIZE_RULE, DDPMConfig  # noqa: F401 - SIZE_RULE re-exported
from ganmix.models.generator import GenerativeModel, register_generator, seeded_noise
from torch import Tensor

if TYPE_CHECKING:  # diffusers takes seconds to import: only a built model needs it, not the registry
    from diffusers import UNet2DModel

def halvings(image_size: int) -> int:
    return min(3, int(math.log2(image_size / 8)) + 1)


def build_unet(cfg: DDPMConfig) -> UNet2DModel:
    from diffusers import UNet2DModel

    levels = halvings(cfg.image_size) + 1
    channels = tuple(cfg.width * min(2, 2**level) for level in range(levels))
    step = 2 ** (levels - 1)
    return UNet2DModel(
        sample_size=-(-cfg.image_size // step) * step,
        in_channels=cfg.channels,
        out_channels=cfg.channels,
        layers_per_block=cfg.blocks,
        block_out_channels=channels,
        # Self-attention only at the coarsest level (and in the middle block), where it is cheap.
        down_block_types=("DownBlock2D",) * (levels - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
        norm_num_groups=math.gcd(cfg.width, 32),
        attention_head_dim=min(channels[-1], 32),
        num_class_embeds=cfg.num_classes + 1,  # the last row: "no class", for classifier-free guidance
    )


@register_generator
class DDPM(GenerativeModel):
    family = FAMILY.family
    config_cls = DDPMConfig
    config: DDPMConfig
    search_space = FAMILY.search_space
    tiny_options = FAMILY.tiny_options
    cpu_default = FAMILY.cpu_default

    def __init__(self, cfg: DDPMConfig) -> None:
        from diffusers import DDIMScheduler, DDPMScheduler
        from diffusers.training_utils import EMAModel

        super().__init__(cfg)
        self.unet = build_unet(cfg)
        self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False)  # sampled from; saved with the weights
        # diffusers' EMA, updating ema_unet's parameters in place: its shadow parameters are those tensors.
        self.ema = EMAModel(self.ema_unet.parameters(), decay=cfg.ema_decay, foreach=True)
        self.ema.shadow_params = list(self.ema_unet.parameters())
        # fused: one kernel for every parameter (on 2 CPU cores 6 ms a step instead of 42 for 1.6 M parameters).
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=cfg.lr, weight_decay=0.0, fused=True)
        self.noising = DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule="squaredcos_cap_v2")
        self.sampler = DDIMScheduler.from_config(self.noising.config, timestep_spacing="trailing")
        self.padded = self.unet.config.sample_size

    def trainer_state(self) -> dict[str, object]:
        return {**super().trainer_state(), "ema_steps": self.ema.optimization_step}

    def load_trainer_state(self, state: Mapping[str, object]) -> None:
        super().load_trainer_state(state)
        self.ema.optimization_step = int(state["ema_steps"])  # type: ignore[call-overload]

    def _pad(self, images: Tensor) -> Tensor:
        extra = self.padded - self.config.image_size
        if not extra:
            return images
        return F.pad(images, (extra // 2, extra - extra // 2, extra // 2, extra - extra // 2), mode="replicate")

    def _crop(self, images: Tensor) -> Tensor:
        top = (self.padded - self.config.image_size) // 2
        return images[..., top : top + self.config.image_size, top : top + self.config.image_size]

    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        x0 = self._pad(real)
        n = x0.size(0)
        noise = torch.randn_like(x0)
        t = torch.randint(0, self.config.train_timesteps, (n,), device=x0.device)
        dropped = torch.rand(n, device=x0.device) < self.config.label_dropout
        classes = torch.where(dropped, torch.full_like(labels, self.config.num_classes), labels)
        predicted = self.unet(self.noising.add_noise(x0, noise, t), t, class_labels=classes).sample
        loss = F.mse_loss(predicted, noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.ema.step(self.unet.parameters())
        return {"loss": loss.detach()}

    def sample(self, labels: Tensor, *, seed: int, batch_size: int = 512) -> Tensor:
        cfg = self.config
        noise = seeded_noise((len(labels), cfg.channels, self.padded, self.padded), seed, self.device)
        return torch.cat([self._crop(self._denoise(x, y)) for x, y in
                          zip(noise.split(batch_size), labels.split(batch_size))])

    def _denoise(self, x: Tensor, labels: Tensor) -> Tensor:
        guided = self.config.guidance_scale != 1.0
        classes = torch.cat([labels, torch.full_like(labels, self.config.num_classes)]) if guided else labels
        self.sampler.set_timesteps(self.config.sample_steps, device=x.device)
        for t in self.sampler.timesteps:
            inputs = torch.cat([x, x]) if guided else x
            eps = self.ema_unet(inputs, t, class_labels=classes).sample
            if guided:
                conditional, unconditional = eps.chunk(2)
                eps = unconditional + self.config.guidance_scale * (conditional - unconditional)
            x = self.sampler.step(eps, t, x, eta=0.0).prev_sample
        return x.clamp(-1.0, 1.0)
