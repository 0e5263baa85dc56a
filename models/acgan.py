"""ACGAN (Odena et al., 2017): the discriminator scores real-vs-fake and also classifies the image.

Both players add the auxiliary cross-entropy on the true / requested label to their adversarial
BCE, so the generator is pushed to make images the discriminator assigns to the right class.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ganmix.models._gan_blocks import ConvGAN, Critique, adversarial_bce, frozen, update
from ganmix.models.acgan_info import FAMILY, ACGANConfig
from ganmix.models.generator import register_generator


def _class_logits(critique: Critique) -> Tensor:
    assert critique.class_logits is not None, "ACGAN's discriminator is built with an auxiliary head"
    return critique.class_logits


@register_generator
class ACGAN(ConvGAN):
    family = FAMILY.family
    config_cls = ACGANConfig
    search_space = FAMILY.search_space
    tiny_options = FAMILY.tiny_options
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
