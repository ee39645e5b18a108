"""bigbird_flax beyond forward parity: the transformers Flax tree and model, gradients against torch,
jit, checkpoints both ways, random plans drawn in jit, bf16, remat, errors."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
import jax.numpy as jnp  # noqa: E402

import bigbird_core as core  # noqa: E402
import bigbird_flax as bf  # noqa: E402
import bigbird_torch as bt  # noqa: E402
from bigbird_core import BigBirdConfig, InputError  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from bigbird_core.weights import flax_path  # noqa: E402
from cases import CASES, TINY, make_inputs, make_labels  # noqa: E402
from oracle import hf_config, oracle_model, save_oracle  # noqa: E402

CFG = BigBirdConfig(**TINY)
ALIGNED = CASES[1]  # 128 tokens: transformers' Flax model can neither pad nor fall back
NO_FLAX_POOLER = {
    "BigBirdForMaskedLM",
    "BigBirdForCausalLM",
    "BigBirdForTokenClassification",
    "BigBirdForQuestionAnswering",
}


def flat_paths(tree, prefix=()):
    for k, v in tree.items():
        if isinstance(v, dict):
            yield from flat_paths(v, prefix + (k,))
        else:
            yield prefix + (k,), tuple(v.shape)


def hf_flax(head: str):
    return getattr(transformers, "Flax" + head)


@pytest.mark.parametrize("head", core.HEADS)
def test_param_tree_is_transformers_flax_tree(head):
    """Same paths and shapes as transformers' Flax module init (ours keeps the pooler where the torch head has it)."""
    ours = dict(flat_paths(bf.MODEL_CLASSES[head](CFG).params))
    shape = (1, 2, 128) if head == "BigBirdForMultipleChoice" else (1, 128)
    theirs = dict(flat_paths(hf_flax(head)(hf_config(CFG), input_shape=shape, seed=0).params))
    extra = {p for p in ours if p not in theirs}
    assert {p for p in theirs if p not in ours} == set()
    assert all(ours[p] == theirs[p] for p in theirs)
    expected_extra = {p for p in ours if "pooler" in p} if head in NO_FLAX_POOLER else set()
    assert extra == expected_extra


@pytest.mark.parametrize("head", core.HEADS)
def test_matches_transformers_flax_model_in_eval(head, tmp_path):
    oracle = oracle_model(ALIGNED.config, head, seed=0)
    path = save_oracle(oracle, str(tmp_path))
    ours = bf.MODEL_CLASSES[head].from_pretrained(path)
    theirs = hf_flax(head).from_pretrained(path, from_pt=True)
    inputs = make_inputs(ALIGNED, head)
    got = ours(**{k: jnp.asarray(v) for k, v in inputs.items()}, output_hidden_states=True)
    want = theirs(**{k: jnp.asarray(v) for k, v in inputs.items()}, output_hidden_states=True)
    fields = [k for k in ("logits", "start_logits", "end_logits", "prediction_logits", "seq_relationship_logits",
                          "last_hidden_state") if k in got.keys()]  # fmt: skip
    assert fields
    for k in fields:
        assert_close(got[k], want[k], name=k)
    for i, (a, b) in enumerate(zip(got.hidden_states, want.hidden_states, strict=True)):
        assert_close(a, b, name=f"hidden_states[{i}]")


def torch_grads(model, inputs, labels, head, weights):
    out = model(**{k: torch.as_tensor(v) for k, v in {**inputs, **labels}.items()})
    loss = (out.last_hidden_state * torch.as_tensor(weights)).sum() if head == "BigBirdModel" else out.loss
    loss.backward()
    return float(loss.detach()), {
        k: (p.grad if p.grad is not None else torch.zeros_like(p)).numpy()
        for k, p in model.named_parameters()
    }


@pytest.mark.parametrize("case", [CASES[0], CASES[2]], ids=lambda c: c.id)
@pytest.mark.parametrize("head", core.HEADS)
def test_gradients_match_torch_parameter_by_parameter(head, case, tmp_path):
    """Train mode, dropout 0, same weights, inputs and plan: every gradient, names mapped by the core table."""
    bt.MODEL_CLASSES[head](case.config, seed=1).save_pretrained(tmp_path)
    tm = bt.MODEL_CLASSES[head].from_pretrained(tmp_path).train()
    fm = bf.MODEL_CLASSES[head].from_pretrained(tmp_path)
    inputs, labels = make_inputs(case, head), make_labels(case, head)
    weights = np.random.default_rng(0).normal(size=(case.seq_len, case.config.hidden_size)).astype(np.float32)
    t_loss, t_grads = torch_grads(tm, inputs, labels, head, weights)

    def loss_fn(params):
        out = fm(**{k: jnp.asarray(v) for k, v in {**inputs, **labels}.items()}, params=params, train=True)
        return (out.last_hidden_state * weights).sum() if head == "BigBirdModel" else out.loss

    f_loss, f_tree = jax.value_and_grad(loss_fn)(fm.params)
    assert_close(f_loss, t_loss, name="loss")
    scale = max(float(np.abs(g).max()) for g in t_grads.values())
    leaves = 0
    for name, grad in t_grads.items():
        path, transpose = flax_path(name)
        node = f_tree
        for part in path:
            node = node[part]
        got = np.asarray(node).T if transpose else np.asarray(node)
        assert_close(got, grad, kind="gradient", name=name, scale=scale)
        leaves += 1
    assert leaves == len(jax.tree_util.tree_leaves(f_tree))


