"""Plain-loop references written directly from the papers' formulas (and the official code's
semantics where noted). Slow on purpose: one Python iteration per anchor/pair."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def flatten_views(features, targets):
    """[N, V, d] → view-major [V·N, d] with targets repeated; [N, d] unchanged."""
    if features.dim() == 2:
        return features, targets
    n, v, d = features.shape
    flat = features.transpose(0, 1).reshape(v * n, d)
    return flat, None if targets is None else torch.cat([targets] * v)


def _as_rows(y):
    return y[:, None] if y.dim() == 1 else y


def rnc_paper(features, targets, temperature=2.0, label_diff="l1", feature_sim="l2"):
    """L = 1/(n(n−1)) Σ_i Σ_{j≠i} −log( exp(s_ij) / Σ_{k≠i, D_ik ≥ D_ij} exp(s_ik) )."""
    z, y = flatten_views(features, targets)
    y = _as_rows(y)
    n = z.shape[0]

    def sim(i, k):
        if feature_sim == "l2":
            return -torch.sqrt(((z[i] - z[k]) ** 2).sum()) / temperature
        return F.cosine_similarity(z[i], z[k], dim=0) / temperature

    def dist(i, k):
        diff = y[i] - y[k]
        return diff.abs().sum() if label_diff == "l1" else torch.sqrt((diff**2).sum())

    total = 0.0
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            d_ij = dist(i, j)
            denom = sum(torch.exp(sim(i, k)) for k in range(n) if k != i and dist(i, k) >= d_ij)
            total = total + (-torch.log(torch.exp(sim(i, j)) / denom))
    return total / (n * (n - 1))


def rnc_naive_3d(features, targets, temperature=2.0):
    """Vectorised O(n³)-memory formulation with an [i, j, k] mask (used by the benchmark too)."""
    z, y = flatten_views(features, targets)
    y = _as_rows(y)
    n = z.shape[0]
    s = -torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist") / temperature
    d = (y[:, None, :] - y[None, :, :]).abs().sum(-1)
    eye = torch.eye(n, dtype=torch.bool)
    neg = (d[:, None, :] >= d[:, :, None]) & ~eye[:, None, :]  # [i, j, k]
    log_denom = torch.logsumexp(s[:, None, :].expand(n, n, n).masked_fill(~neg, -math.inf), -1)
    per_pair = (log_denom - s)[~eye]
    return per_pair.mean()


def supcon_official(features, labels=None, temperature=0.07, base_temperature=0.07, contrast_mode="all"):
    """SupCon per anchor: −(τ/τ_b)(1/|P|) Σ_p [s_ip − log Σ_{k≠i} exp s_ik]; |P| = 0 → 0."""
    if features.dim() == 2:
        features = features[:, None, :]
    b, v, _ = features.shape
    z = features.transpose(0, 1).reshape(v * b, -1)
    sample = list(range(b)) * v
    n = z.shape[0]
    anchors = range(b) if contrast_mode == "one" else range(n)
    losses = []
    for i in anchors:
        denom = sum(torch.exp(z[i] @ z[k] / temperature) for k in range(n) if k != i)
        pos = [
            k
            for k in range(n)
            if k != i
            and (
                sample[k] == sample[i]
                if labels is None
                else bool(torch.equal(labels[sample[k]], labels[sample[i]]))
            )
        ]
        if not pos:
            losses.append(torch.zeros((), dtype=z.dtype))
            continue
        terms = [z[i] @ z[p] / temperature - torch.log(denom) for p in pos]
        losses.append(-(temperature / base_temperature) * sum(terms) / len(pos))
    return torch.stack(losses).mean()


def official_rank(seq):
    """RankSim's rank_normalised: double argsort with a flip, +1, divided by the length."""
    return (torch.argsort(torch.argsort(seq, stable=True).flip(1)) + 1).to(seq.dtype) / seq.shape[1]


class TrueRankerRef(torch.autograd.Function):
    """Blackbox rank from Vlastelica et al.: backward −(rank(s) − rank(s + λg))/(λ + 1e-8)."""

    @staticmethod
    def forward(ctx, seq, lambda_val):
        rank = official_rank(seq)
        ctx.lambda_val = lambda_val
        ctx.save_for_backward(seq, rank)
        return rank

    @staticmethod
    def backward(ctx, grad_output):
        seq, rank = ctx.saved_tensors
        perturbed = official_rank(seq + ctx.lambda_val * grad_output)
        return -(rank - perturbed) / (ctx.lambda_val + 1e-8), None


def ranksim_loop(features, targets, lambda_val=2.0, keep=None):
    """Official per-anchor RankSim loop: Σ_i MSE(TrueRanker(cos row i), rank(−|y_i − y|))."""
    if keep is not None:
        features, targets = features[keep], targets[keep]
    x = F.normalize(features.reshape(features.shape[0], -1), dim=1)
    xxt = x @ x.T
    y = targets.reshape(-1, 1)
    loss = 0.0
    for i in range(len(y)):
        label_ranks = official_rank(-torch.abs(y[i] - y).transpose(0, 1))
        feature_ranks = TrueRankerRef.apply(xxt[i].unsqueeze(0), lambda_val)
        loss = loss + F.mse_loss(feature_ranks, label_ranks)
    return loss


