# Copyright (c) 2026 SAM-Med3D MONAI bundle contributors
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#     http://www.apache.org/licenses/LICENSE-2.0
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Windowed multi-head attention of the SAM-Med3D image encoder, in two numerically equivalent forms.

The released weights were trained with two quirks that this module reproduces on purpose:

* the decomposed relative-position term is broadcast onto the wrong key axes (see ``relative_position_terms``);
* windowed blocks zero-pad the 8^3 token grid to one 14^3 window (after ``norm1``) and attend over all 2744 tokens,
  padding included, without a mask.

``padded=True`` computes this literally (the reference formulation: a 2744 x 2744 attention per head).
``padded=False`` (the default) is exact too but attends only over the real tokens: every padding token has the same
key and value (the ``qkv`` bias), so the softmax mass of all padding keys can be summed analytically per query and
enters as one extra key whose value is the value bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RelPosAttention3D", "relative_position_terms"]


def _relative_table(table: torch.Tensor, size: int) -> torch.Tensor:
    """Expand a ``(2 * size - 1, C)`` table to ``(size, size, C)``, entry ``[i, j] = table[i - j + size - 1]``."""
    if table.shape[0] != 2 * size - 1:
        raise ValueError(f"relative position table has {table.shape[0]} rows, expected {2 * size - 1} for size {size}.")
    index = torch.arange(size, device=table.device)
    return table[index[:, None] - index[None, :] + size - 1]


