"""Conditional DCGAN (Radford et al., 2016): BCE-with-logits losses, Adam (0.5, 0.999).

The generator sees z concatenated with a label embedding; the discriminator is label-conditional
through a projection head.
"""

from __future__ import annotations

from torch import Tensor

from ganmix.models._gan_blocks import ConvGAN, adversarial_bce, frozen, update
from ganmix.models.dcgan_info import FAMILY, DCGANConfig
from ganmix.models.generator import register_generator


@register_generator
class DCGAN(ConvGAN):
    family = FAMILY.family
    config_cls = DCGANConfig
    search_space = FAMILY.search_space
    tiny_options = FAMILY.tiny_options

    def __init__(self, cfg: DCGANConfig) -> None:
        super().__init__(cfg, norm="batch", auxiliary=False, betas=(0.5, 0.999))

    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        fake = self.fake(labels)
        d_real = self.critique(real, labels).logit
        d_fake = self.critique(fake.detach(), labels).logit
        d_loss = adversarial_bce(d_real, real=True) + adversarial_bce(d_fake, real=False)
        update(self.opt_d, d_loss)

        with frozen(self.discriminator):
            g_loss = adversarial_bce(self.critique(fake, labels).logit, real=True)
            update(self.opt_g, g_loss)
        return {
            "g_loss": g_loss.detach(),
            "d_loss": d_loss.detach(),
            # Mean D(x) and D(G(z)) before the update: the classic DCGAN health check.
            "d_real": d_real.detach().sigmoid().mean(),
            "d_fake": d_fake.detach().sigmoid().mean(),
        }
