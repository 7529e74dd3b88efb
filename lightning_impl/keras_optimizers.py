"""Keras 3's optimizers as torch optimizers that take Keras's steps exactly: RMSprop, Adam, AdamW, SGD.

Each class imports only torch and needs only `KerasOptimizer` beside it, so generated model files can
carry a copy of the two classes they use (one implementation of each). They keep torch's structure
(`param_groups`, `state`, a `step` honouring `closure`), so Lightning and checkpoints treat them like
any torch optimizer. Sources: keras/src/optimizers/{base_optimizer,rmsprop,adam,adamw,sgd}.py
(Keras 3.15) and docs/parity.md, which tables every difference from torch's own optimizers.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import torch


class KerasOptimizer(torch.optim.Optimizer):
    """What every Keras optimizer does around its own update, in Keras's order (`_backend_apply_gradients`):

    1. clip the gradients: `clipnorm` clips each variable's gradient on its own (g * c / max(|g|, c)),
       else `global_clipnorm` all together, else `clipvalue` element-wise: the first one set applies;
    2. decoupled weight decay when `weight_decay` is set, on every variable stepped:
       w <- w - w * wd * lr (torch's Adam, SGD and RMSprop instead add wd * w to the gradient);
    3. the optimizer's own update (`_update`);
    4. the iteration count (one per parameter group, Keras's `optimizer.iterations`) + 1.

    The learning rate is `lr`, or Keras's `ExponentialDecay` when `decay_steps` is set:
    lr * decay_rate ** (iterations / decay_steps), the exponent floored if `staircase`, evaluated at
    the count BEFORE its increment. Scalars reach the variable's dtype the way Keras's do (`_scalar`,
    `_cast`), so float32 variables see float32 arithmetic throughout, and float64 ones the float32
    roundings Keras puts into them.
    """

    COMMON_DEFAULTS: ClassVar[dict[str, Any]] = {"weight_decay": None, "clipnorm": None, "global_clipnorm": None,
                                       "clipvalue": None, "decay_steps": None, "decay_rate": None,
                                       "staircase": False, "iterations": 0}

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        defaults = {**self.COMMON_DEFAULTS, **defaults}
        if not defaults["lr"] > 0:
            raise ValueError(f"learning rate must be positive, got {defaults['lr']}")
        if defaults["clipnorm"] is not None and defaults["global_clipnorm"] is not None:
            raise ValueError("only one of clipnorm and global_clipnorm can be set (as in Keras)")
        if (defaults["decay_steps"] is None) != (defaults["decay_rate"] is None):
            raise ValueError("ExponentialDecay needs both decay_steps and decay_rate")
        super().__init__(params, defaults)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A checkpoint written by an earlier version holds fewer settings per group: the defaults fill in.
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)

    @staticmethod
    def _slot(state: dict[str, Any], name: str, param: torch.Tensor) -> torch.Tensor:
        """An optimizer slot (Keras: an optimizer variable per model variable), zero when first used."""
        if name not in state:
            state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state[name]

    @staticmethod
    def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
        """A Python number in `like`'s dtype, as Keras's arithmetic between a number and a tensor sees it."""
        return torch.tensor(value, dtype=like.dtype, device=like.device)

    @staticmethod
    def _cast(value: float, like: torch.Tensor) -> torch.Tensor:
        """Keras's `ops.cast(number, dtype)`: TensorFlow makes the number a float32 tensor first, so the
        value is float32-rounded even for float64 variables (Adam's betas, SGD's momentum, weight_decay)."""
        return torch.tensor(value, dtype=torch.float32, device=like.device).to(like.dtype)

    def current_lr(self, group: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
        """The learning rate of the group's next step, in `like`'s dtype. ExponentialDecay computes in
        float32 whatever the variables' dtype (its Python numbers become float32 tensors)."""
        if group["decay_steps"] is None:
            return self._scalar(group["lr"], like)
        as_float32 = (lambda value: torch.tensor(value, dtype=torch.float32, device=like.device))
        exponent = as_float32(group["iterations"]) / as_float32(group["decay_steps"])
        if group["staircase"]:
            exponent = torch.floor(exponent)
        return (as_float32(group["lr"]) * torch.pow(as_float32(group["decay_rate"]), exponent)).to(like.dtype)

    def _clip(self, grads: list[torch.Tensor], group: dict[str, Any]) -> list[torch.Tensor]:
        if group["clipnorm"]:
            clipnorm = group["clipnorm"]
            return [g * clipnorm / torch.clamp(torch.sqrt(torch.sum(torch.square(g))), min=clipnorm) for g in grads]
        if group["global_clipnorm"]:
            clipnorm = group["global_clipnorm"]
            norm = torch.sqrt(torch.stack([torch.sum(torch.square(g)) for g in grads]).sum())
            # Keras's form: NaN/inf norms give a NaN scale instead of passing the gradients through.
            scale = clipnorm * torch.minimum(1.0 / norm, self._scalar(1.0 / clipnorm, norm)) + (norm - norm)
            return [g * scale for g in grads]
        if group["clipvalue"]:
            return [torch.clamp(g, -group["clipvalue"], group["clipvalue"]) for g in grads]
        return grads

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
            grads = self._clip([p.grad for p in params], group)
            for param, grad in zip(params, grads):
                lr = self.current_lr(group, param)
                if group["weight_decay"] is not None:
                    param.sub_(param * self._cast(group["weight_decay"], param) * lr)
                self._update(param, grad.to(param.dtype), self.state[param], group, lr)
            group["iterations"] += 1
        return loss

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any],
                lr: torch.Tensor) -> None:
        raise NotImplementedError


