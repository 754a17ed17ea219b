"""SSP-IR's networks: full-size layouts equal the release manifests in order; stock parts equal stock diffusers and
transformers under identical random weights; the additions equal hand-written references of their formulas.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers", reason="SSP-IR needs diffusers (the sspir extra)")
pytest.importorskip("transformers", reason="SSP-IR needs transformers (the sspir extra)")

from diffusers import ControlNetModel, UNet2DConditionModel  # noqa: E402

from cirbench.models.sspir import sspir_towers as towers  # noqa: E402
from cirbench.models.sspir.sspir_controlnet import SSPIRControlNet  # noqa: E402
from cirbench.models.sspir.sspir_unet import OFFICIAL_UNET, TINY_UNET, SSPIRUNet  # noqa: E402
from cirbench.models.sspir.tpbnet import TPBNet  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
NEW = (".image_attentions.", ".pixel_attentions.")


def manifest(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    return [(d["key"], tuple(d["shape"]), d["dtype"]) for d in json.loads((REFERENCE / name).read_text())]


def layout(module: torch.nn.Module) -> list[tuple[str, tuple[int, ...], str]]:
    return [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in module.state_dict().items()]


@pytest.mark.parametrize(("build", "name", "params"), [
    (lambda: SSPIRUNet(), "sspir_unet_state_dict_keys.json", 1_368_605_124),
    (lambda: SSPIRControlNet(), "sspir_controlnet_state_dict_keys.json", 486_092_697),
    (lambda: TPBNet(), "sspir_refine_tpbnet_state_dict_keys.json", 2_628_096),
    (towers.make_vae, "sd15_vae_state_dict_keys.json", 83_653_863),
    (towers.make_text_encoder, "sd15_text_encoder_state_dict_keys.json", 123_060_480),
    (towers.make_vision_tower, "clip_vit_l14_vision_state_dict_keys.json", 303_179_776),
])  # fmt: skip
def test_full_size_layouts_equal_the_manifests_in_order(build, name, params) -> None:
    with torch.device("meta"):
        module = build()
    assert layout(module) == manifest(name)
    assert sum(p.numel() for p in module.parameters()) == params


def test_every_stock_sd15_unet_key_is_ours_and_only_the_attentions_are_new() -> None:
    config = {k: v for k, v in OFFICIAL_UNET.to_diffusers().items() if not k.startswith("_") and k not in
              ("use_image_cross_attention", "use_textual_restore", "use_srresnet")}  # fmt: skip
    with torch.device("meta"):
        stock, ours = UNet2DConditionModel(**config), SSPIRUNet()
    stock_layout, our_layout = dict((k, s) for k, s, _ in layout(stock)), dict((k, s) for k, s, _ in layout(ours))
    assert all(our_layout.get(k) == s for k, s in stock_layout.items())
    new = sorted(set(our_layout) - set(stock_layout))
    recorded = json.loads((REFERENCE / "sspir_unet_new_keys_vs_stock_sd15.json").read_text())
    recorded_keys = recorded if isinstance(recorded, list) else [k for v in recorded.values() if isinstance(v, list) for k in v]
    recorded_keys = sorted(k["key"] if isinstance(k, dict) else k for k in recorded_keys)
    assert new == recorded_keys and len(new) == 416 + 312
    assert all(any(n in k for n in NEW) for k in new)


def _silence_additions(module: torch.nn.Module) -> None:
    """Zero every added attention's output projection: each then returns its input (a residual block)."""
    for name, sub in module.named_modules():
        if name.endswith(("image_attentions", "pixel_attentions")):
            for block in sub:
                torch.nn.init.zeros_(block.proj_out.weight)
                torch.nn.init.zeros_(block.proj_out.bias)


def _tiny_inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 77, 32, generator=g),
            torch.rand(2, 3, 64, 64, generator=g), torch.randn(2, 256, 512, generator=g))  # fmt: skip


def _stock_config() -> dict:
    return {k: v for k, v in TINY_UNET.to_diffusers().items() if not k.startswith("_") and k not in
            ("use_image_cross_attention", "use_textual_restore", "use_srresnet")}  # fmt: skip


