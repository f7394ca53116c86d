import pytest
import torch
from monai.networks.blocks import CrossAttentionBlock

from anatomica.nn.unet import UNetConfig
from anatomica.registers.network import RegisterBank, RegisterConfig, RegisterUNet, grounding_loss


def tiny(spatial_dims=2, time_modulation=True):
    torch.manual_seed(0)
    u = UNetConfig(spatial_dims=spatial_dims, in_channels=1, channels=(8, 16), attention_levels=(False, True), num_res_blocks=1, num_head_channels=8, norm_num_groups=8)
    return RegisterUNet(u, RegisterConfig(n_classes=3, per_class=2, dim=8, time_modulation=time_modulation))


def test_shapes_2d_and_attention_is_a_distribution_over_classes():
    net = tiny()
    x = torch.randn(2, 1, 32, 32)
    aux = {}
    out = net(x, torch.tensor([0.1, -0.5]), aux=aux)
    assert out.shape == x.shape
    assert aux["seg_logits"].shape == (2, 3, 32, 32)
    shapes = [s for _, s in aux["attention"]]
    assert (16, 16) in shapes  # cross-attention at the second level (and the middle block)
    for probs, s in aux["attention"]:
        assert probs.shape == (2, s[0] * s[1], 3)
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, s[0] * s[1]))
    assert net(x, torch.tensor([0.1, -0.5])).shape == x.shape  # no aux: nothing recorded


def test_shapes_3d():
    net = tiny(spatial_dims=3)
    aux = {}
    out = net(torch.randn(1, 1, 8, 8, 8), torch.tensor([0.0]), aux=aux)
    assert out.shape == (1, 1, 8, 8, 8) and aux["seg_logits"].shape == (1, 3, 8, 8, 8)
    loss = grounding_loss(aux["attention"], torch.randint(0, 3, (1, 16, 16, 16)), 3)
    assert torch.isfinite(loss)


def test_registers_receive_gradient_from_the_grounding_term_alone():
    net = tiny()
    aux = {}
    net(torch.randn(2, 1, 32, 32), torch.tensor([0.0, 0.0]), aux=aux)
    mask = torch.zeros(2, 32, 32, dtype=torch.long)
    mask[:, :, 16:] = 1
    mask[:, 20:, :] = 2
    grounding_loss(aux["attention"], mask, 3).backward()
    g = net.bank.registers.grad
    assert g is not None and g.abs().sum(dim=(1, 2)).min() > 0  # every class's registers move
    assert net.seg_head.net[-1].weight.grad is None  # the head is not part of this term


def test_grounding_loss_is_lowest_when_attention_follows_the_mask():
    mask = torch.zeros(1, 4, 4, dtype=torch.long)
    mask[0, :, 2:] = 1
    onehot = torch.nn.functional.one_hot(mask.flatten(1), 2).float()
    good = onehot * 0.98 + 0.01
    bad = good.flip(-1)
    uniform = torch.full_like(good, 0.5)
    lg, lu, lb = (grounding_loss([(p, (4, 4))], mask, 2) for p in (good, uniform, bad))
    assert lg < lu < lb


def test_time_modulation_starts_as_identity_and_override_is_used():
    bank = RegisterBank(RegisterConfig(3, 2, 8, True), time_dim=8)
    ctx = bank(2, torch.randn(2, 8))
    torch.testing.assert_close(ctx[0], bank.registers.reshape(6, 8))
    R = torch.zeros(3, 2, 8)
    assert bank(1, None, R).abs().sum() == 0
    with pytest.raises(ValueError):
        bank(1, None, torch.zeros(2, 2, 8))
    net = tiny()
    x, c = torch.randn(1, 1, 32, 32), torch.tensor([0.0])
    with torch.no_grad():
        # zero-initialized output convs make F ≡ 0 at init, so perturb them to see the context's effect
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        same = net(x, c, registers=net.bank.registers.detach().clone())
        torch.testing.assert_close(same, net(x, c))
        assert not torch.allclose(net(x, c, registers=torch.zeros_like(net.bank.registers)), same)