class KerasRMSprop(KerasOptimizer):
    """keras.optimizers.RMSprop. How torch.optim.RMSprop differs:
    1. epsilon inside the square root: g / sqrt(v + eps), torch g / (sqrt(v) + eps);
    2. with momentum, the learning rate inside the momentum buffer (mom <- mu * mom + lr * g / sqrt(..));
       torch multiplies the buffer by the current rate (the same only while the rate is constant);
    3. defaults lr 0.001, rho 0.9, epsilon 1e-7 (torch: lr 0.01, alpha 0.99, eps 1e-8);
    4. weight_decay decoupled (KerasOptimizer), torch's is an L2 term in the gradient.
    Slots: velocity (the mean square), momentum, average_gradient (centered).
    """

    def __init__(self, params: Iterable, lr: float = 0.001, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **common: Any):
        if not 0.0 <= rho < 1.0 or not 0.0 <= momentum < 1.0 or not epsilon > 0:
            raise ValueError(f"invalid RMSprop settings rho={rho}, momentum={momentum}, epsilon={epsilon}")
        super().__init__(params, {"lr": lr, "rho": rho, "momentum": momentum, "epsilon": epsilon,
                                  "centered": centered, **common})

    def _update(self, param, grad, state, group, lr):
        # The operations (addcmul, addcdiv) of this class's first version, which fit's runs were made
        # with: float32 runs resume from their checkpoints bit for bit. Keras rounds in another order.
        rho = group["rho"]
        velocity = self._slot(state, "velocity", param)
        velocity.mul_(rho).addcmul_(grad, grad, value=1 - rho)
        if group["centered"]:
            average = self._slot(state, "average_gradient", param)
            average.mul_(rho).add_(grad, alpha=1 - rho)
            denominator = velocity - torch.square(average) + group["epsilon"]
        else:
            denominator = velocity + group["epsilon"]
        denominator.sqrt_()
        if group["momentum"] > 0:
            momentum = self._slot(state, "momentum", param)
            momentum.mul_(group["momentum"]).addcdiv_(grad, denominator, value=float(lr))
            param.sub_(momentum)
        else:
            param.addcdiv_(grad, denominator, value=-float(lr))


