"""Speed benchmark: one VAE training step in the DSL vs hand-written JAX vs NumPyro SVI.

One step is forward + backward + Adam update, jitted, on a batch of 128 binary MNIST-shaped
digits, for the same VAE (40-dim z, 500-500 ReLU encoder and decoder, Bernoulli likelihood,
diagonal-normal q, one-sample SGVB, Adam 1e-3):

- `dsl`: `models.vae.model.make_train_step` (the `ppl` DSL and `inference.elbo(...).sgvb()`);
- `handwritten`: `benchmarks.vae_handwritten.make_train_step` (plain JAX + optax);
- `numpyro`: `numpyro.infer.SVI` with `Trace_ELBO`, the same networks as `numpyro.param` pytrees,
  optax Adam through `numpyro.optim.optax_to_numpyro`, `jax.jit(svi.update)`.

All three run in one process from the same initial parameters. The repetitions are interleaved
in rounds (each round times `--steps` consecutive steps of every contender, in a rotating order)
so that load from other processes on a shared CPU hits all of them alike; the table reports the
median ms/step over the rounds, its ratio to hand-written JAX, and the first call (trace + compile
+ one step). A second table compares the compiled XLA programs of the DSL and hand-written steps
(HLO instruction counts by opcode, XLA's flop and byte estimates) to show whether the DSL's
abstraction vanishes under `jit`.

Run: `.venv/bin/python -m benchmarks.vae_step [--rounds 30 --steps 10] [--readme]`; `--readme`
writes the tables into `benchmarks/README.md` between the `vae_step` markers.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import platform
import re
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import optax
from numpyro.infer import SVI, Trace_ELBO
from numpyro.optim import optax_to_numpyro

from benchmarks import vae_handwritten as hw
from models import nn
from models.vae import model as vae

__all__ = ["hlo_summary", "main", "make_numpyro_step"]

README = Path(__file__).resolve().parent / "README.md"


def make_numpyro_step(params: dict, x: jax.Array, learning_rate: float = 1e-3, seed: int = 0):
    """NumPyro SVI for the same VAE: returns `(step, svi_state)`, `step(svi_state, x) -> (svi_state, loss)`.

    The networks are `numpyro.param` sites holding `params["decoder"]` / `params["encoder"]` (the
    `models.vae.model.init_params` pytrees); the data plate is scaled by 1 / batch so that the loss is
    the negative ELBO per digit, as in the other two.
    """
    z_dim = params["decoder"][0]["w"].shape[0]

    def model(x):
        decoder = numpyro.param("decoder", params["decoder"])
        with numpyro.handlers.scale(scale=1.0 / x.shape[0]), numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(z_dim), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=nn.mlp(decoder, z)).to_event(1), obs=x)

    def guide(x):
        encoder = numpyro.param("encoder", params["encoder"])
        with numpyro.handlers.scale(scale=1.0 / x.shape[0]), numpyro.plate("data", x.shape[0]):
            h = nn.mlp(encoder, x)
            numpyro.sample("z", dist.Normal(h[..., :z_dim], jnp.exp(h[..., z_dim:])).to_event(1))

    svi = SVI(model, guide, optax_to_numpyro(optax.adam(learning_rate)), Trace_ELBO())
    svi_state = svi.init(jax.random.key(seed), x)
    return jax.jit(svi.update), svi_state


def hlo_summary(compiled) -> dict:
    """Instruction counts (total, by opcode), flops and bytes of a compiled XLA executable."""
    text = compiled.as_text()
    opcodes = []
    for line in text.splitlines():
        match = re.search(r"\s([a-z][\w-]*)\(", line.split(" = ", 1)[1]) if " = " in line else None
        if match:
            opcodes.append(match.group(1))
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return {"instructions": len(opcodes), "by_opcode": collections.Counter(opcodes),
            "flops": float(cost.get("flops", np.nan)), "bytes": float(cost.get("bytes accessed", np.nan)),
            "fusions": text.count(" fusion("), "text": text}


def _contenders(params, x, keys):
    optimizer = optax.adam(1e-3)
    numpyro_step, svi_state = make_numpyro_step(params, x)
    steps = {
        "dsl": vae.make_train_step(optimizer),
        "dsl, numpyro validation off": vae.make_train_step(optimizer),
        "handwritten": hw.make_train_step(optimizer),
    }
    states = {name: (params, optimizer.init(params)) for name in steps}

    def run_optax(name, is_validated=True):
        def run(n, offset):
            p, s = states[name]
            with numpyro.validation_enabled(is_validated):  # only matters when the step is traced
                for i in range(n):
                    p, s, loss = steps[name](p, s, keys[(offset + i) % len(keys)], x)
            jax.block_until_ready(loss)
            states[name] = (p, s)
        return run

    numpyro_state = [svi_state]

    def run_numpyro(n, offset):
        del offset  # SVI carries its own key
        state = numpyro_state[0]
        for _ in range(n):
            state, loss = numpyro_step(state, x)
        jax.block_until_ready(loss)
        numpyro_state[0] = state

    def lower():  # after the timed first calls, so that they include tracing
        with numpyro.validation_enabled(False):
            lowered = {"dsl, numpyro validation off": steps["dsl, numpyro validation off"].lower(
                *states["dsl, numpyro validation off"], keys[0], x)}
        for name in ("dsl", "handwritten"):
            lowered[name] = steps[name].lower(*states[name], keys[0], x)
        return lowered

    runs = {name: run_optax(name, is_validated=name == "dsl") for name in ("dsl", "handwritten")}
    runs["dsl, numpyro validation off"] = run_optax("dsl, numpyro validation off", is_validated=False)
    runs["numpyro"] = run_numpyro
    return runs, lower


def _time_steps(runs, rounds: int, n_steps: int):
    first_call = {}
    for name, run in runs.items():
        start = time.perf_counter()
        run(1, 0)
        first_call[name] = time.perf_counter() - start
    for run in runs.values():  # warm up
        run(n_steps, 1)
    names = list(runs)
    ms, cpu_ms = {name: [] for name in names}, {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            runs[name](n_steps, r * n_steps)
            ms[name].append(1e3 * (time.perf_counter() - start) / n_steps)
            cpu_ms[name].append(1e3 * (time.process_time() - start_cpu) / n_steps)
    return first_call, ms, cpu_ms


def _tables(first_call, ms, cpu_ms, hlo, args) -> str:
    base, base_cpu = np.median(ms["handwritten"]), np.median(cpu_ms["handwritten"])
    lines = ["| contender | median ms/step | IQR ms/step | ratio vs hand-written | median CPU ms/step "
             "| CPU ratio | first call s (trace+compile+step) |",
             "|---|---|---|---|---|---|---|"]
    for name in ms:
        q25, q50, q75 = np.percentile(ms[name], [25, 50, 75])
        cpu = np.median(cpu_ms[name])
        lines.append(f"| {name} | {q50:.2f} | {q25:.2f}-{q75:.2f} | {q50 / base:.3f} | {cpu:.2f} "
                     f"| {cpu / base_cpu:.3f} | {first_call[name]:.2f} |")
    # Paired per-round ratios: each round's contenders ran back to back under similar load.
    lines.append("")
    for name in ms:
        if name != "handwritten":
            paired = np.asarray(ms[name]) / np.asarray(ms["handwritten"])
            lines.append(f"{name} / hand-written, median of the {len(paired)} per-round ratios: "
                         f"{np.median(paired):.3f} (IQR {np.percentile(paired, 25):.3f}-"
                         f"{np.percentile(paired, 75):.3f}).  ")
    lines += ["", "Compiled XLA program of the training step (`jit(step).lower(...).compile()`):", "",
              "| | HLO instructions | fusions | XLA flops | XLA bytes accessed |", "|---|---|---|---|---|"]
    for name, h in hlo.items():
        lines.append(f"| {name} | {h['instructions']} | {h['fusions']} | {h['flops']:.4g} "
                     f"| {h['bytes']:.4g} |")
    for name in ("dsl", "dsl, numpyro validation off"):
        diff = hlo[name]["by_opcode"] - hlo["handwritten"]["by_opcode"]
        extra = hlo["handwritten"]["by_opcode"] - hlo[name]["by_opcode"]
        lines.append(f"\nHLO instructions (fused bodies included) that `{name}` has more of than "
                     "hand-written: "
                     f"{dict(diff) or 'none'}; fewer of: {dict(extra) or 'none'}.")
    header = (f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on "
              f"{platform.machine()} ({os.cpu_count()} CPU cores, shared with other jobs), "
              f"jax {jax.__version__}, "
              f"numpyro {numpyro.__version__}, optax {optax.__version__}, backend {jax.default_backend()}; "
              f"batch 128, {args.rounds} rounds x {args.steps} steps per contender.")
    return header + "\n\n" + "\n".join(lines)


def _write_readme(text: str) -> None:
    begin, end = "<!-- vae_step:begin -->", "<!-- vae_step:end -->"
    readme = README.read_text() if README.exists() else ""
    block = f"{begin}\n{text}\n{end}"
    if begin in readme and end in readme:
        readme = readme[: readme.index(begin)] + block + readme[readme.index(end) + len(end):]
    else:
        readme += "\n" + block + "\n"
    README.write_text(readme)


def main(argv=None) -> int:
    """Times the three contenders, prints the markdown tables (and writes them with `--readme`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10, help="consecutive steps per contender per round")
    parser.add_argument("--readme", action="store_true", help="write the tables into benchmarks/README.md")
    parser.add_argument("--hlo-dir", default=None, help="also write both compiled HLO texts here")
    args = parser.parse_args(argv)
    key_params, key_data, key_steps = jax.random.split(jax.random.key(0), 3)
    params = vae.init_params(key_params)
    x = jax.random.bernoulli(key_data, 0.13, (128, 784)).astype(jnp.float32)  # MNIST's mean intensity
    keys = list(jax.random.split(key_steps, 64))
    runs, lower = _contenders(params, x, keys)
    first_call, ms, cpu_ms = _time_steps(runs, args.rounds, args.steps)
    hlo = {name: hlo_summary(lowering.compile()) for name, lowering in lower().items()}
    if args.hlo_dir:
        for name, h in hlo.items():
            Path(args.hlo_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.hlo_dir) / f"vae_step_{name}.hlo.txt").write_text(h["text"])
    text = _tables(first_call, ms, cpu_ms, hlo, args)
    print(text)
    if args.readme:
        _write_readme(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
