"""Compression as the paper did it with keras_compressor: low-rank factorisation of every layer.

Weight matrices (dense layers, the IRNN's input and recurrent weights) get a truncated SVD; conv
kernels a Tucker-2 decomposition over their output- and input-channel modes (tensorly). Each
layer's rank is the smallest whose relative Frobenius error ||W - W_r|| / ||W|| is at most the
level; for a conv kernel "smallest" is the (output, input) rank pair with the fewest parameters,
as keras_compressor chose (it bounded the mean absolute error instead of the Frobenius norm). The
factors are multiplied back into weights of the original shapes, so the model keeps its
architecture and its file format; `param_ratio` says how much the factorised form would save.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from fsw.data import Split
from fsw.networks import weight_parameters


def relative_error(approx: torch.Tensor, weight: torch.Tensor) -> float:
    return float((approx.double() - weight.double()).norm() / weight.double().norm())


def truncated_svd(weight: torch.Tensor, bound: float) -> tuple[torch.Tensor, int, int]:
    """The best rank-r approximation of a matrix with the smallest r meeting `bound`; r; the
    parameters of its two factors."""
    u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
    energy = s.square()
    # Dropping singular values r, r+1, ... costs exactly their energy (Eckart-Young).
    dropped = torch.cat([energy.flip(0).cumsum(0).flip(0), energy.new_zeros(1)])
    errors = (dropped / energy.sum()).sqrt()  # errors[r] = relative error at rank r
    rank = int((errors[1:] <= bound).nonzero()[0]) + 1
    approx = (u[:, :rank] * s[:rank]) @ vh[:rank]
    return approx.to(weight.dtype), rank, rank * sum(weight.shape)


def tucker2(kernel: torch.Tensor, bound: float) -> tuple[torch.Tensor, list[int], int]:
    """Tucker-2 approximation of a conv kernel [out, in, kh, kw] with the fewest parameters meeting
    `bound`; its [output, input] ranks; its parameters."""
    w = kernel.double()
    out_channels, in_channels, kh, kw = w.shape
    u_out = torch.linalg.svd(w.reshape(out_channels, -1)).U
    u_in = torch.linalg.svd(w.transpose(0, 1).reshape(in_channels, -1)).U
    # Truncating the HOSVD to ranks (r, s) keeps core[:r, :s]; the bases being orthonormal, the
    # squared error is the energy of the rest of the core, so one cumulative sum gives every pair's.
    core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)
    kept = core.square().sum((2, 3)).cumsum(0).cumsum(1)
    total = w.square().sum()
    errors = ((total - kept).clamp_min(0) / total).sqrt()
    candidates = (
        (r * s * kh * kw + out_channels * r + in_channels * s, float(errors[r - 1, s - 1]), r, s)
        for r in range(1, out_channels + 1)
        for s in range(1, in_channels + 1)
        if errors[r - 1, s - 1] <= bound
    )
    params, _, r, s = min(candidates)  # fewest parameters, then smallest error
    # tensorly costs ~0.7 s to import, paid here only, not by every attack job.
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    # HOOI (tensorly) starts from this HOSVD and can only lower the error at the chosen ranks.
    (small_core, factors), _ = partial_tucker(w.numpy(), rank=[r, s], modes=[0, 1], init="svd")
    approx = tl.tenalg.multi_mode_dot(small_core, factors, modes=[0, 1])
    return torch.from_numpy(np.ascontiguousarray(approx)).to(kernel.dtype), [r, s], params


def compress(net: nn.Module, level: float, cfg: DictConfig, data: Split) -> tuple[nn.Module, dict]:
    ranks, errors = {}, {}
    original_params = factorised_params = 0
    with torch.no_grad():
        for name, weight in weight_parameters(net):
            factorise = tucker2 if weight.dim() == 4 else truncated_svd
            approx, ranks[name], params = factorise(weight, float(level))
            errors[name] = relative_error(approx, weight)
            original_params += weight.numel()
            # A layer whose factors outnumber its weights is stored dense (as keras_compressor did).
            factorised_params += min(params, weight.numel())
            weight.copy_(approx)
    return net, {
        "ranks": ranks,
        "rel_errors": errors,
        "max_rel_error": max(errors.values()),
        "param_ratio": factorised_params / original_params,
    }