class KerasAdam(KerasOptimizer):
    """keras.optimizers.Adam. How torch.optim.Adam differs:
    1. epsilon is added to sqrt(v) BEFORE bias correction ("epsilon hat"):
       w <- w - m * alpha / (sqrt(v) + eps) with alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t);
       torch adds eps to sqrt(v / (1 - beta_2^t)), so no fixed torch eps equals Keras's;
    2. the bias corrections in the variable's dtype (torch: Python floats);
    3. amsgrad keeps the maximum of the UNcorrected v;
    4. epsilon default 1e-7 (torch 1e-8); weight_decay decoupled (torch's Adam: L2 in the gradient).
    Slots: momentum (m), velocity (v), velocity_hat (amsgrad).
    """

    def __init__(self, params: Iterable, lr: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **common: Any):
        if not 0.0 <= beta_1 < 1.0 or not 0.0 <= beta_2 < 1.0 or not epsilon > 0:
            raise ValueError(f"invalid Adam settings beta_1={beta_1}, beta_2={beta_2}, epsilon={epsilon}")
        super().__init__(params, {"lr": lr, "beta_1": beta_1, "beta_2": beta_2, "epsilon": epsilon,
                                  "amsgrad": amsgrad, **common})

    def _update(self, param, grad, state, group, lr):
        beta_1, beta_2 = group["beta_1"], group["beta_2"]
        local_step = self._scalar(group["iterations"] + 1, param)
        beta_1_power = torch.pow(self._cast(beta_1, param), local_step)
        beta_2_power = torch.pow(self._cast(beta_2, param), local_step)
        alpha = lr * torch.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        m = self._slot(state, "momentum", param)
        v = self._slot(state, "velocity", param)
        m.add_((grad - m) * (1 - beta_1))
        v.add_((torch.square(grad) - v) * (1 - beta_2))
        if group["amsgrad"]:
            v_hat = self._slot(state, "velocity_hat", param)
            torch.maximum(v_hat, v, out=v_hat)
            v = v_hat
        param.sub_((m * alpha) / (torch.sqrt(v) + group["epsilon"]))


class KerasAdamW(KerasAdam):
    """keras.optimizers.AdamW: KerasAdam with weight_decay required, default 0.004 (torch's AdamW:
    1e-2, and epsilon outside the bias correction as in its Adam). The decay is KerasOptimizer's."""

    def __init__(self, params: Iterable, lr: float = 0.001, weight_decay: float = 0.004, **options: Any):
        if weight_decay is None:
            raise ValueError("AdamW needs a weight_decay (Keras refuses None)")
        super().__init__(params, lr=lr, weight_decay=weight_decay, **options)


class KerasSGD(KerasOptimizer):
    """keras.optimizers.SGD. How torch.optim.SGD differs:
    1. the learning rate inside the velocity: m <- mu * m - lr * g; w <- w + m
       (nesterov: w <- w + mu * m - lr * g); torch keeps b <- mu * b + g and steps by the current lr
       (the same only while the rate is constant);
    2. default lr 0.01 (torch 1e-3); weight_decay decoupled (torch's: L2 in the gradient).
    Slot: momentum (m, Keras's sign: it holds -lr * g at the first step).
    """

    def __init__(self, params: Iterable, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 **common: Any):
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"invalid SGD momentum {momentum} (Keras: a float in [0, 1])")
        super().__init__(params, {"lr": lr, "momentum": momentum, "nesterov": nesterov, **common})

    def _update(self, param, grad, state, group, lr):
        if group["momentum"] == 0:
            param.sub_(grad * lr)
            return
        momentum = self._cast(group["momentum"], param)
        m = self._slot(state, "momentum", param)
        m.copy_(m * momentum - grad * lr)
        if group["nesterov"]:
            param.add_(m * momentum - grad * lr)
        else:
            param.add_(m)


# Keras's class name (a .keras file's `compile_config.optimizer.class_name`) -> the port's class.
OPTIMIZERS: dict[str, type[KerasOptimizer]] = {"RMSprop": KerasRMSprop, "Adam": KerasAdam, "AdamW": KerasAdamW,
                                               "SGD": KerasSGD}
