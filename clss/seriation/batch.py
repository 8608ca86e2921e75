"""``seriate_batch``: seriation of a batch of small dense similarity matrices inside a training step.

Spectral ordering uses a symmetric eigensolver only. On CUDA tensors: batched ``torch.linalg.eigh``
(cuSOLVER). On CPU: batched ``torch.linalg.eigh`` below ``LAPACK_MIN`` items, and above it a loop over
LAPACK ``?syevr`` asking for the Fiedler pair alone, measured 2–4× faster than a full batched ``eigh``
for n = 16..256 (``benchmarks/bench_seriate_batch.py``); below it, the unnormalised Laplacian is first
projected onto 1⊥. On CPU the float32 guard, the orientation and the ranks run as one numba pass
(``_batch_kernels``). Anchored ordering solves the harmonic system with a batched Cholesky
factorisation of the free block (no eigendecomposition). Orderings are targets: nothing here carries
gradients.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.linalg import lapack

from clss.seriation._validation import outside_safe_range

LAPACK_MIN = 16
_EPS32 = float(torch.finfo(torch.float32).eps)


class BatchDiagnostics(NamedTuple):
    """Per-matrix diagnostics of :func:`seriate_batch` (tensors of shape ``[B]`` on the input device).

    ``lambda2``: Fiedler value (NaN for anchored). ``connected``: the valid items form one connected
    graph (spectral: ``λ2 > 1e-9 × max degree``; anchored: every item reaches an anchor).
    ``min_gap``: smallest gap between consecutive sorted positions. ``refined``: recomputed in
    float64 because the float32 gap was below the float32 guard ``10 eps₃₂ ||f||_∞``.
    ``solver``: the route taken.
    """

    lambda2: torch.Tensor
    connected: torch.Tensor
    min_gap: torch.Tensor
    refined: torch.Tensor
    solver: str


def seriate_batch(similarities: torch.Tensor, *, anchors: torch.Tensor | None = None,
                  anchor_values: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                  laplacian: str = "unnormalized", negative: str = "raise",
                  validate: bool = True, backend: str = "auto", guard: bool = True,
                  return_diagnostics: bool = False) -> Any:
    """Seriate every matrix of a batch; returns ``(positions, ranks)`` (or with diagnostics).

    Parameters
    ----------
    similarities : torch.Tensor, shape ``[B, n, n]`` or ``[n, n]``
        Symmetric similarities (larger = more alike); diagonals are ignored. float32 or float64;
        float16/bfloat16 are solved in float32 (eigensolvers have no half-precision kernels) and
        returned as float32 positions, because half precision cannot resolve the order. An array or
        a list of equally sized matrices is stacked; matrices of different sizes must be padded into
        one tensor and described by ``mask``. Matrices whose magnitude leaves ``[2^-20, 2^20]``
        (entries near the float maximum, subnormals) are rescaled by an exact power of two first.
    anchors : torch.Tensor, optional
        Labelled items, as a boolean mask ``[B, n]`` (or ``[n]``, shared) or integer indices ``[B, m]``
        (or ``[m]``). When given, positions are the anchored harmonic solution (GCLSS
        label-anchored ranking) on the anchor values' scale, solved by batched Cholesky.
    anchor_values : torch.Tensor, optional
        Targets of the anchors: ``[B, m]`` aligned with index anchors, or ``[B, n]`` aligned with a
        mask (entries off the mask are ignored).
    mask : torch.Tensor, optional
        Boolean ``[B, n]``: valid items of ragged batches (padding is False). Padded items get NaN
        positions and rank -1.
    laplacian : {"unnormalized", "symmetric", "random_walk"}
        As in :func:`clss.seriation.seriate` (anchored solves use the unnormalised Laplacian).
    negative : {"raise", "clip", "shift"}
        Policy for negative similarities (cosine): raise, clip to 0, or subtract each matrix's
        smallest off-diagonal entry (keeps the unnormalised spectral order; equals the official CLSS
        projection onto 1⊥).
    validate : bool
        Check finiteness and symmetry (one host synchronisation) and index anchors (range,
        duplicates, finite values); disable in tight loops once the inputs are known to be well
        formed (then, unless ``negative="raise"``, the magnitude is not read and not rescaled).
    backend : {"auto", "torch", "lapack"}
        Spectral eigensolver (see module docstring); "lapack" is CPU-only.
    guard : bool
        In float32, recompute in float64 the matrices whose sorted Fiedler entries are closer than
        ``10 eps₃₂ ||f||_∞`` (near-ties that float32 cannot order reliably).
    return_diagnostics : bool
        Also return a :class:`BatchDiagnostics`.

    Returns
    -------
    positions : torch.Tensor ``[B, n]`` (or ``[n]``)
        Fiedler coordinates (unit norm per matrix, sign fixed so that the first item of the order has a
        smaller index than the last) or anchored values.
    ranks : torch.LongTensor ``[B, n]`` (or ``[n]``)
        Position of each item in the ascending order (0 = first); ties broken by index; -1 for padded
        items and for items an anchored solve cannot reach.
    """
    s = _as_batch(similarities)
    squeeze = s.dim() == 2
    if squeeze:
        s = s.unsqueeze(0)
    if s.dim() != 3 or s.shape[-1] != s.shape[-2]:
        raise ValueError(f"similarities must have shape [B, n, n] or [n, n], got {tuple(s.shape)}")
    if laplacian not in ("unnormalized", "symmetric", "random_walk"):
        raise ValueError(f"laplacian must be 'unnormalized', 'symmetric' or 'random_walk', got "
                         f"{laplacian!r}")
    if backend not in ("auto", "torch", "lapack"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'lapack', got {backend!r}")
    if backend == "lapack" and s.device.type != "cpu":
        raise ValueError("backend='lapack' runs on CPU tensors only")
    bsz, n = s.shape[0], s.shape[-1]
    if n < 2:
        raise ValueError(f"each matrix needs at least 2 items, got n = {n}")
    out_dtype = s.dtype if s.dtype in (torch.float32, torch.float64) else torch.float32
    w = s.detach().to(out_dtype, copy=True)
    valid = _valid_mask(mask, bsz, n, w.device)
    w.diagonal(dim1=-2, dim2=-1).zero_()
    pair = None if valid is None else valid.unsqueeze(-1) & valid.unsqueeze(-2)
    if pair is not None:
        w = w * pair
    w, exponent = check_weights(w, negative, validate)
    if pair is not None and negative == "shift":
        w = w * pair

    if anchors is not None or anchor_values is not None:
        positions, ranks, diag = _anchored(w, anchors, anchor_values, valid, validate, return_diagnostics)
    else:
        positions, ranks, diag = _spectral(w, valid, laplacian, backend, guard, return_diagnostics)
        if diag is not None and exponent is not None:  # λ2 back in the input's units
            diag = diag._replace(lambda2=scale_by_power_of_two(diag.lambda2, exponent))
    if squeeze:
        positions, ranks = positions[0], ranks[0]
    if not return_diagnostics:
        return positions, ranks
    if squeeze:
        diag = BatchDiagnostics(*(t[0] if isinstance(t, torch.Tensor) else t for t in diag))
    return positions, ranks, diag


def _as_batch(similarities: Any) -> torch.Tensor:
    """One tensor from a tensor, an array or a list of equally sized matrices; anything else is a
    clear error (a list of different sizes must be padded and masked by the caller)."""
    if isinstance(similarities, list | tuple):
        shapes = [tuple(getattr(m, "shape", np.shape(m))) for m in similarities]
        if not shapes:
            raise ValueError("similarities is an empty list; expected a tensor [B, n, n]")
        if len(set(shapes)) > 1:
            raise ValueError(f"similarities holds matrices of different sizes {sorted(set(shapes))[:4]}; "
                             f"pad them to the largest n into one tensor [B, n, n] and pass "
                             f"mask= (True on each matrix's valid items)")
        return torch.stack([as_real_tensor(m, "similarities") for m in similarities])
    return as_real_tensor(similarities, "similarities")


def as_real_tensor(x: Any, name: str) -> torch.Tensor:
    """``x`` (tensor, array or nested list) as a tensor; non-numeric and complex input are a
    TypeError naming ``name`` (a cast would silently drop imaginary parts)."""
    try:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must be a numeric tensor or array, got {type(x).__name__}: "
                        f"{exc}") from None
    if t.is_complex():
        raise TypeError(f"{name} must be real, got {t.dtype}")
    return t


def _valid_mask(mask: torch.Tensor | None, bsz: int, n: int,
                device: torch.device) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(mask, device=device)
    if m.dtype != torch.bool:
        raise TypeError(f"mask must be boolean, got {m.dtype}")
    if m.dim() == 1:
        m = m.unsqueeze(0).expand(bsz, n)
    if tuple(m.shape) != (bsz, n):
        raise ValueError(f"mask must have shape [B, n] = [{bsz}, {n}], got {tuple(m.shape)}")
    if bool((m.sum(-1) < 2).any()):
        raise ValueError("every matrix needs at least 2 valid items in mask")
    return m


def check_weights(w: torch.Tensor, negative: str,
                  validate: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate (zero-diagonal, padding-zeroed) weights and apply the negative-weight policy.

    One fused reduction and a single host synchronisation on the happy path: NaN propagates through
    the asymmetry maximum, so ``not (dev <= tol)`` also catches non-finite entries; the detailed
    diagnosis runs only when something is wrong. Returns ``(weights, exponent)``: when the checked
    range leaves ``[2^-20, 2^20]``, each matrix is divided by ``2**exponent[b]`` (an int tensor
    ``[B]``), otherwise ``exponent`` is None (and always when nothing is checked).
    """
    if negative not in ("raise", "clip", "shift"):
        raise ValueError(f"negative must be 'raise', 'clip' or 'shift', got {negative!r}")
    exponent = None
    if validate or negative == "raise":
        # W - Wᵀ is antisymmetric, so its max is its max |entry|; NaN propagates through amax
        dev = (w - w.transpose(-1, -2)).amax() if validate else w.new_zeros(())
        low, high = torch.aminmax(w)
        dev, low, high = torch.stack([dev, low, high]).tolist()
        scale = max(abs(low), abs(high))
        tol = 1e-6 * scale + (1e-8 if w.dtype == torch.float64 else 1e-6)
        if validate and not dev <= tol:
            finite = torch.isfinite(w)
            if not bool(finite.all()):
                bad = (~finite).nonzero()[0].tolist()
                raise ValueError(f"similarities contain {int((~finite).sum())} NaN/inf entries, "
                                 f"first at batch {bad[0]}, entry ({bad[1]}, {bad[2]})")
            raise ValueError(f"similarities are not symmetric: max |S - S^T| = {dev:.3g}; "
                             f"symmetrise them first, e.g. (S + S.transpose(-1, -2)) / 2")
        if negative == "raise" and low < 0:
            raise ValueError("similarities contain negative entries (e.g. cosine similarities); "
                             "choose negative='shift' (keeps the spectral order) or "
                             "negative='clip'")
        if outside_safe_range(scale):  # rare: rows near the float maximum overflow, subnormal underflow
            (w,), exponent = rescale_per_matrix(w)
    if negative == "clip":
        return w.clamp_min(0.0), exponent
    if negative == "shift":
        off = ~torch.eye(w.shape[-1], dtype=torch.bool, device=w.device)
        low = w.masked_fill(~off, float("inf")).amin(dim=(-1, -2), keepdim=True).clamp_max(0.0)
        return (w - low) * off, exponent
    return w, exponent


