"""Conditional VAE (Sohn et al., 2015): q(z | x, y) and p(x | z, y), trained on the ELBO.

The encoder is the shared conv trunk with the label embedding appended to its features; the
decoder is the shared ConvGenerator. Pixels are modelled as Bernoulli on [0, 1]: since
(tanh(a) + 1) / 2 = sigmoid(2a), the decoder's pre-tanh output times 2 is exactly the logit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganmix.models._gan_blocks import LABEL_EMBED_DIM, ConvGenerator, adam, conv_trunk, update
from ganmix.models.cvae_info import FAMILY, CVAEConfig
from ganmix.models.generator import LatentGenerator, register_generator


@register_generator
class CVAE(LatentGenerator):
    family = FAMILY.family
    config_cls = CVAEConfig
    search_space = FAMILY.search_space
    tiny_options = FAMILY.tiny_options
    config: CVAEConfig

    def __init__(self, cfg: CVAEConfig) -> None:
        super().__init__(cfg)
        self.trunk, features = conv_trunk(channels=cfg.channels, image_size=cfg.image_size, width=cfg.width, norm="batch")
        self.label_embed = nn.Embedding(cfg.num_classes, LABEL_EMBED_DIM)
        self.posterior = nn.Linear(features + LABEL_EMBED_DIM, 2 * cfg.latent_dim)  # mean and log-variance
        self.decoder = ConvGenerator(
            latent_dim=cfg.latent_dim, num_classes=cfg.num_classes, channels=cfg.channels,
            image_size=cfg.image_size, width=cfg.width,
        )
        self.optimizer = adam(self.parameters(), lr=cfg.lr)

    def encode(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance, each (N, latent_dim)."""
        h = torch.cat([self.trunk(x), self.label_embed(labels)], dim=1)
        mean, logvar = self.posterior(h).chunk(2, dim=1)
        return mean, logvar

    def decode(self, z: Tensor, labels: Tensor) -> Tensor:
        return self.decoder(z, labels)

    def train_step(self, real: Tensor, labels: Tensor) -> dict[str, Tensor]:
        mean, logvar = self.encode(real, labels)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()  # reparameterisation trick
        logits = 2 * self.decoder.raw(z, labels)
        n = real.size(0)
        # Both terms summed over pixels / latent units and averaged over the batch: the per-image ELBO.
        recon = F.binary_cross_entropy_with_logits(logits, (real + 1) / 2, reduction="sum") / n
        kl = -0.5 * (1 + logvar - mean.pow(2) - logvar.exp()).sum() / n
        loss = recon + self.config.kl_weight * kl
        update(self.optimizer, loss)
        return {"recon_loss": recon.detach(), "kl_loss": kl.detach(), "loss": loss.detach()}
