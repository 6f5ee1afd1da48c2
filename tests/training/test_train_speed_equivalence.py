"""bench/train_speed.py compares against a straightforward form of the same math: it must
give the same loss and gradients as the model's own (factored, hand-written backward)."""

from bench.train_speed import check_equal


def test_straightforward_form_has_the_same_gradients():
    assert check_equal("digits-gac-msresnet", 4) < 1e-10