def test_toy_grounded_attention_edit_changes_only_its_region():
    """Pixels of region A carry feature e0, region B e1; class A's registers key on e0, class B's on e1.
    Editing class B's registers must leave region A's cross-attention output unchanged."""
    from anatomica.registers.edit import scale_class

    D = 4
    attn = CrossAttentionBlock(hidden_size=D, num_heads=1, hidden_input_size=D, context_input_size=D, dim_head=D)
    with torch.no_grad():
        for lin in (attn.to_q, attn.to_k, attn.to_v, attn.out_proj):
            lin.weight.copy_(torch.eye(D))
        attn.out_proj.bias.zero_()
    bank = RegisterBank(RegisterConfig(n_classes=2, per_class=2, dim=D, time_modulation=False), time_dim=4)
    with torch.no_grad():
        bank.registers.copy_(torch.stack([torch.stack([20 * torch.eye(D)[0], 18 * torch.eye(D)[0]]), torch.stack([20 * torch.eye(D)[1], 18 * torch.eye(D)[1]])]))
    x = torch.zeros(1, 8, D)
    x[0, :4, 0] = 5.0  # region A
    x[0, 4:, 1] = 5.0  # region B
    before = attn(x, context=bank(1))
    after = attn(x, context=bank(1, registers=scale_class(bank.registers, 1, 0.5)))
    torch.testing.assert_close(after[0, :4], before[0, :4], atol=1e-5, rtol=0)
    assert (after[0, 4:] - before[0, 4:]).abs().max() > 1.0


def test_drop_removes_a_class_from_the_context_and_the_attention():
    net = tiny()
    aux = {}
    ctx = net.bank(1, None, None, drop=(1,))
    assert ctx.shape == (1, 4, 8) and net.bank.token_classes((1,)).tolist() == [0, 0, 2, 2]
    net(torch.randn(1, 1, 32, 32), torch.tensor([0.0]), aux=aux, drop=(1,))
    for probs, _ in aux["attention"]:
        assert probs[..., 1].abs().max() == 0  # no mass on the dropped class
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs[..., 0]))
    with pytest.raises(ValueError):
        net.bank(1, drop=(0, 1, 2))
    with pytest.raises(ValueError):
        net.bank(1, drop=(5,))


def test_head_upsampling_puts_masks_on_a_finer_grid():
    torch.manual_seed(0)
    u = UNetConfig(spatial_dims=2, in_channels=3, channels=(8, 16), attention_levels=(False, True), num_res_blocks=1, num_head_channels=8, norm_num_groups=8)
    net = RegisterUNet(u, RegisterConfig(n_classes=3, per_class=2, dim=8, head_upsample=2))
    aux = {}
    net(torch.randn(2, 3, 8, 8), torch.tensor([0.0, 0.0]), aux=aux)
    assert aux["seg_logits"].shape == (2, 3, 32, 32)  # a ×4 codec: image resolution


def test_grounding_floor_is_the_loss_of_perfect_attention():
    from anatomica.registers.network import grounding_floor

    mask = torch.zeros(2, 8, 8, dtype=torch.long)
    mask[:, :, 3:] = 1  # the boundary falls inside a 2×2 cell at 4×4
    onehot = torch.nn.functional.one_hot(mask, 2).movedim(-1, 1).float()
    perfect = torch.nn.functional.adaptive_avg_pool2d(onehot, (4, 4)).flatten(2).transpose(1, 2)
    floor = grounding_floor([(4, 4)], mask, 2)
    assert floor == pytest.approx(float(grounding_loss([(perfect, (4, 4))], mask, 2)), rel=1e-5)
    assert 0 < floor < grounding_loss([(torch.full_like(perfect, 0.5), (4, 4))], mask, 2)
    assert grounding_floor([(8, 8)], mask, 2) == pytest.approx(0.0, abs=1e-6)  # no mixed pixels at full resolution
