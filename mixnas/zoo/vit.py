"""Vision Transformer named models: the self-attention reference for the vision-MLP zoo.

Paper: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
ICLR 2021 (ViT-B/16). ViT-S/16 (width 384, 6 heads) comes from Touvron et al., DeiT (ICML 2021) and
Steiner et al., "How to train your ViT?" (AugReg).
Official code: google-research/vision_transformer (JAX); timm's ``vision_transformer.py`` is the PyTorch
reference whose exact parameter counts are reported here (``vit_b16_224`` = 86,567,656).

Architecture: conv patch stem (with bias), a class token and learned position embeddings over the
class token + 196 patch tokens, pre-LayerNorm blocks (eps 1e-6) of multi-head self-attention and a 4x MLP,
final LayerNorm, class-token pooling, linear head.

Deviations from the official code: none in structure or parameter count; no dropout, no pretrained weights.
MACs count attention's two matrix products (``q @ k^T`` and ``attn @ v``) through mixnas' fvcore handle for
``scaled_dot_product_attention``, as timm's published GMACs do (plain fvcore misses them).
"""

from __future__ import annotations

from mixnas.config import ArchConfig, HeadSpec, InputSpec, MixerSpec, StageSpec, StemSpec
from mixnas.registry import Reported, register_model

PAPER = "Dosovitskiy et al., An Image is Worth 16x16 Words, ICLR 2021"


def vit_arch(name: str, patch_size: int, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
             image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
    """A ViT with class token, learned position embedding and pre-norm blocks."""
    stage = StageSpec(depth=depth, dim=dim,
                      token_mixer=MixerSpec.of("attention", num_heads=num_heads, qkv_bias=True),
                      channel_mixer=MixerSpec.of("mlp", channel_hidden_dim=int(dim * mlp_ratio)),
                      norm="layernorm")
    return ArchConfig(stages=(stage,), input=InputSpec(image_size, in_channels, num_classes),
                      stem=StemSpec(patch_size=patch_size, dim=dim, bias=True),
                      head=HeadSpec(norm="layernorm", pool="cls"), layout="isotropic",
                      class_token=True, pos_embed="learned", name=name)


def _register(name: str, patch: int, dim: int, depth: int, heads: int, reported: Reported) -> None:
    def make(image_size: int = 224, in_channels: int = 3, num_classes: int = 1000) -> ArchConfig:
        return vit_arch(name, patch, dim, depth, heads, 4.0, image_size, in_channels, num_classes)

    make.__doc__ = f"{name}: ViT with patch {patch}, width {dim}, depth {depth}, {heads} heads."
    register_model(name, reported=reported, family="attention", paper=PAPER)(make)


_register("vit_s16_224", 16, 384, 12, 6,
          Reported(22_050_664, 4_600_000_000, "timm vision_transformer.py count; timm model card: 22.1M, "
                                              "4.6 GMACs"))
_register("vit_b16_224", 16, 768, 12, 12,
          Reported(86_567_656, 17_600_000_000, "timm vision_transformer.py count; timm model card: 86.6M, "
                                               "17.6 GMACs"))