def test_jit_and_no_jit_agree_and_user_jit_works():
    model = bf.FlaxBigBirdForQuestionAnswering(CFG, seed=3)
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(CASES[0], "BigBirdForQuestionAnswering").items()}
    jitted = model(**inputs).start_logits
    with jax.disable_jit():
        eager = model(**inputs).start_logits
    assert_close(eager, jitted)
    user = jax.jit(lambda p, ids, mask: model(ids, mask, params=p).start_logits)
    assert_close(user(model.params, inputs["input_ids"], inputs["attention_mask"]), jitted)
    # the output object is a pytree: a user's jit returns it whole
    whole = jax.jit(lambda p, ids: model(ids, params=p))(model.params, inputs["input_ids"])
    assert type(whole).__name__ == "BigBirdForQuestionAnsweringModelOutput"
    # an eager call after traced ones at the same length: nothing traced was cached
    assert_close(model(inputs["input_ids"]).start_logits, whole.start_logits)


def test_checkpoints_cross_between_flax_transformers_and_torch(tmp_path):
    head = "BigBirdForMaskedLM"
    model = bf.FlaxBigBirdForMaskedLM(ALIGNED.config, seed=4)
    model.save_pretrained(tmp_path / "ours")
    assert (tmp_path / "ours" / "flax_model.msgpack").exists()
    ids = make_inputs(ALIGNED, head)["input_ids"]
    expected = model(jnp.asarray(ids)).logits
    assert_close(
        hf_flax(head).from_pretrained(tmp_path / "ours")(jnp.asarray(ids)).logits,
        expected,
        name="transformers",
    )
    with torch.no_grad():
        assert_close(bt.BigBirdForMaskedLM.from_pretrained(tmp_path / "ours")(input_ids=torch.as_tensor(ids)).logits,
                     expected, name="bigbird_torch")  # fmt: skip
    again = bf.FlaxBigBirdForMaskedLM.from_pretrained(tmp_path / "ours")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[k], v)
    # and the reverse: transformers' Flax checkpoint into ours
    theirs = hf_flax(head)(hf_config(ALIGNED.config), input_shape=(1, 128), seed=5)
    theirs.save_pretrained(tmp_path / "theirs")
    loaded = bf.FlaxBigBirdForMaskedLM.from_pretrained(tmp_path / "theirs")
    assert loaded.load_report.missing_keys == ("bert.pooler.weight", "bert.pooler.bias")
    assert_close(loaded(jnp.asarray(ids)).logits, theirs(jnp.asarray(ids)).logits)


def test_indices_rng_draws_fresh_legal_plans_inside_jit():
    model = bf.FlaxBigBirdModel(CFG, seed=6)
    ids = jnp.asarray(make_inputs(CASES[0], "BigBirdModel")["input_ids"])
    apply = jax.jit(lambda p, key: model.module.apply(
        {"params": p}, ids, deterministic=False, rngs={"indices": key}, mutable=["intermediates"]))  # fmt: skip
    keys = (jax.random.PRNGKey(0), jax.random.PRNGKey(1), jax.random.PRNGKey(0))
    outs, plans = [], []
    for key in keys:
        out, state = apply(model.params, key)
        outs.append(out.last_hidden_state)
        plans.append(np.asarray(state["intermediates"]["plan"][0]))
    assert not np.array_equal(plans[0], plans[1]) and np.array_equal(plans[0], plans[2])
    assert not np.allclose(outs[0], outs[1]) and np.array_equal(np.asarray(outs[0]), np.asarray(outs[2]))
    n = plans[0].shape[2] + 2
    legal = core.plans.legal_random_blocks(n)
    for plan in plans[:2]:
        assert plan.shape == (2, 4, n - 2, 2)
        rows = np.broadcast_to(np.arange(n - 2)[:, None], plan.shape[2:])
        assert legal[rows, plan].all()
        assert (np.sort(plan, -1)[..., 1:] != np.sort(plan, -1)[..., :-1]).all()
    # the drawn plan gives what the NumPy reference gives with that plan
    ref = core.BigBirdModel(CFG, model.state_dict())(input_ids=np.asarray(ids), plan=plans[1]).last_hidden_state
    assert_close(outs[1], ref)
    # the wrapper draws the same way from indices_rng
    assert_close(model(ids, train=True, indices_rng=keys[1]).last_hidden_state, outs[1])
    # without indices_rng, train mode uses transformers' plan, as torch does
    expected = core.BigBirdModel(CFG, model.state_dict()).train()(input_ids=np.asarray(ids)).last_hidden_state
    assert_close(model(ids, train=True).last_hidden_state, expected)