def prediction_rank_loop(predictions, ranks, lambda_val=2.0):
    """CLSS L_UC loop: Σ_i MSE(TrueRanker(−|ŷ_i − ŷ|), rank(−|π_i − π|))."""
    p = predictions.reshape(-1, 1)
    r = ranks.reshape(-1, 1).to(p.dtype)
    loss = 0.0
    for i in range(len(p)):
        label_ranks = official_rank(-torch.abs(r[i] - r).transpose(0, 1))
        scores = -torch.abs(p[i] - p).transpose(0, 1)
        loss = loss + F.mse_loss(TrueRankerRef.apply(scores, lambda_val), label_ranks)
    return loss


def _official_euclid(x, y):
    """The official OE distance: sqrt(clamp(‖x‖² + ‖y‖² − 2x·y, 1e-12))."""
    xx = (x**2).sum(1, keepdim=True)
    yy = (y**2).sum(1, keepdim=True).T
    return (xx + yy - 2 * x @ y.T).clamp(min=1e-12).sqrt()


def _upper(m):
    n = m.shape[0]
    return torch.stack([m[a, b] for a in range(n) for b in range(a + 1, n)])


def oe_official(features, targets, sqrt_tightness=False):
    """Official OE variant A (squared) / B (sqrt). NaN or RuntimeError where the official is."""
    y = targets.reshape(-1)
    labels = torch.unique(y)
    centres = torch.stack([features[y == u].mean(0) for u in labels])
    centres = F.normalize(centres, dim=1)
    dist = _upper(_official_euclid(centres, centres))
    w = _upper((labels[:, None] - labels[None, :]).abs())
    w = (w - w.min()) / w.max()
    diversity = (dist * w).mean()
    zn = F.normalize(features, dim=1)
    assigned = torch.stack([centres[(labels == yi).nonzero()[0, 0]] for yi in y])
    tight = ((zn - assigned) ** 2).sum(1)
    tight = tight[tight > 0]
    if sqrt_tightness:
        tight = tight.sqrt()
    return tight.mean() - diversity


def oe_pairwise_official(features, targets):
    """Official OE variant C on all rows: −mean_{i<j} w_ij ‖ẑ_i − ẑ_j‖."""
    y = targets.reshape(-1, 1)
    zn = F.normalize(features, dim=1)
    dist = _upper(_official_euclid(zn, zn))
    w = _upper((y - y.T).abs())
    w = (w - w.min()) / w.max()
    return -(dist * w).mean()


def conord_paper(
    features, ranks, temperature=0.07, eps=1e-7, similarity="sq_l2", affinity="inv_sq", disparity="sq"
):
    """ConOrd eq. 3 with explicit loops; anchors with β_i = 0 are skipped (their log is +inf)."""
    z, r = flatten_views(features, ranks)
    r = r.reshape(-1)
    n = z.shape[0]
    terms = []
    for i in range(n):
        alpha, beta = 0.0, 0.0
        for j in range(n):
            if j == i:
                continue
            kappa = -((z[i] - z[j]) ** 2).sum() if similarity == "sq_l2" else z[i] @ z[j]
            e = torch.exp(kappa / temperature)
            d = abs(float(r[i] - r[j]))
            a = 1 / (d**2 + eps) if affinity == "inv_sq" else 1 / (d + eps)
            b = {"sq": d**2, "abs": d, "one": 1.0}[disparity]
            alpha, beta = alpha + a * e, beta + b * e
        if float(beta) == 0.0:
            continue
        terms.append(-torch.log(alpha / beta) / (n - 1))
    return torch.stack(terms).mean() if terms else torch.zeros((), dtype=z.dtype)


def supremix_paper_loop(features, targets, temperature, window, lambdas):
    """SupReMix per anchor from eqs. 1, 3, 5, 6 of the paper: explicit column lists.

    ``lambdas[i, k]`` is the Mix-neg draw of anchor i with row k (view-major rows)."""
    z, y = flatten_views(features, targets)
    y = y.reshape(-1).to(z.dtype)
    zd = z.detach()
    n = z.shape[0]
    losses = []
    for i in range(n):
        columns = []  # (logit, weight, is_positive)
        for k in range(n):
            if k != i:
                columns.append((z[i] @ z[k] / temperature, 1 + abs(y[i] - y[k]), bool(y[k] == y[i])))
        for k in range(n):
            if y[k] != y[i]:
                lam = lambdas[i, k]
                u = lam * zd[i] + (1 - lam) * zd[k]
                label = lam * y[i] + (1 - lam) * y[k]
                columns.append((u @ z[i] / temperature, 1 + abs(y[i] - label), False))
        for j in range(n):
            for k in range(n):
                if y[j] < y[i] < y[k] and y[i] - y[j] < window and y[k] - y[i] < window:
                    a = (y[k] - y[i]) / (y[k] - y[j])
                    u = a * zd[j] + (1 - a) * zd[k]
                    columns.append((u @ z[i] / temperature, 1.0, True))
        positives = [c[0] for c in columns if c[2]]
        if not positives:
            losses.append(torch.zeros((), dtype=z.dtype))
            continue
        log_denom = torch.log(sum(w * torch.exp(s) for s, w, _ in columns))
        losses.append(-sum(positives) / len(positives) + log_denom)
    return torch.stack(losses).mean()


