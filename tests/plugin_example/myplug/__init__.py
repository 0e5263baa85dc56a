"""A generator family outside ganmix: a class-conditional linear decoder (a demo, not a good generator)."""

from dataclasses import dataclass

import torch
from torch import nn

from ganmix.models.generator import GeneratorConfig, LatentGenerator, check_int, register_generator


@dataclass(frozen=True, kw_only=True)
class MyConfig(GeneratorConfig):
    latent_dim: int = 16  # every option is a typed field with a default: recipes and search spaces name it

    def __post_init__(self) -> None:
        super().__post_init__()
        check_int("latent_dim", self.latent_dim, low=1)


@register_generator
class MyFamily(LatentGenerator):
    family = "myfam"  # the name recipes and specs use; the entry point's name
    config_cls = MyConfig
    search_space = {"latent_dim": [8, 16]}  # what a search draws when the spec names nothing
    tiny_options = {"latent_dim": 8}
    cpu_default = False  # join a search only when its spec names it

    def __init__(self, cfg: MyConfig) -> None:
        super().__init__(cfg)
        self.embed = nn.Embedding(cfg.num_classes, cfg.latent_dim)
        self.net = nn.Linear(cfg.latent_dim, cfg.channels * cfg.image_size**2)
        self.opt = torch.optim.Adam(self.parameters(), lr=cfg.lr)  # saved and resumed by the base class

    def decode(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.config
        return torch.tanh(self.net(z + self.embed(labels))).view(-1, c.channels, c.image_size, c.image_size)

    def train_step(self, real: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = (self.decode(self.sample_latent(len(real)), labels) - real).pow(2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}
