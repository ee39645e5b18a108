"""The linen modules on their own, inside a user's module: the wrappers' numbers (block-sparse with padding
and the core's plan, head rules and losses), the same parameter tree, and training with drawn plans."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
import flax.linen as nn  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import bigbird_core as core  # noqa: E402
import bigbird_flax as bf  # noqa: E402
from bigbird_core import BigBirdConfig  # noqa: E402
from bigbird_core.tolerances import assert_close  # noqa: E402
from cases import CASES, TINY, make_inputs, make_labels  # noqa: E402

CFG = BigBirdConfig(**TINY)
CASE = CASES[0]  # 150 tokens with padding in the mask: block-sparse after padding to 152


class Classifier(nn.Module):
    """What a JAX user writes: BigBird inside their own module, a head of their own on top."""

    config: BigBirdConfig

    @nn.compact
    def __call__(self, input_ids, attention_mask, deterministic=True):
        out = bf.FlaxBigBirdModule(self.config, name="encoder")(input_ids, attention_mask,
                                                                deterministic=deterministic)  # fmt: skip
        return out.last_hidden_state, nn.Dense(3, name="mine")(out.pooler_output)


def test_a_users_module_gets_the_wrappers_block_sparse_numbers():
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(CASE, "BigBirdModel").items()}
    user = Classifier(CFG)
    variables = user.init(jax.random.PRNGKey(0), **inputs)
    wrapper = bf.FlaxBigBirdModel(CFG)  # (with _do_init=False it could not hold them: transformers' rule)
    wrapper.params = variables["params"]["encoder"]
    hidden, _ = jax.jit(user.apply)(variables, **inputs)
    assert hidden.shape == (2, CASE.seq_len, CFG.hidden_size)  # cut back to the input length
    assert_close(hidden, wrapper(**inputs).last_hidden_state)
    # and those are the block-sparse numbers of the NumPy reference (full attention would differ)
    ref = core.BigBirdModel(CFG, wrapper.state_dict())(**{k: np.asarray(v) for k, v in inputs.items()})
    assert_close(hidden, ref.last_hidden_state)
    full = core.BigBirdModel(CFG.replace(attention_type="original_full"), wrapper.state_dict())(
        **{k: np.asarray(v) for k, v in inputs.items()}).last_hidden_state  # fmt: skip
    assert float(np.abs(np.asarray(hidden) - full).max()) > 1e-3


@pytest.mark.parametrize("head", ["BigBirdForQuestionAnswering", "BigBirdForMultipleChoice"])
def test_head_modules_apply_like_the_wrappers_with_their_losses(head):
    wrapper = bf.MODEL_CLASSES[head](CFG, seed=2)
    inputs = {k: jnp.asarray(v) for k, v in {**make_inputs(CASE, head), **make_labels(CASE, head)}.items()}
    expected = wrapper(**inputs)
    module = wrapper.module_class(CFG, add_pooling_layer=wrapper.add_pooling_layer)
    got = module.apply({"params": wrapper.params}, **inputs)
    assert got.keys() == expected.keys() and "loss" in got.keys()
    for key in expected.keys():
        assert_close(got[key], expected[key], name=key)


def test_training_step_inside_a_users_module_draws_plans_from_the_indices_stream():
    inputs = {k: jnp.asarray(v) for k, v in make_inputs(CASE, "BigBirdModel").items()}
    user = Classifier(CFG)
    variables = user.init(jax.random.PRNGKey(0), **inputs)

    def loss(params, key):
        _, logits = user.apply({"params": params}, **inputs, deterministic=False, rngs={"indices": key})
        return jnp.mean(logits**2)

    step = jax.jit(jax.value_and_grad(loss))
    (l0, g0), (l1, _), (l2, g2) = (step(variables["params"], jax.random.PRNGKey(k)) for k in (0, 1, 0))
    assert l0 == l2 and l0 != l1  # the plan follows the key
    for a, b in zip(jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_train_mode_with_dropout_names_the_missing_dropout_rng():
    model = bf.FlaxBigBirdModel(CFG.replace(hidden_dropout_prob=0.1), seed=0)
    ids = jnp.asarray(make_inputs(CASE, "BigBirdModel")["input_ids"])
    with pytest.raises(core.InputError, match="dropout_rng: expected a PRNG key for train=True with dropout > 0"):
        model(ids, train=True)
    a = model(ids, train=True, dropout_rng=jax.random.PRNGKey(0)).last_hidden_state
    b = model(ids, train=True, dropout_rng=jax.random.PRNGKey(1)).last_hidden_state
    assert not np.allclose(np.asarray(a), np.asarray(b))  # dropout ran