def test_dropout_rng_drives_dropout():
    model = bf.FlaxBigBirdModel(CFG.replace(hidden_dropout_prob=0.2), seed=7)
    ids = jnp.asarray(make_inputs(CASES[0], "BigBirdModel")["input_ids"])
    a = model(ids, train=True, dropout_rng=jax.random.PRNGKey(0)).last_hidden_state
    b = model(ids, train=True, dropout_rng=jax.random.PRNGKey(1)).last_hidden_state
    c = model(ids, train=True, dropout_rng=jax.random.PRNGKey(0)).last_hidden_state
    assert not np.allclose(a, b) and np.array_equal(np.asarray(a), np.asarray(c))
    np.testing.assert_array_equal(
        np.asarray(model(ids).last_hidden_state), np.asarray(model(ids).last_hidden_state)
    )


def test_bf16_compute_dtype_and_attentions():
    model = bf.FlaxBigBirdForSequenceClassification(CFG, seed=8)
    low = bf.FlaxBigBirdForSequenceClassification(CFG, seed=8, dtype=jnp.bfloat16)
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(CASES[0], "BigBirdForSequenceClassification").items()}
    ref, got = model(**inputs, output_attentions=True), low(**inputs, output_attentions=True)
    assert got.logits.dtype == jnp.bfloat16 and jnp.isfinite(got.logits.astype(jnp.float32)).all()
    assert jax.tree_util.tree_leaves(low.params)[0].dtype == jnp.float32
    assert_close(got.logits, ref.logits, dtype="bfloat16")
    assert_close(got.attentions[1], ref.attentions[1], dtype="bfloat16")


def test_remat_gives_the_same_gradients():
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(CASES[0], "BigBirdForMaskedLM").items()}
    labels = {k: jnp.asarray(v) for k, v in make_labels(CASES[0], "BigBirdForMaskedLM").items()}
    grads = []
    for remat in (False, True):
        model = bf.FlaxBigBirdForMaskedLM(CFG, seed=9, gradient_checkpointing=remat)
        grads.append(
            jax.grad(lambda p, m=model: m(**inputs, **labels, params=p, train=True).loss)(model.params)
        )
    flat0, flat1 = jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1])
    scale = max(float(jnp.abs(g).max()) for g in flat0)
    for a, b in zip(flat1, flat0, strict=True):
        assert_close(a, b, kind="gradient", scale=scale)


@pytest.mark.parametrize("kwargs,argument", [
    (dict(input_ids=jnp.ones((2, 10, 3), jnp.int32)), "input_ids"),
    (dict(input_ids=jnp.ones((2, 10), jnp.float32)), "input_ids"),
    (dict(input_ids=jnp.full((2, 10), 97)), "input_ids"),
    (dict(input_ids=jnp.ones((1, 300), jnp.int32)), "max_position_embeddings"),
    (dict(input_ids=jnp.ones((2, 10), jnp.int32), attention_mask=jnp.ones((2, 11))), "attention_mask"),
    (dict(input_ids=jnp.ones((2, 10), jnp.int32), labelz=jnp.ones((2, 10), jnp.int32)), "labelz"),
])  # fmt: skip
def test_bad_inputs_name_the_argument(kwargs, argument):
    with pytest.raises(InputError, match=argument):
        bf.FlaxBigBirdModel(CFG)(**kwargs)


def test_unprefixed_names_switch_backends():
    assert bf.BigBirdForQuestionAnswering is bf.FlaxBigBirdForQuestionAnswering
    assert set(core.HEADS) <= set(dir(bf)) and set(core.HEADS) <= set(dir(bt))


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_fast_path_in_small_chunks_equals_the_full_layout(platform, monkeypatch):
    """CPU: several cache-sized chunks, the last one padded; accelerators: every row in one batch."""
    import bigbird_flax.attention as A
    from bigbird_core.layout import block_layout, compact_slots, slot_key_blocks

    n, b = 19, CFG.block_size
    plan = core.make_plan(CFG, n, training=True)
    merged = compact_slots(block_layout(plan, b))
    key = jax.random.PRNGKey(0)
    q, k, v = (jax.random.normal(jax.random.fold_in(key, i), (2, 4, n * b, 8)) for i in range(3))
    mask = jnp.ones((2, n * b)).at[1, -13:].set(0)
    ref, _ = A.layer_attention(q, k, v, mask, slot_key_blocks(jnp.asarray(plan))[1], b, True)
    monkeypatch.setattr(A, "_CHUNK_BYTES", 4000)
    monkeypatch.setattr(A.jax, "default_backend", lambda: platform)
    got = A.fast_block_sparse_attention(q, k, v, mask, jnp.asarray(merged.key_blocks[1]),
                                        jnp.asarray(merged.slot_bias[1], jnp.float32), b)  # fmt: skip
    assert_close(got, ref)
