import torch
import torch.nn as nn


class MorseEncoder(nn.Module):
    """A GRU reads the signal; its last hidden state, projected, is the feature."""

    def __init__(self, output_dim: int = 64, hidden: int = 64):
        super().__init__()
        self.output_dim = output_dim
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.out = nn.Linear(hidden, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 1, T)
        _, last = self.gru(x.transpose(1, 2))
        return self.out(last[-1])
