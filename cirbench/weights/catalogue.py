"""The canonical pretrained files cirbench knows, with their hosts and sha256 prefixes.

Names and hashes follow ../shared/reference/WEIGHTS.md; each entry says which component uses it.
"""

from __future__ import annotations

from cirbench.weights.manager import WeightFile, register_weight

TORCHVISION = "https://download.pytorch.org/models"

INCEPTION_FID = register_weight(
    WeightFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "6726825d",
        "FID/KID Inception-v3 (pool3, 2048-d), TF 2015-12-05 port",
        "Apache-2.0",
    )
)
ALEXNET = register_weight(
    WeightFile("alexnet-owt-7be5be79.pth", f"{TORCHVISION}/alexnet-owt-7be5be79.pth", "7be5be79", "LPIPS backbone (alex)", "BSD-3-Clause")
)
VGG16 = register_weight(
    WeightFile("vgg16-397923af.pth", f"{TORCHVISION}/vgg16-397923af.pth", "397923af", "LPIPS backbone (vgg)", "BSD-3-Clause")
)
