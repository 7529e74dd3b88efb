"""RMSprop exactly as Keras 3 computes it.

Keras:  v <- rho * v + (1 - rho) * g**2 ;  theta <- theta - lr * g / sqrt(v + eps)
`torch.optim.RMSprop` adds eps outside the square root (sqrt(v) + eps) and defaults to lr 0.01,
alpha 0.99, eps 1e-8, so no setting of it equals Keras; early steps, where v is tiny, differ most.
"""
from __future__ import annotations

from typing import Iterable

import torch


class KerasRMSprop(torch.optim.Optimizer):
    def __init__(self, params: Iterable, lr: float = 0.001, rho: float = 0.9, epsilon: float = 1e-7):
        if lr <= 0 or not 0.0 <= rho < 1.0 or epsilon <= 0:
            raise ValueError(f"invalid RMSprop settings lr={lr}, rho={rho}, epsilon={epsilon}")
        super().__init__(params, {"lr": lr, "rho": rho, "epsilon": epsilon})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            velocities = []
            for p in params:
                state = self.state[p]
                if "velocity" not in state:
                    state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                velocities.append(state["velocity"])
            # One fused (foreach) kernel per operation over all tensors, not a Python loop of small ops.
            torch._foreach_mul_(velocities, group["rho"])
            torch._foreach_addcmul_(velocities, grads, grads, value=1.0 - group["rho"])
            denominators = torch._foreach_add(velocities, group["epsilon"])
            torch._foreach_sqrt_(denominators)
            torch._foreach_addcdiv_(params, grads, denominators, value=-group["lr"])
        return loss
