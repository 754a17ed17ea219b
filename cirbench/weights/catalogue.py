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
    WeightFile("vgg16-397923af.pth", f"{TORCHVISION}/vgg16-397923af.pth", "397923af", "LPIPS (vgg) and DISTS backbone", "BSD-3-Clause")
)
DISTS_ALPHA_BETA = register_weight(
    WeightFile(
        "DISTS_weights-f5e65c96.pth",  # the same bytes as DISTS_pytorch's weights.pt and pyiqa's file of this name
        "https://github.com/dingkeyan93/DISTS/raw/master/DISTS_pytorch/weights.pt",
        "f5e65c96230b7f6c",
        "DISTS alpha/beta (1475 channel weights each), Ding et al. TPAMI 2020",
        "MIT",
        packaged="DISTS_pytorch/weights.pt",
    )
)
NIQE_PRISTINE = register_weight(
    WeightFile(
        "niqe_pris_params-2a7c182a.npz",  # mu/cov of the pristine MVG model and the 7x7 window (MATLAB release)
        "https://github.com/XPixelGroup/BasicSR/raw/v1.4.2/basicsr/metrics/niqe_pris_params.npz",
        "2a7c182a68c9e7f1",
        "NIQE pristine model (Mittal et al. 2013), as BasicSR ships it",
        "Apache-2.0",
        packaged="basicsr/metrics/niqe_pris_params.npz",
    )
)
