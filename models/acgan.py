"""ACGAN (Odena et al., 2017): the discriminator scores real-vs-fake and also classifies the image.

Both players add the auxiliary cross-entropy on the true / requested label to their adversarial
BCE, so the generator is pushed to make images the discriminator assigns to the right class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from ganmix.models._gan_blocks import (
    GAN_SPACE,
    TINY_OPTIONS,
    ConvGAN,
    Critique,
    GANConfig,
    adversarial_bce,
    frozen,
    update,
)
from ganmix.models.generator import check_float, register_generator


@dataclass(frozen=True, kw_only=True)
class ACGANConfig(GANConfig):
    aux_weight: float = 1.0  # weight of the auxiliary classification loss for both players

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("aux_weight", self.aux_weight)


def _class_logits(critique: Critique) -> Tensor:
    assert critique.class_logits is not None, "ACGAN's discriminator is built with an auxiliary head"
    return critique.class_logits


@register_generator
class ACGAN(ConvGAN):
    family = "acgan"
    config_cls = ACGANConfig
    search_space = GAN_SPACE
    tiny_options = TINY_OPTIONS
    config: ACGANConfig

    def __init__(self, cfg: ACGANConfig) -> None:
        super().__init__(cfg, norm="batch", auxiliary=True, betas=(0.5, 0.999))

    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        w = self.config.aux_weight
        fake = self.fake(labels)
        on_real = self.critique(real, labels)
        on_fake = self.critique(fake.detach(), labels)
        real_cls = _class_logits(on_real)
        d_adv = adversarial_bce(on_real.logit, real=True) + adversarial_bce(on_fake.logit, real=False)
        d_aux = F.cross_entropy(real_cls, labels) + F.cross_entropy(_class_logits(on_fake), labels)
        d_loss = d_adv + w * d_aux
        update(self.opt_d, d_loss)

        with frozen(self.discriminator):
            on_gen = self.critique(fake, labels)
            g_loss = adversarial_bce(on_gen.logit, real=True) + w * F.cross_entropy(_class_logits(on_gen), labels)
            update(self.opt_g, g_loss)
        return {
            "g_loss": g_loss.detach(),
            "d_loss": d_loss.detach(),
            "aux_loss": d_aux.detach(),
            # Auxiliary head accuracy on the real batch: does D actually learn the classes?
            "aux_acc": (real_cls.detach().argmax(dim=1) == labels).float().mean(),
        }
