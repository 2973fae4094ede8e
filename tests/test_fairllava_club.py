"""CLUB estimator: the formula by hand, independence vs dependence, unknowns, conditioning."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fairvlm.mitigation.fairllava import detached_call, smooth_abs
from fairvlm.representation import CLUBHead, club_mi, head_ce


def _log_softmax_rows(logits):
    out = []
    for row in logits:
        m = max(row)
        lse = m + math.log(sum(math.exp(x - m) for x in row))
        out.append([x - lse for x in row])
    return out


def test_club_matches_the_formula_by_hand():
    logits = [[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    a = [0, 1, 1]
    logp = _log_softmax_rows(logits)
    # L[i][j] = log q(a_j | z_i)
    L = [[logp[i][a[j]] for j in range(3)] for i in range(3)]
    diag = sum(L[i][i] for i in range(3)) / 3
    off = sum(L[i][j] for i in range(3) for j in range(3) if i != j) / (3 * 2)
    expected = diag - off
    got = club_mi(torch.tensor(logits), torch.tensor(a))
    assert got.item() == pytest.approx(expected, abs=1e-6)
    # by hand: log-softmax [2,0] = [-0.126928, -2.126928], [0,1] = [-1.313262, -0.313262],
    # [1,1] = [-0.693147, -0.693147]; diagonal mean = -1.133337 / 3 = -0.377779;
    # off-diagonal sum = -4.253856 - 1.626524 - 1.386294 = -7.266674, / 6 = -1.211112
    assert got.item() == pytest.approx(-0.377779 + 1.211112, abs=1e-5)


def test_unknown_attribute_values_are_left_out():
    logits = torch.tensor([[2.0, 0.0], [5.0, -5.0], [0.0, 1.0], [1.0, 1.0], [-3.0, 3.0]])
    a = torch.tensor([0, -1, 1, 1, -1])
    known = a >= 0
    assert club_mi(logits, a).item() == pytest.approx(
        club_mi(logits[known], a[known]).item(), abs=1e-7
    )
    assert head_ce(logits, a).item() == pytest.approx(
        torch.nn.functional.cross_entropy(logits[known], a[known]).item(), abs=1e-7
    )
    # one or no known sample: nothing to estimate, zero but still on the graph
    lg = logits.clone().requires_grad_(True)
    zero = club_mi(lg, torch.tensor([-1, -1, 0, -1, -1]))
    assert zero.item() == 0.0 and zero.requires_grad


def _fit_head(z, a, steps=300):
    torch.manual_seed(0)
    head = CLUBHead(z.shape[1], 2)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        head_ce(head(z), a).backward()
        opt.step()
    return head


def test_near_zero_for_independent_and_positive_when_z_encodes_a():
    gen = torch.Generator().manual_seed(0)
    n, d = 2000, 8
    z = torch.randn(n, d, generator=gen)
    a_indep = torch.randint(0, 2, (n,), generator=gen)
    a_dep = (z[:, 0] > 0).long()  # z encodes a
    mi_indep = club_mi(_fit_head(z[:1000], a_indep[:1000])(z[1000:]), a_indep[1000:]).item()
    mi_dep = club_mi(_fit_head(z[:1000], a_dep[:1000])(z[1000:]), a_dep[1000:]).item()
    assert abs(mi_indep) < 0.02
    # I(z; a) = ln 2 here (a is a function of z); CLUB is an upper bound of it
    assert mi_dep > math.log(2)


def test_label_conditional_negatives_stay_within_the_label():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, -0.5]])
    a = torch.tensor([0, 1, 1, 0])
    y = torch.tensor([0, 0, 1, 1])
    L = torch.log_softmax(logits, -1)[:, a]
    # pairs (0,1),(1,0) within y=0 and (2,3),(3,2) within y=1
    expected = L.diagonal().mean() - (L[0, 1] + L[1, 0] + L[2, 3] + L[3, 2]) / 4
    assert club_mi(logits, a, y).item() == pytest.approx(expected.item(), abs=1e-6)


def test_conditional_head_picks_the_label_row():
    torch.manual_seed(0)
    head = CLUBHead(4, n_values=3, n_labels=2)
    z = torch.randn(5, 4)
    labels = torch.tensor([0, 1, 1, 0, 1])
    full = head.net(z).view(5, 2, 3)
    picked = head(z, labels)
    assert torch.allclose(picked, full[torch.arange(5), labels])


def test_detached_call_gives_no_gradient_to_the_head_but_to_z():
    torch.manual_seed(0)
    head = CLUBHead(4, 2, width=8, scale=3.0)
    z = torch.randn(6, 4, requires_grad=True)
    a = torch.tensor([0, 1, 0, 1, 1, 0])
    mi = club_mi(detached_call(head, z), a)
    smooth_abs(mi).backward()
    assert all(p.grad is None for p in head.parameters())
    assert z.grad is not None and z.grad.abs().sum() > 0
    # same value as the attached call
    assert mi.item() == pytest.approx(club_mi(head(z), a).item(), abs=1e-6)


def test_smooth_abs():
    x = torch.tensor([0.0, 0.5, -0.5])
    assert torch.allclose(
        smooth_abs(x), torch.tensor([1e-3, np.sqrt(0.25 + 1e-6), np.sqrt(0.25 + 1e-6)]).float()
    )
