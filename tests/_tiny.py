"""Small learnable data and a tiny CNN shared by the attack and evaluation tests."""
import torch
from torch import nn

from racl.models.layers import Normalize


def make_data(n: int, classes: int = 10, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class random templates around 0.5 plus Gaussian noise: (n, 3, size, size) in [0, 1], (n,)."""
    g = torch.Generator().manual_seed(seed)
    templates = 0.5 + 0.3 * (torch.rand(classes, 3, size, size, generator=g) - 0.5)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = (templates[labels] + 0.2 * torch.randn(n, 3, size, size, generator=g)).clamp(0, 1)
    return images, labels


def tiny_cnn(classes: int = 10) -> nn.Module:
    return nn.Sequential(Normalize((0.5,) * 3, (0.25,) * 3), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(8 * 4 * 4, classes))


def train_config(**flags):
    """A TrainConfig with changes named like `racl train`'s flags (epochs, channels, eps, adv, ...), or by
    their config key (`**{"validation.val_batch_size": 16}`)."""
    from racl.training.config import FLAGS, SCHEMA, TrainConfig

    return SCHEMA.set(TrainConfig(), {FLAGS[k].key if k in FLAGS else k: v for k, v in flags.items()})