def relative_position_terms(
    q: torch.Tensor, q_along_w: torch.Tensor, tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor], size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The three factors of the reference's scrambled decomposed relative-position logit.

    For a cubic grid of side ``S = size``, query ``i = (i1, i2, i3)`` and key ``j = (j1, j2, j3)``, the reference adds
    ``q[i1,i2,i3]·Td[i1-j3] + q[i1,i2,j1]·Th[i2-j3] + q[i1,i2,j2]·Tw[j2-j3]`` (tables offset by ``S - 1``) instead of
    the textbook ``q[i]·(Td[i1-j1] + Th[i2-j2] + Tw[i3-j3])``, because its 5-D terms broadcast onto the wrong axes of
    the 6-D logits. Only queries with ``i1, i2 < n`` are needed (``n`` real tokens per axis), but the second and third
    factors read queries at ``(i1, i2, m)`` for every ``m < S``, padding positions included.

    Args:
        q: unscaled queries of the real tokens, ``(B, heads, n, n, n, C)``.
        q_along_w: queries at ``(i1, i2, m)`` for ``m < S``, ``(B, heads, n, n, S, C)`` (equal to ``q`` if ``n == S``).
        tables: the ``(2S - 1, C)`` tables ``rel_pos_d``, ``rel_pos_h``, ``rel_pos_w``.
        size: the side ``S`` of the attended grid.

    Returns:
        ``a[b,h,i1,i2,i3,j3]`` of shape ``(B, heads, n, n, n, S)``, ``b[b,h,i1,i2,j1,j3]`` and ``c[b,h,i1,i2,j2,j3]``
        of shape ``(B, heads, n, n, S, S)``.
    """
    n = q.shape[2]
    rel_d, rel_h, rel_w = (_relative_table(t, size).to(q.dtype) for t in tables)
    term_d = torch.einsum("bhxyzc,xkc->bhxyzk", q, rel_d[:n])
    term_h = torch.einsum("bhxymc,ykc->bhxymk", q_along_w, rel_h[:n])
    term_w = torch.einsum("bhxymc,mkc->bhxymk", q_along_w, rel_w)
    return term_d, term_h, term_w


def _logit_bias(term_d: torch.Tensor, term_h: torch.Tensor, term_w: torch.Tensor, n: int) -> torch.Tensor:
    """Relative-position logits between the real tokens, ``(B, heads, n^3, n^3)``."""
    bias = term_d[..., None, None, :n] + term_h[:, :, :, :, None, :n, None, :n] + term_w[:, :, :, :, None, None, :n, :n]
    return bias.reshape(*term_d.shape[:2], n**3, n**3)


def _log_padding_mass(term_d: torch.Tensor, term_h: torch.Tensor, term_w: torch.Tensor, n: int) -> torch.Tensor:
    """``log sum_j exp(relative logit(i, j))`` over the padding keys ``j`` (outside ``[0, n)^3``), per real query.

    For a fixed ``j3`` the logit separates into a ``j1`` part and a ``j2`` part, so the sum over a product set of
    ``(j1, j2)`` factorises. Keys with ``j3 >= n`` are all padding; for ``j3 < n`` the padding pairs are
    ``{j1 >= n} x all  U  {j1 < n} x {j2 >= n}``, two disjoint products, so no subtraction (and no cancellation).
    """
    h_all, h_real, h_pad = (torch.logsumexp(t, dim=4) for t in (term_h, term_h[..., :n, :], term_h[..., n:, :]))
    w_all, w_real, w_pad = (torch.logsumexp(t, dim=4) for t in (term_w, term_w[..., :n, :], term_w[..., n:, :]))
    inner = torch.cat(
        [torch.logaddexp(h_pad + w_all, h_real + w_pad)[..., :n], (h_all + w_all)[..., n:]], dim=-1
    )  # (B, heads, n, n, S) indexed by j3
    return torch.logsumexp(term_d + inner[:, :, :, :, None, :], dim=-1).flatten(2)  # (B, heads, n^3)


class RelPosAttention3D(nn.Module):
    """Multi-head self-attention over a cubic token grid zero-padded to a cubic window, with relative positions.

    Args:
        dim: token width.
        num_heads: number of attention heads.
        window_size: side ``S`` of the attended window; tokens are zero-padded from ``n`` to ``S`` per axis. Global
            attention blocks use ``S = n``.
        qkv_bias: whether the qkv projection has a bias.
        padded: compute the reference's literal padded attention instead of the exact real-token form.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool = True, padded: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.window_size = window_size
        self.padded = padded
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_d = nn.Parameter(torch.zeros(2 * window_size - 1, self.head_dim))
        self.rel_pos_h = nn.Parameter(torch.zeros(2 * window_size - 1, self.head_dim))
        self.rel_pos_w = nn.Parameter(torch.zeros(2 * window_size - 1, self.head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attend over the window.

        Args:
            x: tokens ``(B, n, n, n, dim)`` (already normalised), with ``n <= window_size``.

        Returns:
            ``(B, n, n, n, dim)``.
        """
        n = x.shape[1]
        if x.shape[1:4] != (n, n, n) or n > self.window_size:
            raise ValueError(f"expected a cubic token grid of side <= {self.window_size}, got {tuple(x.shape[1:4])}.")
        if self.padded and n < self.window_size:
            return self._forward_padded(x)
        return self._forward_exact(x)

    def _split_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n = x.shape[0], x.shape[1]
        qkv = self.qkv(x).reshape(b, n**3, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)  # each (B, heads, n^3, head_dim)

    def _qkv_bias(self, dtype: torch.dtype) -> torch.Tensor:
        if self.qkv.bias is None:
            return torch.zeros(3, self.num_heads, self.head_dim, dtype=dtype, device=self.qkv.weight.device)
        return self.qkv.bias.reshape(3, self.num_heads, self.head_dim).to(dtype)

    def _forward_exact(self, x: torch.Tensor) -> torch.Tensor:
        b, n, size = x.shape[0], x.shape[1], self.window_size
        q, k, v = self._split_heads(x)
        # The relative-position logits and the log-mass of the padding go through exp: at least float32 (autocast).
        wide = torch.promote_types(q.dtype, torch.float32)
        q_grid = q.to(wide).reshape(b, self.num_heads, n, n, n, self.head_dim)
        q_bias, k_bias, v_bias = self._qkv_bias(wide).unbind(0)
        q_along_w = q_grid
        if size > n:  # padding queries at (i1, i2, m >= n) all equal the query bias
            pad_q = q_bias[None, :, None, None, None, :].expand(b, -1, n, n, size - n, -1)
            q_along_w = torch.cat([q_grid, pad_q], dim=4)
        tables = (self.rel_pos_d.to(wide), self.rel_pos_h.to(wide), self.rel_pos_w.to(wide))
        terms = relative_position_terms(q_grid, q_along_w, tables, size)
        bias = _logit_bias(*terms, n)
        if size > n:
            # All padding keys equal k_bias, so their content logit is one number per query.
            log_mass = _log_padding_mass(*terms, n) + self.scale * torch.einsum("bhnc,hc->bhn", q.to(wide), k_bias)
            bias = torch.cat([bias, log_mass[..., None]], dim=-1)
            k = torch.cat([k, k.new_zeros(b, self.num_heads, 1, self.head_dim)], dim=2)  # q·0 = 0: logit = log_mass
            v = torch.cat([v, v_bias.to(v.dtype)[None, :, None, :].expand(b, -1, 1, -1)], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        out = out.transpose(1, 2).reshape(b, n, n, n, -1)
        return self.proj(out)

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        b, n, size = x.shape[0], x.shape[1], self.window_size
        padded = F.pad(x, (0, 0, 0, size - n, 0, size - n, 0, size - n))
        q, k, v = self._split_heads(padded)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, S^3, S^3)
        q_grid = q.reshape(b, self.num_heads, size, size, size, self.head_dim)
        tables = (self.rel_pos_d, self.rel_pos_h, self.rel_pos_w)
        attn = attn + _logit_bias(*relative_position_terms(q_grid, q_grid, tables, size), size)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, size, size, size, -1)
        return self.proj(out)[:, :n, :n, :n]
