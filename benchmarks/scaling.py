"""Data, parameter and sequence parallelism in JAX on host devices: per-device memory and the bytes each collective
kind moves in one compiled training step, for 1, 2, 4 and 8 devices.

    python benchmarks/scaling.py                  # tiny-but-real widths, 8 host devices (a few minutes)
    python benchmarks/scaling.py --json out.json

Per-device memory is XLA's compiled memory analysis (arguments + temporaries + outputs) of one device's
program; collective bytes are the result sizes of every all-gather, all-reduce, reduce-scatter, all-to-all
and collective-permute in the compiled HLO (what lands on each device). The global batch grows with the device
count (2 examples per device): data parallelism scales when per-device memory stays flat and only the
gradient reduction (the parameters' size) is moved.

Sequence parallelism: one example of ``--long`` tokens split over the devices (``bigbird_flax.sequence.
sequence_parallel_apply``, eval and training plans), against the same step with the input sharded along the
sequence and left to XLA ("xla-seq": its propagation all-gathers keys and values). Per layer, the core's plan
says what the busiest device receives against an all-gather of K and V.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import numpy as np  # noqa: E402

_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "pred": 1, "s8": 1, "u8": 1, "f64": 8, "s64": 8}
_OP = re.compile(r"= (.+?) (all-gather|all-reduce|reduce-scatter|all-to-all|collective-permute)(?:-start)?\(")
_SHAPE = re.compile(r"([a-z0-9]+)\[([0-9,]*)\]")


def collective_bytes(hlo: str) -> dict[str, int]:
    """Bytes of the results of each collective kind in compiled HLO text."""
    out: dict[str, int] = {}
    for shapes, kind in _OP.findall(hlo):
        size = 0
        for dtype, dims in _SHAPE.findall(shapes):
            size += _BYTES.get(dtype, 4) * int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
        out[kind] = out.get(kind, 0) + size
    return out


def sequence_rows(cfg, length: int) -> list[dict]:
    """One example of ``length`` tokens over 1-8 devices: ours (eval and training plans) and XLA's own split."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import bigbird_flax as bf
    from bigbird_core.layout import block_layout
    from bigbird_core.plans import transformers_plan
    from bigbird_flax.sequence import sequence_parallel_apply, sequence_shards

    module = bf.FlaxBigBirdModule(cfg.replace(max_position_embeddings=length))
    ids = np.random.default_rng(0).integers(5, cfg.vocab_size, (1, length)).astype(np.int32)
    params = jax.jit(module.init)(jax.random.PRNGKey(0), ids)["params"]
    rows = []
    for devices in (1, 2, 4, 8):
        mesh = Mesh(np.array(jax.devices()[:devices]), ("seq",))
        for mode in ("eval", "train", "xla-seq") if devices > 1 else ("one",):
            deterministic = mode != "train"
            if mode in ("xla-seq", "one"):

                def apply(p, ids):
                    return module.apply({"params": p}, ids, jnp.ones_like(ids))

                tokens = NamedSharding(mesh, P(None, "seq"))
            else:

                def apply(p, ids, deterministic=deterministic, mesh=mesh):
                    return sequence_parallel_apply(module, {"params": p}, mesh, ids, deterministic=deterministic)

                tokens = NamedSharding(mesh, P())
            step = jax.jit(jax.grad(lambda p, ids, apply=apply: apply(p, ids).last_hidden_state.sum()),
                           in_shardings=(NamedSharding(mesh, P()), tokens))  # fmt: skip
            compiled = step.lower(params, ids).compile()
            mem = compiled.memory_analysis()
            per_device = (mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**20
            moved = {k: v / 2**20 for k, v in sorted(collective_bytes(compiled.as_text()).items())}
            row = dict(mode=f"sequence-{mode}", devices=devices, global_batch=1,
                       seq=length, mib_per_device=per_device, collective_mib=moved)  # fmt: skip
            if mode in ("eval", "train"):
                plan = sequence_shards(block_layout(transformers_plan(module.config, length // cfg.block_size,
                                                                      training=mode == "train"), cfg.block_size),
                                       devices)  # fmt: skip
                per_layer = plan.bytes_per_layer(1, cfg.head_dim, 4)
                row["per_layer_kib"] = {k: v / 2**10 for k, v in per_layer.items()}
            rows.append(row)
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in moved.items()) or "none"
            extra = ""
            if "per_layer_kib" in row:
                kib = row["per_layer_kib"]
                extra = (f"; per layer the busiest device receives {kib['tiles']:.0f} KiB of tiles (exact "
                         f"{kib['exact']:.0f}) vs {kib['all_gather']:.0f} KiB for an all-gather of K and V "
                         f"({kib['all_gather'] / kib['tiles']:.1f}x less)")
            print(f"{row['mode']:16} {devices} devices, 1 x {length}: {per_device:8.1f} MiB per device; "
                  f"collectives (MiB): {kinds}{extra}", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--long", type=int, default=4096, help="tokens of the one example of sequence parallelism")
    p.add_argument("--json")
    args = p.parse_args(argv)
    import flax.linen as nn
    import jax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import bigbird_flax as bf
    from bigbird_core import BigBirdConfig
    from bigbird_core.weights import FSDP_RULES

    LOGICAL_RULES = [("batch", "data")]

    cfg = BigBirdConfig(vocab_size=1024, hidden_size=args.hidden, num_attention_heads=4, intermediate_size=4 * args.hidden,
                        num_hidden_layers=2, max_position_embeddings=args.seq, block_size=64, num_random_blocks=3,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    model = bf.FlaxBigBirdForMaskedLM(cfg)

    def loss(params, ids, mask):
        return model.module.apply({"params": params}, ids, mask, labels=ids).loss

    rows = []
    for devices in (1, 2, 4, 8):
        mesh = Mesh(np.array(jax.devices()[:devices]), ("data",))
        data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
        ids = np.random.default_rng(0).integers(5, cfg.vocab_size, (2 * devices, args.seq)).astype(np.int32)
        for mode in ("data", "fsdp"):
            if mode == "data":
                shard = jax.tree_util.tree_map(lambda _, r=replicated: r, model.params)
            else:
                shard = model.shardings(FSDP_RULES, mesh)
            step = jax.jit(jax.value_and_grad(loss), in_shardings=(shard, data, data),
                           out_shardings=(replicated, shard))  # fmt: skip
            with jax.set_mesh(mesh), nn.logical_axis_rules(LOGICAL_RULES):  # activations sharded by example
                compiled = step.lower(model.params, ids, np.ones_like(ids)).compile()
            mem = compiled.memory_analysis()
            per_device = (mem.argument_size_in_bytes + mem.temp_size_in_bytes + mem.output_size_in_bytes) / 2**20
            moved = collective_bytes(compiled.as_text())
            row = dict(mode=mode, devices=devices, global_batch=2 * devices, seq=args.seq, mib_per_device=per_device,
                       collective_mib={k: v / 2**20 for k, v in sorted(moved.items())})  # fmt: skip
            rows.append(row)
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in row["collective_mib"].items()) or "none"
            print(f"{mode:5} {devices} devices, batch {2 * devices:2}: {per_device:8.1f} MiB per device; "
                  f"collectives (MiB): {kinds}", flush=True)
    rows += sequence_rows(cfg, args.long)
    params_mib = sum(x.nbytes for x in jax.tree_util.tree_leaves(model.params)) / 2**20
    print(f"parameters: {params_mib:.2f} MiB (float32)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "params_mib": params_mib, "config": dict(hidden=args.hidden, seq=args.seq)}, fh,
                      indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
