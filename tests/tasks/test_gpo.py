import pytest
import torch

from unipt.tasks.gpo import GPO, sinusoidal_positions


def test_gpo_parameter_count_is_vse_infty() -> None:
    assert sum(p.numel() for p in GPO(32, 32).parameters()) == 12_704


def test_sinusoidal_positions_by_hand() -> None:
    pe = sinusoidal_positions(2, 4)
    # position 0: sin(0)=0, cos(0)=1 on every frequency; position 1: frequencies 1 and 1/100.
    expected = torch.tensor([[0.0, 1.0, 0.0, 1.0], [0.841471, 0.540302, 0.0099998, 0.99995]])
    torch.testing.assert_close(pe, expected, atol=1e-5, rtol=0)


def test_uniform_scores_give_the_mean() -> None:
    # With a zero score layer every sorted position weighs 1/n: sorting does not change a mean.
    gpo = GPO(8, 8)
    torch.nn.init.zeros_(gpo.score.weight)
    x = torch.randn(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = torch.stack([x[0, :3].mean(0), x[1].mean(0)])
    torch.testing.assert_close(gpo(x, mask), expected)


def test_single_token_is_returned_as_is() -> None:
    gpo = GPO(8, 8)
    x = torch.randn(1, 4, 3)
    torch.testing.assert_close(gpo(x, torch.tensor([[0, 0, 1, 0]])), x[0, 2:3])


def test_padding_does_not_change_the_output() -> None:
    gpo = GPO(8, 8)
    x = torch.randn(3, 6, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1] * 6], dtype=torch.bool)
    out = gpo(x, mask)
    noisy = x.masked_fill(~mask.unsqueeze(-1), 1e3)  # huge padded values must not be sorted in
    torch.testing.assert_close(gpo(noisy, mask), out)
    # Same result as pooling each sample alone, unpadded.
    for b in range(3):
        n = int(mask[b].sum())
        torch.testing.assert_close(gpo(x[b : b + 1, :n]), out[b : b + 1], atol=1e-6, rtol=1e-5)


def test_order_and_non_prefix_masks_do_not_matter() -> None:
    gpo = GPO(8, 8)
    x = torch.randn(1, 4, 3)
    scattered = torch.zeros(1, 6, 3)
    scattered[0, [5, 0, 3, 1]] = x[0]
    mask = torch.tensor([[1, 1, 0, 1, 0, 1]], dtype=torch.bool)
    torch.testing.assert_close(gpo(scattered, mask), gpo(x), atol=1e-6, rtol=1e-5)


def test_empty_sample_is_refused_and_gradients_flow() -> None:
    gpo = GPO(8, 8)
    with pytest.raises(ValueError, match="no real tokens"):
        gpo(torch.randn(1, 2, 3), torch.zeros(1, 2))
    x = torch.randn(2, 3, 4, requires_grad=True)
    gpo(x).sum().backward()
    assert x.grad is not None and gpo.gru.weight_ih_l0.grad is not None
