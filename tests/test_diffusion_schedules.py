"""Noise schedules of the shared diffusion package: named schedules, forward noising and respacing.

Checked against direct computations of the DDPM quantities.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cirbench.diffusion.schedules import NoiseSchedule, adm_linear_betas, evenly_spaced_steps, sd_linear_betas
from cirbench.errors import ConfigError


def test_named_schedules_have_their_published_end_points():
    sd = sd_linear_betas()
    assert len(sd) == 1000 and sd[0] == pytest.approx(0.00085) and sd[-1] == pytest.approx(0.012)
    assert np.allclose(np.sqrt(sd), np.linspace(np.sqrt(0.00085), np.sqrt(0.012), 1000))
    adm = adm_linear_betas()
    assert adm[0] == pytest.approx(1e-4) and adm[-1] == pytest.approx(0.02)


def test_respacing_keeps_the_cumulative_alphas_of_the_kept_steps():
    full = NoiseSchedule(sd_linear_betas())
    steps = evenly_spaced_steps(1000, 200)
    assert steps[0] == 0 and steps[-1] == 999 and len(steps) == 200
    spaced = full.respaced(steps)
    assert spaced.timesteps == tuple(steps)
    np.testing.assert_allclose(spaced.alphas_cumprod, full.alphas_cumprod[steps], rtol=1e-12)
    assert spaced.betas[0] == pytest.approx(full.betas[0])


def test_q_sample_is_the_closed_form_forward_process():
    schedule = NoiseSchedule(adm_linear_betas())
    x0, noise = torch.ones(2, 1, 2, 2, dtype=torch.float64), torch.full((2, 1, 2, 2), 2.0, dtype=torch.float64)
    t = torch.tensor([0, 999])
    out = schedule.q_sample(x0, t, noise)
    abar = np.cumprod(1 - adm_linear_betas())[[0, 999]]
    expected = np.sqrt(abar) + 2 * np.sqrt(1 - abar)
    np.testing.assert_allclose(out[:, 0, 0, 0].numpy(), expected, rtol=1e-12)


def test_bad_schedules_are_refused():
    with pytest.raises(ConfigError):
        NoiseSchedule(np.array([0.5, 1.5]))
    with pytest.raises(ConfigError):
        evenly_spaced_steps(10, 11)