def rescale_per_matrix(*blocks: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Divide the blocks ``[B, ., .]`` of each matrix by the power of two ``2**e[b]`` that brings their
    joint largest |entry| into ``[0.5, 1)`` (the rare path of :func:`check_weights`); returns the
    scaled blocks and ``e`` (int64 ``[B]``)."""
    top = torch.stack([b.abs().amax(dim=(-1, -2)) for b in blocks]).amax(0)
    e = torch.where(top > 0, torch.frexp(top).exponent.long(), torch.zeros_like(top, dtype=torch.long))
    return tuple(scale_by_power_of_two(b, -e) for b in blocks), e


def scale_by_power_of_two(x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``x * 2**e`` per leading index, exact, in two factors so that each stays representable (the
    exponents of float64 subnormals reach 1074)."""
    half = torch.div(e, 2, rounding_mode="floor")
    shape = (-1,) + (1,) * (x.dim() - 1)
    for part in (half, e - half):
        x = x * torch.pow(2.0, part.double()).to(x.dtype).reshape(shape)
    return x


def _spectral(w: torch.Tensor, valid: torch.Tensor | None, kind: str, backend: str,
              guard: bool, diagnose: bool) -> tuple[torch.Tensor, torch.Tensor, BatchDiagnostics | None]:
    bsz, n, _ = w.shape
    d = w.sum(-1)
    inv = None
    if kind == "unnormalized":
        lap = -w  # the diagonal of w is zero
        lap.diagonal(dim1=-2, dim2=-1).copy_(d)
    else:
        inv = torch.where(d > 0, d.clamp_min(torch.finfo(w.dtype).tiny).rsqrt(), torch.zeros_like(d))
        lap = torch.diag_embed((d > 0).to(w.dtype)) - inv.unsqueeze(-1) * w * inv.unsqueeze(-2)
    if valid is not None:
        # Padding gets an eigenvalue above the valid block's spectrum (Gershgorin: λmax(D - W) <= 2 dmax,
        # λmax(L_sym) <= 2), so it never reaches λ2.
        big = 2 * d.amax(-1) + 1 if kind == "unnormalized" else torch.full_like(d[:, 0], 3.0)
        lap = lap + torch.diag_embed((~valid).to(w.dtype) * big.unsqueeze(-1))
    use_lapack = backend == "lapack" or (backend == "auto" and w.device.type == "cpu" and n >= LAPACK_MIN)
    if use_lapack:
        solve = _fiedler_lapack
    elif kind == "unnormalized" and valid is None and w.device.type == "cpu":
        solve = _fiedler_projected
    else:
        solve = _fiedler_torch
    lam2, vec = solve(lap)
    if inv is not None and kind == "random_walk":
        vec = _unit(vec * inv)
    if valid is not None:
        vec = vec.masked_fill(~valid, 0.0)
    guarded = guard and w.dtype == torch.float32  # then an exact tie (gap 0) triggers the refinement
    # 10 eps32 ||f||_inf with ||f||_inf <= ||f||_2 = 1: a slightly stricter threshold, no extra reduction
    threshold = 10 * _EPS32 if guarded else -1.0
    # the full-size float64 problem: the rare path, and rounded as the dense seriate() route is
    refine = _fiedler_torch if solve is _fiedler_projected else solve

    def refined_rows(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam64, vec64 = refine(lap[idx].double())
        if inv is not None and kind == "random_walk":
            vec64 = _unit(vec64 * inv[idx].double())
        if valid is not None:
            vec64 = vec64.masked_fill(~valid[idx], 0.0)
        return lam64.to(w.dtype), vec64.to(w.dtype)

    if valid is None and w.device.type == "cpu" and _CPU_KERNEL:
        vec, ranks, min_gap, refined, lam2 = _finish_cpu(vec, lam2, threshold, refined_rows)
    else:
        refined = None
        # One stable sort serves the float32 guard, the orientation and the ranks (padding sorts last).
        srt = _sorted(vec, valid, finite=True)
        min_gap = _gaps(srt.values, finite=valid is None).amin(-1)
        if guarded:
            need = min_gap < threshold
            if bool(need.any()):
                refined = need
                idx = need.nonzero().squeeze(-1)
                lam64, vec64 = refined_rows(idx)
                vec = vec.index_copy(0, idx, vec64)
                lam2 = lam2.index_copy(0, idx, lam64)
                srt = _sorted(vec, valid, finite=True)
                min_gap = _gaps(srt.values, finite=valid is None).amin(-1)
        vec, ranks = _orient_and_rank(vec, valid, srt, min_gap,
                                      ties_possible=not guarded or refined is not None)
    diag = None
    if diagnose:
        connected = lam2 > 1e-9 * d.amax(-1).clamp_min(torch.finfo(w.dtype).tiny)
        if refined is None:
            refined = torch.zeros(bsz, dtype=torch.bool, device=w.device)
        diag = BatchDiagnostics(lambda2=lam2, connected=connected, min_gap=min_gap,
                                refined=refined, solver="lapack-syevr" if use_lapack else "torch-eigh")
    return vec, ranks, diag


# The compiled CPU finish (``_batch_kernels.orient_rank``); tests switch it off to check the torch route.
_CPU_KERNEL = True


def _finish_cpu(vec: torch.Tensor, lam2: torch.Tensor, threshold: float, refined_rows: Any) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Guard, orientation and ranks of CPU rows in one compiled pass (see ``_batch_kernels``)."""
    from clss.seriation._batch_kernels import orient_rank

    vec = vec.contiguous()  # every solver returns a tensor private to this call: edited in place
    ranks, min_gap, need = orient_rank(vec.numpy(), threshold)
    refined = None
    if need.any():
        refined = torch.from_numpy(need)
        idx = refined.nonzero().squeeze(-1)
        lam64, vec64 = refined_rows(idx)
        vec64 = vec64.contiguous()
        ranks64, gap64, _ = orient_rank(vec64.numpy(), -1.0)
        vec[idx], lam2 = vec64, lam2.index_copy(0, idx, lam64)
        ranks[need], min_gap[need] = ranks64, gap64
    return vec, torch.from_numpy(ranks), torch.from_numpy(min_gap), refined, lam2


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(v.dtype).tiny)


def _fiedler_torch(lap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh(lap)
    return values[:, 1], vectors[:, :, 1]


@functools.lru_cache(maxsize=64)
def _ones_complement(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An orthonormal basis ``[n, n - 1]`` of 1⊥: columns 2..n of the Householder reflector that maps
    e₁ to 1/√n."""
    u = torch.ones(n, dtype=torch.float64)
    u[0] -= math.sqrt(n)
    reflector = torch.eye(n, dtype=torch.float64) - 2 * torch.outer(u, u) / (u @ u)
    return reflector[:, 1:].to(dtype=dtype, device=device).contiguous()


def _fiedler_projected(lap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fiedler pair of ``D - W`` from ``eigh`` of ``Zᵀ L Z`` on an orthonormal basis Z of 1⊥ (the constant
    null vector removed, as the official CLSS code does): an (n - 1)-sized problem, measured ~15 % faster
    than the n-sized one for n = 8 on CPU, where the eigensolver dominates. Its smallest eigenpair is λ2."""
    z = _ones_complement(lap.shape[-1], lap.dtype, lap.device)
    values, vectors = torch.linalg.eigh(z.T @ lap @ z)
    return values[:, 0], vectors[:, :, 0] @ z.T


def _fiedler_lapack(lap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mats = lap.numpy()
    syevr = lapack.ssyevr if mats.dtype == np.float32 else lapack.dsyevr
    bsz, n, _ = mats.shape
    values = np.empty(bsz, dtype=mats.dtype)
    vectors = np.empty((bsz, n), dtype=mats.dtype)
    for b in range(bsz):  # one LAPACK call per matrix: no batched subset eigensolver exists
        w, z, _, _, info = syevr(mats[b], compute_v=1, range="I", il=2, iu=2, lower=1)
        if info != 0:
            raise RuntimeError(f"LAPACK ?syevr failed on matrix {b} (info = {info})")
        values[b] = w[0]
        vectors[b] = z[:, 0]
    return torch.from_numpy(values), torch.from_numpy(vectors)


def _sorted(pos: torch.Tensor, valid: torch.Tensor | None, *, finite: bool = False) -> Any:
    """Stable ascending sort of each row; padded (and NaN) entries sort last as +inf.

    ``finite=True`` promises no NaN (spectral coordinates of validated input) and skips that pass.
    """
    p = pos if valid is None else pos.masked_fill(~valid, float("inf"))
    return torch.sort(p if finite else p.nan_to_num(nan=float("inf")), dim=-1, stable=True)


def _gaps(values: torch.Tensor, *, finite: bool = False) -> torch.Tensor:
    """Consecutive gaps of sorted rows; gaps between padding entries (inf - inf) count as +inf.

    ``finite=True`` promises no infinite entry (no padding, no NaN) and skips that pass."""
    gaps = values.diff(dim=-1)
    return gaps if finite else gaps.nan_to_num(nan=float("inf"))


def _orient_and_rank(pos: torch.Tensor, valid: torch.Tensor | None, srt: Any,
                     min_gap: torch.Tensor, ties_possible: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each row so the first item of its order has a smaller index than the last; rank.

    ``srt`` is the stable sort of ``pos`` (:func:`_sorted`): its first entry is the first index of the
    minimum and its last valid entry the last index of the maximum, as in :func:`seriate`. A flipped
    row's order is the reversed order, except among exact ties, where index order must be kept: those
    rows are sorted again. ``min_gap``: the smallest consecutive gap of each sorted row;
    ``ties_possible=False`` promises it is positive everywhere (the float32 guard found no near-tie).
    """
    order = srt.indices
    n = order.shape[-1]
    last = order[:, -1] if valid is None else order.gather(-1, (valid.sum(-1) - 1).unsqueeze(-1)).squeeze(-1)
    flip = (order[:, 0] > last).unsqueeze(-1)
    pos = torch.where(flip, -pos, pos)
    if valid is None and not (ties_possible and bool((flip.squeeze(-1) & (min_gap == 0)).any())):
        # no exact tie among flipped rows: a flipped row's ranks are the mirrored ranks
        ranks = torch.argsort(order, dim=-1)
        return pos, torch.where(flip, (n - 1) - ranks, ranks)
    # padding must stay last and exact ties keep index order: re-sort the flipped rows
    rows = flip.squeeze(-1).nonzero().squeeze(-1)
    order = order.index_copy(0, rows, _sorted(pos[rows], None if valid is None else valid[rows]).indices)
    ranks = _inverse(order)
    if valid is not None:
        ranks = ranks.masked_fill(~valid, -1)
        pos = pos.masked_fill(~valid, float("nan"))
    return pos, ranks


def _inverse(order: torch.Tensor) -> torch.Tensor:
    """Ranks from an argsort output (a permutation by construction, so unvalidated here)."""
    arange = torch.arange(order.shape[-1], device=order.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, arange)


def _anchor_mask(anchors: torch.Tensor | None, values: torch.Tensor | None, bsz: int, n: int,
                 dtype: torch.dtype, device: torch.device,
                 validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    if anchors is None or values is None:
        raise ValueError("anchors and anchor_values must be given together")
    a = torch.as_tensor(anchors, device=device)
    v = as_real_tensor(values, "anchor_values").to(device=device, dtype=dtype)
    if a.dim() == 1:
        a = a.unsqueeze(0).expand(bsz, -1)
    if v.dim() == 1:
        v = v.unsqueeze(0).expand(bsz, -1)
    if a.dtype == torch.bool:
        if tuple(a.shape) != (bsz, n):
            raise ValueError(f"anchor mask must have shape [B, n] = [{bsz}, {n}], got "
                             f"{tuple(a.shape)}")
        if tuple(v.shape) != (bsz, n):
            raise ValueError(f"with a mask, anchor_values must have shape [B, n] = [{bsz}, {n}], "
                             f"got {tuple(v.shape)}")
        amask, full = a, v
    else:
        if a.is_floating_point() or a.is_complex():
            raise TypeError("anchors must be a boolean mask or integer indices")
        if a.dim() != 2 or a.shape[0] != bsz or tuple(v.shape) != tuple(a.shape):
            raise ValueError(f"index anchors [B, m] and anchor_values [B, m] must match with B = "
                             f"{bsz}; got {tuple(a.shape)} and {tuple(v.shape)}")
        if validate and bool(((a < 0) | (a >= n)).any()):
            raise ValueError(f"anchor indices out of range [0, {n})")
        amask = torch.zeros(bsz, n, dtype=torch.bool, device=device).scatter_(-1, a, True)
        if validate and bool((amask.sum(-1) != a.shape[-1]).any()):
            raise ValueError("duplicated anchor indices")
        full = torch.zeros(bsz, n, dtype=dtype, device=device).scatter_(-1, a, v)
        if not validate:  # scatter already left zeros off the anchors
            return amask, full
    full = full.masked_fill(~amask, 0.0)
    if bool((amask.sum(-1) == 0).any()):
        raise ValueError("every matrix needs at least one anchor (an empty labelled set)")
    if not bool(torch.isfinite(full).all()):
        raise ValueError("anchor_values contain NaN/inf")
    return amask, full


def _anchored(w: torch.Tensor, anchors: torch.Tensor | None, values: torch.Tensor | None,
              valid: torch.Tensor | None, validate: bool,
              diagnose: bool) -> tuple[torch.Tensor, torch.Tensor, BatchDiagnostics | None]:
    bsz, n, _ = w.shape
    amask, y = _anchor_mask(anchors, values, bsz, n, w.dtype, w.device, validate)
    if valid is not None:
        if bool((amask & ~valid).any()):
            raise ValueError("an anchor lies on a padded (mask = False) item")
        fixed = amask | ~valid
    else:
        fixed = amask
    free = ~fixed
    counts = free.sum(-1)
    k = int(counts[0])
    if bool((counts == k).all()):
        x, reach = _harmonic_free_block(w, y, free, k)
    else:
        # Ragged free sets: fixed rows/columns become identity so one SPD system of size n serves every
        # pattern: [[L_uu, 0], [0, I]] x = [W_ul y_l, y_l].
        d = w.sum(-1)
        pair = free.unsqueeze(-1) & free.unsqueeze(-2)
        x, reach = _harmonic_cholesky(w * pair, torch.where(free, d, torch.ones_like(d)),
                                      torch.where(free, (w @ y.unsqueeze(-1)).squeeze(-1), y))
    if not bool(reach.all()):
        x = _anchored_fallback(w, amask, y, valid, x, ~reach)
    pos = x.masked_fill(~valid, float("nan")) if valid is not None else x
    srt = _sorted(pos, None)
    ranks = _inverse(srt.indices).masked_fill(torch.isnan(pos), -1)
    if not diagnose:
        return pos, ranks, None
    nan = torch.full((bsz,), float("nan"), dtype=w.dtype, device=w.device)
    diag = BatchDiagnostics(lambda2=nan, connected=reach, min_gap=_gaps(srt.values).amin(-1),
                            refined=torch.zeros(bsz, dtype=torch.bool, device=w.device),
                            solver="cholesky")
    return pos, ranks, diag


def _harmonic_free_block(w: torch.Tensor, y: torch.Tensor, free: torch.Tensor,
                         k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Harmonic solution when every matrix has ``k`` free items: ``L_uu x_u = W_ul y_l`` of size k only
    (k x n rows and a k x k factorisation instead of n x n: GCLSS anchors a few unlabelled rows on
    many labelled ones). ``y`` is zero off the anchors. Returns the full positions and Cholesky success."""
    bsz, n, _ = w.shape
    if k == 0:
        return y.clone(), torch.ones(bsz, dtype=torch.bool, device=w.device)
    idx = free.nonzero()[:, 1].view(bsz, k)
    rows = w.gather(1, idx.unsqueeze(-1).expand(bsz, k, n))
    x_free, reach = _harmonic_cholesky(rows.gather(2, idx.unsqueeze(1).expand(bsz, k, k)), rows.sum(-1),
                                       (rows @ y.unsqueeze(-1)).squeeze(-1))
    return y.scatter(1, idx, x_free), reach


def _harmonic_cholesky(w_uu: torch.Tensor, degrees: torch.Tensor,
                       rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``(diag(degrees) - W_uu) x = rhs`` (``W_uu`` with zero diagonal, ``degrees`` over every
    column) by batched Cholesky; returns ``x`` and whether each factorisation succeeded (it fails when
    a free item cannot reach an anchor: the system is then singular)."""
    chol, info = torch.linalg.cholesky_ex(torch.diag_embed(degrees) - w_uu)
    return torch.cholesky_solve(rhs.unsqueeze(-1), chol).squeeze(-1), info == 0


def harmonic_batch(s_uu: torch.Tensor, s_ul: torch.Tensor, anchor_values: torch.Tensor, *,
                   negative: str = "raise", validate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Label-anchored (harmonic) positions of free items from their similarity blocks only.

    The positions ``x`` of the ``k`` free items minimise ``Σ_ij S_ij (x_i − x_j)²`` with the ``m``
    anchors fixed to ``anchor_values``: ``L_uu x = S_ul y`` with ``L_uu = diag(S_uu 1 + S_ul 1) − S_uu``
    (Zhu, Ghahramani & Lafferty, ICML 2003; the label-anchored ranking of GCLSS, arXiv 2512.09267).
    The anchor-anchor block never enters the system, so it is never formed: O(k·m) work and memory
    instead of the O((k + m)²) of :func:`seriate_batch` with ``anchors``, which gives the same positions.

    Parameters
    ----------
    s_uu : torch.Tensor, shape ``[B, k, k]`` or ``[k, k]``
        Similarities among the free items (symmetric; the diagonal is ignored).
    s_ul : torch.Tensor, shape ``[B, k, m]`` or ``[k, m]``
        Similarities of the free items to the anchors.
    anchor_values : torch.Tensor, shape ``[B, m]`` or ``[m]``
        Targets of the anchors.
    negative : {"raise", "clip", "shift"}
        Negative similarities: raise, clip to 0, or subtract each batch element's smallest entry of
        the two blocks (the entries that enter the system).
    validate : bool
        Check shapes' agreement, finiteness and the symmetry of ``s_uu`` (one host synchronisation).

    Returns
    -------
    positions : torch.Tensor ``[B, k]`` (or ``[k]``)
        On the anchor values' scale, within ``[min y, max y]``; NaN for items that cannot reach any
        anchor (solved by the component-aware CPU fallback).
    reachable : torch.BoolTensor ``[B]`` (or scalar)
        Every free item of the matrix reaches an anchor.
    """
    s_uu, s_ul, y = (as_real_tensor(t, name) for t, name in ((s_uu, "s_uu"), (s_ul, "s_ul"),
                                                          (anchor_values, "anchor_values")))
    squeeze = s_uu.dim() == 2
    if squeeze:
        s_uu, s_ul, y = s_uu.unsqueeze(0), s_ul.unsqueeze(0), y.unsqueeze(0)
    if s_uu.dim() != 3 or s_uu.shape[-1] != s_uu.shape[-2] or s_ul.dim() != 3 or y.dim() != 2 \
            or s_ul.shape[:2] != s_uu.shape[:2] or y.shape != (s_ul.shape[0], s_ul.shape[2]):
        raise ValueError(f"expected s_uu [B, k, k], s_ul [B, k, m] and anchor_values [B, m]; got "
                         f"{tuple(s_uu.shape)}, {tuple(s_ul.shape)} and {tuple(y.shape)}")
    if s_ul.shape[2] == 0:
        raise ValueError("harmonic_batch needs at least one anchor (an empty labelled set)")
    if validate and not bool(torch.isfinite(y).all()):
        raise ValueError("anchor_values contain NaN/inf")
    w_uu, w_ul, _ = block_weights(s_uu, s_ul, negative, validate)
    y = y.detach().to(w_uu.dtype)
    k = w_uu.shape[-1]
    x, reach = _harmonic_cholesky(w_uu, w_uu.sum(-1) + w_ul.sum(-1), (w_ul @ y.unsqueeze(-1)).squeeze(-1))
    if not bool(reach.all()):
        # the anchor-anchor block does not change which items reach an anchor, nor their positions
        bsz, m = y.shape
        w = torch.zeros(bsz, k + m, k + m, dtype=w_uu.dtype, device=w_uu.device)
        w[:, :k, :k], w[:, :k, k:], w[:, k:, :k] = w_uu, w_ul, w_ul.transpose(-1, -2)
        amask = torch.zeros(bsz, k + m, dtype=torch.bool, device=w.device)
        amask[:, k:] = True
        full = torch.cat([x, y], dim=-1)
        x = _anchored_fallback(w, amask, torch.cat([torch.zeros_like(x), y], -1), None, full, ~reach)[:, :k]
    return (x[0], reach[0]) if squeeze else (x, reach)


def block_weights(s_uu: torch.Tensor, s_ul: torch.Tensor, negative: str,
                  validate: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The blocks ``[B, k, k]`` / ``[B, k, m]`` of an anchored system as weights: float32/64 copies, zero
    diagonal, optionally validated (finite; ``s_uu`` symmetric), negative policy applied ("shift"
    subtracts each matrix's smallest entry of the two blocks: the entries that enter the system).
    Returns ``(w_uu, w_ul, exponent)`` as :func:`check_weights` does (validated blocks whose range
    leaves ``[2^-20, 2^20]`` are divided by ``2**exponent`` per matrix)."""
    dtype = s_uu.dtype if s_uu.dtype in (torch.float32, torch.float64) else torch.float32
    w_uu = s_uu.detach().to(dtype, copy=True)
    w_uu.diagonal(dim1=-2, dim2=-1).zero_()
    w_ul = s_ul.detach().to(dtype)
    exponent = None
    if validate:
        check_weights(w_uu, "raise" if negative == "raise" else "clip", True)
        # NaN propagates through the maximum: one reduction checks finiteness and the range
        top = float(torch.stack([w_ul.abs().amax(), w_uu.abs().amax()]).amax()) if w_ul.numel() else 0.0
        if not math.isfinite(top):
            raise ValueError("s_ul contains NaN/inf entries")
        if outside_safe_range(top):
            (w_uu, w_ul), exponent = rescale_per_matrix(w_uu, w_ul)
    if negative == "shift":
        off = ~torch.eye(w_uu.shape[-1], dtype=torch.bool, device=w_uu.device)
        low = torch.minimum(w_uu.masked_fill(~off, float("inf")).amin(dim=(-1, -2)), w_ul.amin(dim=(-1, -2)))
        low = low.clamp_max(0.0)[:, None, None]
        return (w_uu - low) * off, w_ul - low, exponent
    if negative == "clip":
        return w_uu.clamp_min(0.0), w_ul.clamp_min(0.0), exponent
    if negative == "raise":
        if bool((w_ul < 0).any()) or bool((w_uu < 0).any()):
            raise ValueError("similarities contain negative entries (e.g. cosine similarities); choose "
                             "negative='clip' or negative='shift'")
        return w_uu, w_ul, exponent
    raise ValueError(f"negative must be 'raise', 'clip' or 'shift', got {negative!r}")


def _anchored_fallback(w: torch.Tensor, amask: torch.Tensor, y: torch.Tensor,
                       valid: torch.Tensor | None, x: torch.Tensor,
                       failed: torch.Tensor) -> torch.Tensor:
    """Matrices whose Cholesky failed have items cut off from every anchor: solve them with the
    component-aware solver, leaving unreachable items NaN (CUDA tensors stay on their device)."""
    from clss.seriation.anchored import anchored_positions
    from clss.seriation.torch_route import reachable_harmonic

    x = x.clone()
    for b in failed.nonzero().squeeze(-1).tolist():
        keep = valid[b] if valid is not None else torch.ones_like(amask[b])
        items = keep.nonzero().squeeze(-1)
        if x.device.type != "cpu":
            x[b] = torch.full_like(x[b], float("nan")).index_copy(
                0, items, reachable_harmonic(w[b][items][:, items], amask[b][items], y[b][items]).to(x.dtype))
            continue
        wb = w[b][items][:, items].double().cpu().numpy()
        local = amask[b][items].cpu().numpy()
        anchors = np.flatnonzero(local)
        vals = y[b][items].double().cpu().numpy()[anchors]
        pos, *_ = anchored_positions(wb, anchors, vals, isolated="nan")
        row = torch.full((w.shape[-1],), float("nan"), dtype=x.dtype, device=x.device)
        row[items] = torch.as_tensor(pos, dtype=x.dtype, device=x.device)
        x[b] = row
    return x
