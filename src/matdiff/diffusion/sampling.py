"""The one DDIM sampling loop: unconditional sampling, guided sampling and the noise-space map all run it.

``ddim_loop(model, x_T, steps, eta, rule)`` walks the DDIM timesteps from pure noise to t = 0. At every step a
*rule* turns x_t into (x0_hat, eps_hat, shift): the plain rule asks the network (``PlainRule``); guidance
rules (``matdiff.guidance.rules``: TFG, DPS, snap-to-catalogue, classifier-free guidance) add what they
need. The loop then takes the DDIM step (``schedule.ddim_update``) and subtracts the rule's shift, if any.
Adding a guidance rule is one small class with a ``predict`` method; the loop, the timesteps and the
previous-alpha rule live here only.

The loop is differentiable when autograd is on (the noise-space optimization back-propagates through it);
``checkpoint=True`` recomputes each step in the backward pass so that memory does not grow with the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch.utils.checkpoint import checkpoint as recompute
from tqdm.auto import tqdm

from matdiff.diffusion.schedule import ddim_update


@dataclass(frozen=True)
class Step:
    """One DDIM step: its index (0 = the pure-noise end), timestep t, the next (smaller) timestep t_prev
    (None after the last step) and the alphas_cumprod a_t, a_prev (float64 scalars; a_prev = 1 at the end)."""

    index: int
    t: int
    t_prev: int | None
    a_t: torch.Tensor
    a_prev: torch.Tensor

    @property
    def last(self) -> bool:
        """Whether this step ends at t = 0 (x0)."""
        return self.t_prev is None


class Rule(Protocol):
    """How the loop gets (x0_hat, eps_hat, shift) from x_t at one step; shift (like x_t) or None is subtracted
    from x_{t_prev} after the DDIM update."""

    def predict(
        self, model, x_t: torch.Tensor, step: Step
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]: ...


@dataclass
class PlainRule:
    """The network's own prediction, x0 clipped to [-1, 1] when ``clip``; ``condition`` (B, K) or None."""

    clip: bool = True
    condition: torch.Tensor | None = None

    def predict(self, model, x_t: torch.Tensor, step: Step):
        t = torch.full((x_t.shape[0],), step.t, dtype=torch.long, device=x_t.device)
        x0, eps = model.predict(x_t, t, clip=self.clip, condition=self.condition)
        return x0, eps, None


def ddim_steps(scheduler, num_steps: int) -> list[Step]:
    """The DDIM steps of a diffusers DDIM ``scheduler`` for ``num_steps`` inference steps (its timesteps:
    trailing spacing gives 999, 989, ..., 9 for 100 steps of seed A; 999, 899, ..., 99 for 10; a_t from its
    alphas_cumprod in float64)."""
    limit = int(scheduler.config.num_train_timesteps)
    if not 1 <= num_steps <= limit:
        raise ValueError(
            f"the number of sampling steps must be in 1..{limit} (training timesteps), got {num_steps}"
        )
    scheduler.set_timesteps(num_steps)
    timesteps = [int(t) for t in scheduler.timesteps]
    abar = torch.as_tensor(scheduler.alphas_cumprod).double().cpu()
    one = torch.ones((), dtype=torch.float64)
    return [
        Step(i, t, t_prev, abar[t], abar[t_prev] if t_prev is not None else one)
        for i, (t, t_prev) in enumerate(zip(timesteps, [*timesteps[1:], None], strict=True))
    ]


def ddim_loop(
    model,
    x: torch.Tensor,
    steps: list[Step],
    eta: float = 0.0,
    rule: Rule | None = None,
    generator: torch.Generator | None = None,
    checkpoint: bool = False,
    progress: bool = False,
    desc: str = "sampling",
) -> torch.Tensor:
    """Run DDIM from x = x_T (B, C, *spatial) through ``steps``; returns x_0 (the last x0_hat, shifted).

    ``rule``: PlainRule() (clipped x0) when None. ``eta`` in [0, 1]; eta > 0 draws N(0, I) noise per step from
    ``generator`` (on the generator's device, moved to x's). ``checkpoint``: recompute each step in the
    backward pass (differentiable runs over many steps).
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1] (0: deterministic DDIM, 1: strided DDPM), got {eta}")
    rule = rule or PlainRule()
    gen_device = generator.device if generator is not None else x.device

    def step_fn(x_t: torch.Tensor, step: Step, noise: torch.Tensor | None) -> torch.Tensor:
        x0, eps, shift = rule.predict(model, x_t, step)
        x_next = ddim_update(x0, eps, step.a_t, step.a_prev, eta, noise)
        return x_next if shift is None else x_next - shift

    for step in tqdm(steps, desc=desc, disable=not progress):
        noise = None
        if eta > 0:
            noise = torch.randn(x.shape, generator=generator, device=gen_device).to(x.device, x.dtype)
        if checkpoint and torch.is_grad_enabled():
            x = recompute(step_fn, x, step, noise, use_reentrant=False)
        else:
            x = step_fn(x, step, noise)
    return x
