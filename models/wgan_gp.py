"""Conditional WGAN-GP (Gulrajani et al., 2017): Wasserstein critic with a gradient penalty.

The critic uses per-sample layer norm (batch norm would couple samples and void the per-sample
penalty) and a projection head for the label. As in the paper, every batch trains the critic and
every `n_critic`-th batch also trains the generator, with Adam (0.0, 0.9).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from ganmix.models._gan_blocks import ConvDiscriminator, ConvGAN, frozen, update
from ganmix.models.generator import register_generator
from ganmix.models.wgan_gp_info import FAMILY, WGANGPConfig


def gradient_penalty(critic: ConvDiscriminator, real: Tensor, fake: Tensor, labels: Tensor) -> Tensor:
    """E[(||grad_x critic(x)|| - 1)^2] on random interpolates between real and fake samples."""
    alpha = torch.rand(real.size(0), 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, labels).logit.sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


@register_generator
class WGANGP(ConvGAN):
    family = FAMILY.family
    config_cls = WGANGPConfig
    search_space = FAMILY.search_space
    tiny_options = FAMILY.tiny_options
    config: WGANGPConfig

    def __init__(self, cfg: WGANGPConfig) -> None:
        super().__init__(cfg, norm="layer", auxiliary=False, betas=(0.0, 0.9))
        self.critic_steps = 0  # batches seen; part of the trainer state a generator-cache snapshot keeps

    def trainer_state(self) -> dict[str, object]:
        return {**super().trainer_state(), "critic_steps": self.critic_steps}

    def load_trainer_state(self, state: Mapping[str, object]) -> None:
        super().load_trainer_state(state)
        self.critic_steps = int(state["critic_steps"])  # type: ignore[call-overload]

    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        cfg = self.config
        fake = self.fake(labels).detach()
        real_in, fake_in = self.augment(real), self.augment(fake)
        c_real = self.discriminator(real_in, labels).logit.mean()
        c_fake = self.discriminator(fake_in, labels).logit.mean()
        gp = gradient_penalty(self.discriminator, real_in, fake_in, labels)
        d_loss = c_fake - c_real + cfg.gp_weight * gp
        update(self.opt_d, d_loss)

        # The generator trains on the first batch of every n_critic cycle; its loss is reported on
        # every batch as -critic(fake), the value it minimises, so each batch has the same metrics.
        if self.critic_steps % cfg.n_critic == 0:
            with frozen(self.discriminator):
                update(self.opt_g, -self.critique(self.fake(labels), labels).logit.mean())
        self.critic_steps += 1
        return {
            "g_loss": -c_fake.detach(),
            "d_loss": d_loss.detach(),
            "gp": gp.detach(),
            "wasserstein": (c_real - c_fake).detach(),
        }