def supremix_official_literal(features, targets, temperature, window, lambdas):
    """The official SupReMix pipeline (the authors' agedb-dir code), literally and densely: the
    [n, n, n(, d)] slot tensors, the compression (mask sorted ascending with −1 → −inf, stably;
    labels sorted on their own; all-excluded columns dropped; −1-vector padding), then two max
    shifts and the weighted SupCon-style loss over the 2B anchors."""
    z, y = flatten_views(features, targets)
    y = y.reshape(-1).to(z.dtype)
    n, d = z.shape
    zd = z.detach()
    mixtures = torch.zeros(n, n, n, d, dtype=z.dtype)
    slot_label = torch.zeros(n, n, n, dtype=z.dtype)
    slot_mask = -torch.ones(n, n, n, dtype=z.dtype)
    for i in range(n):
        for j in range(n):
            for k in range(n):
                if j == i and k != i and y[j] != y[k]:
                    lam = lambdas[i, k]
                    slot_mask[i, j, k] = 0
                    mixtures[i, j, k] = lam * zd[i] + (1 - lam) * zd[k]
                    slot_label[i, j, k] = lam * y[i] + (1 - lam) * y[k]
                if y[j] < y[i] < y[k] and y[i] - y[j] < window and y[k] - y[i] < window:
                    a = ((y[k] - y[i]) / (y[k] - y[j])).clamp(0, 1)
                    slot_mask[i, j, k] = 1
                    mixtures[i, j, k] = a * zd[j] + (1 - a) * zd[k]
                    slot_label[i, j, k] = y[i]
    slot_mask, slot_label = slot_mask.reshape(n, -1), slot_label.reshape(n, -1)
    mixtures = mixtures.reshape(n, -1, d)
    keyed = slot_mask.masked_fill(slot_mask == -1, -math.inf)
    sorted_mask, index = keyed.sort(dim=1, stable=True)
    excluded = sorted_mask == -math.inf
    keep = ~excluded.all(0)
    new_mask = sorted_mask.masked_fill(excluded, -1)[:, keep]
    new_mix = mixtures.gather(1, index[:, :, None].expand(-1, -1, d)).masked_fill(excluded[:, :, None], -1)
    new_mix = new_mix[:, keep]
    labels = slot_label.masked_fill(slot_label == -1, -math.inf).sort(dim=1, stable=True).values
    labels = labels.masked_fill(labels == -math.inf, -1)[:, keep]

    real = z @ z.T / temperature
    real = real - real.max(1, keepdim=True).values.detach()
    mix = (new_mix @ z[:, :, None]).squeeze(2) / temperature
    if mix.shape[1]:
        mix = mix - mix.max(1, keepdim=True).values.detach()
    logits = torch.cat([real, mix], 1)
    eye = torch.eye(n, dtype=torch.bool)
    pos = torch.cat([(y[:, None] == y[None, :]) & ~eye, new_mask == 1], 1)
    valid = torch.cat([~eye, new_mask != -1], 1)
    weight = torch.cat([(y[:, None] - y[None, :]).abs() + 1, (y[:, None] - labels).abs() + 1], 1)
    log_prob = logits - torch.log((torch.exp(logits) * valid * weight).sum(1, keepdim=True))
    return -((pos * log_prob).sum(1) / pos.sum(1)).mean()


def mmnp_loop(features, classes, gaps, normalization="paper"):
    """CLOC eq. 2 per anchor with cumulative margins M_ab = |Σ_{h<a} m_h − Σ_{h<b} m_h|; the mean
    over all anchors; the per-anchor sum divided by 1, |P||N| or |P||N|² (official)."""
    z, c = flatten_views(features, classes)
    c = [int(v) for v in c.reshape(-1)]
    positions = [sum(gaps[:h]) for h in range(len(gaps) + 1)]
    n = z.shape[0]
    per_anchor = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and c[j] == c[i]]
        neg = [k for k in range(n) if c[k] != c[i]]
        total = torch.zeros((), dtype=z.dtype)
        for j in pos:
            for k in neg:
                margin = abs(positions[c[i]] - positions[c[k]])
                cos_ik = F.cosine_similarity(z[i], z[k], dim=0)
                cos_ij = F.cosine_similarity(z[i], z[j], dim=0)
                total = total + torch.clamp(cos_ik - cos_ij + margin, min=0)
        divisor = {"paper": 1, "mean": len(pos) * len(neg), "official": len(pos) * len(neg) ** 2}
        per_anchor.append(total / max(divisor[normalization], 1))
    return torch.stack(per_anchor).mean()
