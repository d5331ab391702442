import numpy as np
import pytest
import torch

from llmrec.methods.binllm.model import BinaryEncoder, EncoderConfig, SignSTE, bits_to_text, text_to_bits


def test_sign_ste_forward_and_plain_gradient():
    x = torch.tensor([-2.0, -0.0, 0.0, 0.3], requires_grad=True)
    y = SignSTE.apply(x)
    assert y.tolist() == [-1.0, 1.0, 1.0, 1.0]  # x >= 0 -> +1 (including -0.0 == 0)
    (y * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0, 4.0]


def test_dot_decimal_is_ipv4_style_msb_first():
    bits = [1, 1, 0, 0, 0, 0, 0, 0] + [1, 0, 1, 0, 1, 0, 0, 0] + [0, 1, 1, 1, 1, 0, 1, 0] + [1, 1, 1, 0, 1, 0, 1, 0]
    assert bits_to_text(bits, "dot_decimal") == "192.168.122.234"
    assert bits_to_text(bits, "binary") == "".join(map(str, bits))
    rng = np.random.default_rng(0)
    for _ in range(20):
        b = rng.integers(0, 2, 32)
        for fmt in ("binary", "dot_decimal"):
            np.testing.assert_array_equal(text_to_bits(bits_to_text(b, fmt)), b)
    with pytest.raises(ValueError):
        bits_to_text([1, 0, 1], "dot_decimal")


def test_eval_codes_are_pure_binary_and_score_is_inner_product():
    enc = BinaryEncoder(5, 7).eval()
    batch = {"user": torch.tensor([1, 2]), "item": torch.tensor([3, 4])}
    u, i = enc.user_codes(batch["user"]), enc.item_codes(batch["item"])
    assert set(u.unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(enc(batch), (u * i).sum(-1))
    ub, ib = enc.all_codes()
    np.testing.assert_array_equal(ub[[1, 2]], (u > 0).numpy().astype(np.int8))


def test_stochastic_mixing_follows_beta_and_schedule():
    torch.manual_seed(0)
    enc = BinaryEncoder(3, 3, EncoderConfig(beta_step=0.25, beta_every=2)).train()
    users = torch.zeros(20000, dtype=torch.long)
    assert not torch.all(enc.user_codes(users).abs() == 1)  # beta 0: tanh values
    for epoch in range(4):
        enc.on_epoch_end(epoch)
    assert enc.beta == pytest.approx(0.5)
    codes = enc.user_codes(users)
    share_sign = (codes.abs() == 1).float().mean().item()
    assert share_sign == pytest.approx(0.5, abs=0.02)
    for epoch in range(4, 40):
        enc.on_epoch_end(epoch)
    assert enc.beta == 1.0