def test_the_stock_parts_equal_stock_diffusers_under_identical_weights() -> None:
    torch.manual_seed(0)
    ours = SSPIRUNet(TINY_UNET).eval()
    controlnet = SSPIRControlNet.from_unet(ours).eval()
    for p in list(controlnet.controlnet_down_blocks.parameters()) + list(controlnet.controlnet_mid_block.parameters()):
        torch.nn.init.normal_(p, 0, 0.2)  # exercise the residual path (the zero convs start at zero)
    torch.nn.init.normal_(controlnet.controlnet_cond_embedding.conv_out.weight, 0, 0.05)
    _silence_additions(ours)
    _silence_additions(controlnet)
    stock_unet = UNet2DConditionModel(**_stock_config()).eval()
    stock_unet.load_state_dict({k: v for k, v in ours.state_dict().items() if not any(n in k for n in NEW)})
    stock_cn = ControlNetModel.from_unet(stock_unet, conditioning_embedding_out_channels=(16, 32, 96, 256)).eval()
    stock_cn.load_state_dict({k: v for k, v in controlnet.state_dict().items()
                              if not any(n in k for n in NEW) and ".to_rgbs." not in k})  # fmt: skip
    x, text, lq, image = _tiny_inputs()
    with torch.no_grad():
        _, down, mid = controlnet(x, 981, text, lq, image, 0.8)
        ref_down, ref_mid = stock_cn(x, 981, text, lq, conditioning_scale=0.8, return_dict=False)
        eps = ours(x, 981, text, down, mid, image)
        ref = stock_unet(x, 981, text, down_block_additional_residuals=ref_down,
                         mid_block_additional_residual=ref_mid).sample  # fmt: skip
    torch.testing.assert_close(mid, ref_mid, atol=1e-6, rtol=1e-5)
    for a, b in zip(down, ref_down, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert eps.abs().max() > 0.1
    torch.testing.assert_close(eps, ref, atol=1e-5, rtol=1e-5)


def _apply(block, hidden, context):
    return block(hidden, encoder_hidden_states=context, return_dict=False)[0]


def reference_unet(unet: SSPIRUNet, x, t, text, down_res, mid_res, image, order=("image", "text", "pixel")):
    """SSP-IR's U-Net written out: resnet -> image -> text [-> pixel on the matching residual] per layer."""
    temb = unet.time_embedding(unet.time_proj(torch.full((x.shape[0],), t)))
    h = unet.conv_in(x)
    skips = [h]
    for block in unet.down_blocks:
        for layer, resnet in enumerate(block.resnets):
            h = resnet(h, temb)
            if hasattr(block, "image_attentions"):
                steps = {"image": (block.image_attentions[layer], image), "text": (block.attentions[layer], text)}
                for kind in [o for o in order if o != "pixel"]:
                    h = _apply(steps[kind][0], h, steps[kind][1])
            skips.append(h)
        if block.downsamplers:
            h = block.downsamplers[0](h)
            skips.append(h)
    skips = [s + r for s, r in zip(skips, down_res, strict=True)]
    m = unet.mid_block
    h = m.resnets[0](h, temb)
    h = _apply(m.attentions[0], _apply(m.image_attentions[0], h, image), text)
    h = m.resnets[1](h, temb) + mid_res
    residuals = list(down_res)
    for block in unet.up_blocks:
        for layer, resnet in enumerate(block.resnets):
            h = resnet(torch.cat([h, skips.pop()], 1), temb)
            pixel = residuals.pop().flatten(2).transpose(1, 2)
            steps = {"pixel": (block.pixel_attentions[layer], pixel)}
            if hasattr(block, "image_attentions"):
                steps |= {"image": (block.image_attentions[layer], image), "text": (block.attentions[layer], text)}
            for kind in [o for o in order if o in steps]:
                h = _apply(steps[kind][0], h, steps[kind][1])
        if block.upsamplers:
            h = block.upsamplers[0](h)
    return unet.conv_out(unet.conv_act(unet.conv_norm_out(h)))


def test_attention_order_and_per_up_block_residual_slicing_equal_the_written_out_formula() -> None:
    torch.manual_seed(0)
    unet, controlnet = SSPIRUNet(TINY_UNET).eval(), None
    controlnet = SSPIRControlNet.from_unet(unet).eval()
    for p in controlnet.controlnet_down_blocks.parameters():
        torch.nn.init.normal_(p, 0, 0.3)
    x, text, lq, image = _tiny_inputs()
    with torch.no_grad():
        _, down, mid = controlnet(x, 981, text, lq, image)
        eps = unet(x, 981, text, down, mid, image)
        torch.testing.assert_close(eps, reference_unet(unet, x, 981, text, down, mid, image), atol=1e-5, rtol=1e-5)
        # negative controls: SeeSR's order (text before image), or the residuals given in reverse, differ
        swapped = reference_unet(unet, x, 981, text, down, mid, image, order=("text", "image", "pixel"))
        reversed_res = unet(x, 981, text, [d.flip(0) for d in down], mid, image)
    assert (eps - swapped).abs().max() > 1e-3
    assert (eps - reversed_res).abs().max() > 1e-3


def test_the_structure_processor_predicts_rgb_at_half_quarter_and_eighth_scale() -> None:
    torch.manual_seed(0)
    net = SSPIRControlNet.from_unet(SSPIRUNet(TINY_UNET)).controlnet_cond_embedding
    lq = torch.rand(1, 3, 64, 48)
    with torch.no_grad():
        embedding, rgbs = net(lq)
        h, expected = torch.nn.functional.silu(net.conv_in(lq)), []
        for i, conv in enumerate(net.blocks):
            h = torch.nn.functional.silu(conv(h))
            if i % 2:
                expected.append(net.to_rgbs[i // 2](h))
    assert [tuple(r.shape[-2:]) for r in rgbs] == [(32, 24), (16, 12), (8, 6)]
    for a, b in zip(rgbs, expected, strict=True):
        torch.testing.assert_close(a, b)
    assert embedding.shape == (1, 32, 8, 6) and embedding.abs().max() == 0  # zero-initialised conv_out


def test_tpbnet_is_the_mlp_on_the_last_layer_without_cls() -> None:
    torch.manual_seed(0)
    net = TPBNet().eval()
    hidden = [torch.randn(2, 257, 1024) for _ in range(3)]
    s = net.visual_projection
    x = hidden[-1][:, 1:]
    for lin, norm in ((s[0], s[1]), (s[3], s[4])):
        x = torch.nn.functional.leaky_relu(torch.nn.functional.layer_norm(x @ lin.weight.T + lin.bias, (1024,),
                                                                          norm.weight, norm.bias), 0.01)  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(net(hidden), x @ s[6].weight.T + s[6].bias, atol=1e-5, rtol=1e-5)


def test_the_controlnet_copies_the_unet_encoder_with_its_image_attentions() -> None:
    torch.manual_seed(0)
    unet = SSPIRUNet(TINY_UNET)
    net = SSPIRControlNet.from_unet(unet)
    ours, theirs = net.state_dict(), unet.state_dict()
    copied = [k for k in ours if k.startswith(("down_blocks.", "mid_block.", "conv_in.", "time_embedding."))]
    assert any(".image_attentions." in k for k in copied)
    assert all(torch.equal(ours[k], theirs[k]) for k in copied)
    assert all(v.abs().max() == 0 for k, v in ours.items() if k.startswith(("controlnet_down_blocks", "controlnet_mid")))


def _transformers_state(state: dict, prefix: str, reference: torch.nn.Module) -> dict:
    """Our file-named keys as the installed transformers names them (5.x dropped the text_model./vision_model.)."""
    names = set(reference.state_dict())
    out = {}
    for key, value in state.items():
        bare = key.removeprefix(prefix)
        target = key if key in names else bare
        if target in names:
            out[target] = value
    return out


def test_the_clip_towers_equal_transformers_under_identical_weights() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModel

    common = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                  hidden_act="quick_gelu", layer_norm_eps=1e-5)  # fmt: skip
    torch.manual_seed(0)
    text = towers.make_text_encoder({**common, "vocab_size": 99, "max_position_embeddings": 77}).eval()
    vision = towers.make_vision_tower({**common, "image_size": 56, "patch_size": 14}).eval()
    for p in [*text.parameters(), *vision.parameters()]:
        torch.nn.init.normal_(p, 0, 0.2)
    ref_text = CLIPTextModel(CLIPTextConfig(**common, vocab_size=99, max_position_embeddings=77,
                                            attn_implementation="eager")).eval()  # fmt: skip
    ref_vision = CLIPVisionModel(CLIPVisionConfig(**common, image_size=56, patch_size=14,
                                                  attn_implementation="eager")).eval()  # fmt: skip
    ref_text.load_state_dict(_transformers_state(text.state_dict(), "text_model.", ref_text), strict=False)
    ref_vision.load_state_dict(_transformers_state(vision.state_dict(), "vision_model.", ref_vision), strict=False)
    assert len(_transformers_state(text.state_dict(), "text_model.", ref_text)) >= len(ref_text.state_dict())
    ids = torch.randint(0, 99, (2, 77))
    pixels = torch.randn(2, 3, 56, 56)
    with torch.no_grad():
        torch.testing.assert_close(text(ids)[0], ref_text(ids).last_hidden_state, atol=1e-5, rtol=1e-5)
        ours = vision(pixel_values=pixels).hidden_states
        theirs = ref_vision(pixel_values=pixels, output_hidden_states=True).hidden_states
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
