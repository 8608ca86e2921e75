"""Feed seriation pseudo-targets into an RnC-style contrastive loss (semi-supervised regression).

Each step takes a mixed batch: labeled rows with their true targets and unlabeled rows whose
pseudo-targets come from label-anchored seriation of the current feature similarities
(``clss.seriation.seriate_batch`` with the labeled rows as anchors, i.e. the GCLSS harmonic
solution on the label scale). One ``RnCLoss`` call sees both, with unlabeled anchors down-weighted
through ``weights=`` and rows the seriation could not reach dropped through ``mask=``.

Run: ``python examples/pseudo_targets_rnc.py`` (CPU, a few seconds).
"""

import torch
import torch.nn.functional as F

from clss.losses import RnCLoss
from clss.seriation import seriate_batch


def make_data(n: int, basis: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1-D target embedded non-linearly in 16 noisy input dimensions."""
    y = torch.rand(n, generator=generator) * 10
    waves = torch.stack([y, torch.sin(y), torch.cos(y / 2), y**2 / 10], dim=1)
    return waves @ basis + 0.1 * torch.randn(n, 16, generator=generator), y


def main() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    basis = torch.randn(4, 16, generator=g)
    x_lab, y_lab = make_data(64, basis, g)
    x_unl, _ = make_data(512, basis, g)
    encoder = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32))
    optimiser = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    criterion = RnCLoss(temperature=2.0)

    for step in range(60):
        lab = torch.randint(0, 64, (16,), generator=g)
        unl = torch.randint(0, 512, (48,), generator=g)
        x = torch.cat([x_lab[lab], x_unl[unl]])
        labeled = torch.cat([torch.ones(16, dtype=torch.bool), torch.zeros(48, dtype=torch.bool)])
        features = encoder(x)

        # Pseudo-targets: anchored seriation of the (detached) cosine similarities.
        with torch.no_grad():
            z = F.normalize(features, dim=1)
            similarity = (z @ z.T).clamp_min(0)
            anchor_values = torch.where(labeled, torch.cat([y_lab[lab], torch.zeros(48)]), 0.0)
            positions, _ = seriate_batch(similarity, anchors=labeled, anchor_values=anchor_values)
        targets = torch.where(labeled, anchor_values, positions)
        weights = torch.where(labeled, 1.0, 0.5)  # trust pseudo-labeled anchors less
        keep = torch.isfinite(targets)  # unreachable rows carry no pseudo-target

        loss = criterion(features, targets, weights=weights, mask=keep)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 20 == 0 or step == 59:
            print(f"step {step:2d}  RnC loss {loss.item():.4f}  pseudo-labeled rows {int(keep.sum()) - 16}")

    # Ridge linear probe on the labeled rows (frozen encoder), evaluated on fresh data.
    with torch.no_grad():
        x_test, y_test = make_data(256, basis, g)
        h = encoder(x_lab)
        mean, y_mean = h.mean(0), y_lab.mean()
        gram = (h - mean).T @ (h - mean) + 1e-1 * torch.eye(h.shape[1])
        coef = torch.linalg.solve(gram, (h - mean).T @ (y_lab - y_mean))
        pred = (encoder(x_test) - mean) @ coef + y_mean
    print(
        f"linear-probe test MAE: {(pred - y_test).abs().mean().item():.3f} "
        f"(predicting the mean: {(y_test - y_mean).abs().mean().item():.3f})"
    )


if __name__ == "__main__":
    main()
