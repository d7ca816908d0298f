"""sRGB <-> CIE Lab (D65, 2 degree observer) in torch, and the network's normalisation.

The constants and piecewise functions follow `skimage.color.rgb2lab` / `lab2rgb`, so the
two agree to float precision. Every function works on tensors shaped (..., 3, H, W) on any
device and dtype (computation happens in float32 at least, for the cube roots and powers).
"""

from __future__ import annotations

import torch

L_SCALE = 50.0
AB_SCALE = 110.0

# The CIE constants (as in skimage.color), public because `compose` builds its fast tables from them.
D65_WHITE = (0.95047, 1.0, 1.08883)
XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
LAB_EPSILON = 0.008856
LAB_KAPPA = 7.787
LAB_OFFSET = 16.0 / 116.0
LAB_INVERSE_KNEE = 0.2068966


def _matrix(values, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def _rgb_from_xyz(like: torch.Tensor) -> torch.Tensor:
    return torch.linalg.inv(_matrix(XYZ_FROM_RGB, like).double()).to(like.dtype)


def _apply_matrix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,...jhw->...ihw", matrix, image)


def _white(like: torch.Tensor) -> torch.Tensor:
    return _matrix(D65_WHITE, like).view(3, 1, 1)


def _working_dtype(image: torch.Tensor) -> torch.Tensor:
    if image.dtype in (torch.float32, torch.float64):
        return image
    return image.float()


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    return torch.where(rgb > 0.04045, ((rgb.clamp(min=0.04045) + 0.055) / 1.055) ** 2.4, rgb / 12.92)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    # clamp before the power: negative linear values (out of gamut) would give NaN.
    linear = linear.clamp(0.0, 1.0)
    return torch.where(
        linear > 0.0031308, 1.055 * linear.clamp(min=0.0031308) ** (1 / 2.4) - 0.055, linear * 12.92
    )


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], shape (..., 3, H, W) -> Lab with L in [0, 100], a/b roughly in [-110, 110]."""
    rgb = _working_dtype(rgb)
    xyz = _apply_matrix(_matrix(XYZ_FROM_RGB, rgb), srgb_to_linear(rgb)) / _white(rgb)
    f = torch.where(
        xyz > LAB_EPSILON, xyz.clamp(min=LAB_EPSILON) ** (1 / 3), LAB_KAPPA * xyz + LAB_OFFSET
    )
    fx, fy, fz = f.unbind(-3)
    return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Lab -> sRGB in [0, 1]. Colours outside the sRGB gamut are clipped per channel, never NaN."""
    lab = _working_dtype(lab)
    lightness, a, b = lab.unbind(-3)
    fy = (lightness + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp(min=0.0)
    f = torch.stack((fx, fy, fz), dim=-3)
    xyz = torch.where(f > LAB_INVERSE_KNEE, f**3, (f - LAB_OFFSET) / LAB_KAPPA) * _white(lab)
    return linear_to_srgb(_apply_matrix(_rgb_from_xyz(lab), xyz))


def rgb_to_luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Lab lightness L in [0, 100] of an sRGB image, shape (..., 1, H, W)."""
    return rgb_to_lab(rgb)[..., :1, :, :]


def normalize_l(lightness: torch.Tensor) -> torch.Tensor:
    return lightness / L_SCALE - 1.0


def denormalize_l(normalized: torch.Tensor) -> torch.Tensor:
    return (normalized + 1.0) * L_SCALE


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    return ab / AB_SCALE


def denormalize_ab(normalized: torch.Tensor) -> torch.Tensor:
    return normalized * AB_SCALE


def chroma_of(ab: torch.Tensor) -> torch.Tensor:
    """|ab| per pixel of ab (..., 2, h, w), keeping that dimension: (..., 1, h, w).

    Not `torch.linalg.vector_norm(dim=-3)`: on the CPU it took 1.8 ms for one 128x160 render
    (a strided reduction), square-sum-root 0.02 ms; the same values for any ab (|ab| < 1e6).
    """
    return ab.square().sum(dim=-3, keepdim=True).sqrt_()


def lab_from_normalized(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    return torch.cat((denormalize_l(l_norm), denormalize_ab(ab_norm)), dim=-3)


def rgb_from_normalized(l_norm: torch.Tensor, ab_norm: torch.Tensor) -> torch.Tensor:
    """Network space (L/50-1, ab/110) -> sRGB in [0, 1]."""
    return lab_to_rgb(lab_from_normalized(l_norm.float(), ab_norm.float()))


def normalized_from_rgb(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB in [0, 1] -> (L/50-1, ab/110), the network's input and target."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1, :, :]), normalize_ab(lab[..., 1:, :, :])
